"""Quote detection scored on talon's standard replies (12 real clients, with talon's own
expected answers): the sender's own text must be exactly what talon's tests expect."""

from __future__ import annotations

import re
from pathlib import Path

from mail_adapter.parsing import parse_message
from mail_adapter.quotes import own_text

REPLIES = Path(__file__).parent / "data" / "corpora" / "replies" / "talon_standard_replies"


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
