"""`inspect` throughput: whole message bytes → lead draft, messages per second, beside bare
`email.message_from_bytes` of the same messages (the floor any parser pays).

    .venv/bin/python bench/inspect_throughput.py [FOLDER…]

Default folder: tests/data (our labelled corpus and the copied public corpora).
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
from widget_api.cli.inspect import draft_json  # noqa: E402

DEFAULT = [ROOT / "tests" / "data"]
MIN_SECONDS = 2.0


def messages(folders: list[Path]) -> list[bytes]:
    out = []
    for folder in folders:
        out.extend(p.read_bytes() for p in sorted(folder.rglob("*.eml")))
    return out


def rate(fn, corpus: list[bytes]) -> float:  # type: ignore[no-untyped-def]
    """Messages per second, repeating the corpus until MIN_SECONDS have passed."""
    done = 0
    start = time.perf_counter()
    while time.perf_counter() - start < MIN_SECONDS:
        for raw in corpus:
            fn(raw)
        done += len(corpus)
    return done / (time.perf_counter() - start)


def main() -> None:
    folders = [Path(a) for a in sys.argv[1:]] or DEFAULT
    corpus = messages(folders)
    if not corpus:
        raise SystemExit("no .eml files found")
    ctx = ReadContext()
    bare = rate(lambda raw: email.message_from_bytes(raw, policy=email.policy.compat32), corpus)
    ours = rate(lambda raw: draft_json(raw, ctx), corpus)
    size = sum(map(len, corpus)) / len(corpus)
    print(f"corpus: {len(corpus)} messages, mean {size / 1024:.1f} KB")
    print(f"bare email.message_from_bytes: {bare:9.0f} msg/s")
    print(f"inspect (parse + draft):       {ours:9.0f} msg/s  ({bare / ours:.1f}x the time of bare parsing)")


if __name__ == "__main__":
    main()
