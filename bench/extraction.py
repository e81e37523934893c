"""Extraction alone (parsed message → lead draft), messages per second on one core over the
labelled corpora (generated and hand-written), beside bare `email.message_from_bytes` and our
`parse_message` of the same messages. The three are measured in interleaved rounds and the
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

CORPORA = (ROOT / "tests" / "data" / "leads", ROOT / "tests" / "data" / "leads_handwritten")
ROUNDS = 9


def rate(fn, items, seconds: float = 0.5) -> float:  # type: ignore[no-untyped-def]
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for item in items:
            fn(item)
        done += len(items)
    return done / (time.perf_counter() - start)


def main() -> None:
    raws = [p.read_bytes() for corpus in CORPORA for p in sorted(corpus.glob("*.eml"))]
    parsed = [parse_message(r) for r in raws]
    ctx = ReadContext(own_domains=frozenset({"acme-sales.example"}))
    runs: dict[str, list[float]] = {"bare": [], "ours": [], "extract": []}
    for _ in range(ROUNDS):
        runs["bare"].append(rate(lambda r: email.message_from_bytes(r, policy=email.policy.compat32), raws))
        runs["ours"].append(rate(parse_message, raws))
        runs["extract"].append(rate(lambda m: extract_lead(m, ctx), parsed))
    bare, ours, extract = (statistics.median(runs[k]) for k in ("bare", "ours", "extract"))
    print(f"corpus: {len(raws)} messages; median of {ROUNDS} interleaved rounds (extract_lead min {min(runs['extract']):.0f}, max {max(runs['extract']):.0f})")
    print(f"bare email.message_from_bytes: {bare:8.0f} msg/s")
    print(f"parse_message:                 {ours:8.0f} msg/s")
    print(f"extract_lead (parsed → draft): {extract:8.0f} msg/s  ({extract / bare:.2f}x bare parsing's rate; target ≥ 1000)")


if __name__ == "__main__":
    main()
