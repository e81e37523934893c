"""Extraction alone (parsed message → lead draft), messages per second on one core over the
labelled corpus, beside bare `email.message_from_bytes` and our `parse_message` of the same
messages.

    .venv/bin/python bench/extraction.py
"""

from __future__ import annotations

import email
import email.policy
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from crm.domain.drafts import ReadContext  # noqa: E402
from mail_adapter.leads import extract_lead  # noqa: E402
from mail_adapter.parsing import parse_message  # noqa: E402

CORPUS = ROOT / "tests" / "data" / "leads"


def rate(fn, items) -> float:  # type: ignore[no-untyped-def]
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < 2.0:
        for item in items:
            fn(item)
        done += len(items)
    return done / (time.perf_counter() - start)


def main() -> None:
    raws = [p.read_bytes() for p in sorted(CORPUS.glob("*.eml"))]
    parsed = [parse_message(r) for r in raws]
    ctx = ReadContext(own_domains=frozenset({"acme-sales.example"}))
    bare = rate(lambda r: email.message_from_bytes(r, policy=email.policy.compat32), raws)
    ours = rate(parse_message, raws)
    extract = rate(lambda m: extract_lead(m, ctx), parsed)
    print(f"corpus: {len(raws)} messages")
    print(f"bare email.message_from_bytes: {bare:8.0f} msg/s")
    print(f"parse_message:                 {ours:8.0f} msg/s")
    print(f"extract_lead (parsed → draft): {extract:8.0f} msg/s  ({extract / bare:.2f}x bare parsing's rate; target ≥ 1000)")


if __name__ == "__main__":
    main()
