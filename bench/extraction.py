"""Extraction alone (parsed message → lead draft), messages per second on one core over the
labelled corpora (generated, hand-written and the real Enron mail, each read with its own
reader context), beside bare `email.message_from_bytes` and our `parse_message` of the same
messages. The three are measured in interleaved rounds and the
median of each is printed: this shared VM's speed drifts over seconds, and interleaving puts
the drift on all three alike.

    .venv/bin/python bench/extraction.py
"""

from __future__ import annotations

import email
import email.policy
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from crm.domain.drafts import ReadContext  # noqa: E402
from mail_adapter.leads import extract_lead  # noqa: E402
from mail_adapter.parsing import parse_message  # noqa: E402
from tests.lead_corpora import CORPORA, REAL, as_opened, labels  # noqa: E402

ROUNDS = 9


def rate(fn, items, seconds: float = 0.5) -> float:  # type: ignore[no-untyped-def]
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for item in items:
            fn(item)
        done += len(items)
    return done / (time.perf_counter() - start)


def main() -> None:
    raws: list[bytes] = []
    contexts: list[ReadContext] = []
    real = 0
    for corpus in CORPORA:
        for name, entry in sorted(labels(corpus).items()):
            raws.append(as_opened((corpus / f"{name}.eml").read_bytes()))
            contexts.append(ReadContext(own_domains=frozenset(entry["context"].get("own_domains", []))))
            real += corpus is REAL
    items = list(zip((parse_message(r) for r in raws), contexts, strict=True))
    real_items = items[-real:]
    runs: dict[str, list[float]] = {"bare": [], "ours": [], "extract": [], "real": []}
    for _ in range(ROUNDS):
        runs["bare"].append(rate(lambda r: email.message_from_bytes(r, policy=email.policy.compat32), raws))
        runs["ours"].append(rate(parse_message, raws))
        runs["extract"].append(rate(lambda item: extract_lead(*item), items))
        runs["real"].append(rate(lambda item: extract_lead(*item), real_items))
    bare, ours, extract, on_real = (statistics.median(runs[k]) for k in ("bare", "ours", "extract", "real"))
    print(f"corpus: {len(raws)} messages ({real} real); median of {ROUNDS} interleaved rounds (extract_lead min {min(runs['extract']):.0f}, max {max(runs['extract']):.0f})")
    print(f"bare email.message_from_bytes: {bare:8.0f} msg/s")
    print(f"parse_message:                 {ours:8.0f} msg/s")
    print(f"extract_lead (parsed → draft): {extract:8.0f} msg/s  ({extract / bare:.2f}x bare parsing's rate; target ≥ 1000)")
    print(f"extract_lead, real mail only:  {on_real:8.0f} msg/s")


if __name__ == "__main__":
    main()
