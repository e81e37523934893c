"""Quote and signature detection on public fixtures: talon's standard replies (12 real
clients, with talon's own expected answers: the sender's own text must be exactly that) and
mailgun forge's messages without a signature (a signature found there is a false one)."""

from __future__ import annotations

import re
from pathlib import Path

from mail_adapter.parsing import parse_message
from mail_adapter.signature import signature_lines
from mail_adapter.zones import own_text

REPLIES = Path(__file__).parent / "data" / "corpora" / "replies" / "talon_standard_replies"
NO_SIGNATURE = Path(__file__).parent / "data" / "corpora" / "replies" / "forge_N"


def _squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


def test_own_text_of_every_standard_reply() -> None:
    misses = []
    messages = sorted(REPLIES.glob("*.eml"))
    for eml in messages:
        expected_file = REPLIES / f"{eml.stem}_reply_text"
        expected = expected_file.read_text(encoding="utf-8") if expected_file.exists() else "Hello"
        got = own_text(parse_message(eml.read_bytes()).text)
        if _squash(got) != _squash(expected):
            misses.append(f"{eml.name}: {got[:120]!r}")
    print(f"talon standard replies: {len(messages) - len(misses)}/{len(messages)} (talon 12, zapier email-reply-parser 9, mail-parser-reply 8)")
    assert len(messages) == 12 and misses == []


def test_few_false_signatures_on_mail_without_one() -> None:
    bodies = sorted(NO_SIGNATURE.glob("*_body"))
    false = [b.name for b in bodies if signature_lines(own_text(b.read_text(encoding="utf-8", errors="replace")))[0]]
    print(f"forge N: a signature found in {len(false)} of {len(bodies)} messages without one (talon: 2)")
    assert len(bodies) == 95 and len(false) <= 5, false
