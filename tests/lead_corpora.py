"""The labelled lead corpora and how a draft is scored against them (shared by
tests/test_leads_f1.py and bench/extraction.py).

Each corpus folder holds `<name>.eml` and `labels.json`: per message the reader's context,
the expected draft (`expected`, every field, null where a careful person would leave it
empty) and, in the real-mail corpus, `person` ("sender" or "forwarded": whom the draft is
about) and `others`: the fields of every other person of the message (quoted, forwarded or
named in forwarded content). A field value of the draft that is wrong and belongs to one of
those others is "quoted-taken": another person's value in the draft.

A wrong value counts as a false positive and a false negative; an empty prediction only as
a false negative. Values compare after NFKC, trimming and case folding; websites by host
(scheme, "www." and path dropped); phones are E.164 on both sides.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.utils import formataddr, parseaddr
from pathlib import Path

from crm.domain.drafts import LeadDraft, ReadContext
from mail_adapter.leads import extract_lead
from mail_adapter.parsing import parse_message

DATA = Path(__file__).parent / "data"
GENERATED, HANDWRITTEN, REAL = DATA / "leads", DATA / "leads_handwritten", DATA / "leads_real"
CORPORA = (GENERATED, HANDWRITTEN, REAL)
FIELDS = ("first_name", "last_name", "email", "company", "title", "phone", "mobile", "website", "zip_code", "city", "state")
# Fields whose values are compared across one another for quoted-taken: a quoted person's
# mobile number in the draft's phone field is still theirs.
_SAME_KIND = {"phone": ("phone", "mobile"), "mobile": ("phone", "mobile")}


def held_out(name: str) -> bool:
    """The split of the real-mail corpus, fixed before any result was looked at: a message
    is held out when the SHA-256 of its name is 0 modulo 3."""
    return int(hashlib.sha256(name.encode()).hexdigest(), 16) % 3 == 0


def norm(value: str | None, name: str = "") -> str | None:
    if not value:
        return None
    value = unicodedata.normalize("NFKC", value).strip().casefold()
    if name == "website":
        value = re.sub(r"^(https?://)?(www\.)?", "", value).split("/")[0]
    return value


_X_FROM_NAME = re.compile(r'^\s*"?([^"<@]+?)"?\s*(<|$)')


def as_opened(raw: bytes) -> bytes:
    """The message as the reader's client showed it. The Enron corpus (CALO export) keeps
    the From address alone and moved the display name to X-From ("Steven J Kean", "\"Frank
    A. Wolak\" <wolak@…>@ENRON <IMCEANOTES-…>"): put that name back into From."""
    head, sep, body = raw.partition(b"\r\n\r\n" if b"\r\n\r\n" in raw[:20000] else b"\n\n")
    lines = head.decode("latin-1").split("\n")
    x_from = next((ln[7:].strip() for ln in lines if ln.lower().startswith("x-from:")), "")
    match = _X_FROM_NAME.match(x_from)
    display = match.group(1).strip() if match and "/" not in match.group(1) else ""
    for i, line in enumerate(lines):
        if line.lower().startswith("from:") and display:
            _, address = parseaddr(line[5:])
            lines[i] = "From: " + formataddr((display, address))
            break
    return "\n".join(lines).encode("latin-1") + sep + body


@dataclass
class Score:
    counts: dict[str, list[int]] = field(default_factory=lambda: {f: [0, 0, 0] for f in FIELDS})  # tp, fp, fn
    quoted_taken: list[str] = field(default_factory=list)
    misses: list[str] = field(default_factory=list)
    person_wrong: list[str] = field(default_factory=list)
    messages: int = 0

    def totals(self) -> tuple[int, int, int]:
        tp, fp, fn = (sum(c[i] for c in self.counts.values()) for i in range(3))
        return tp, fp, fn

    def f1(self) -> float:
        return f1(*self.totals())

    def precision(self) -> float:
        tp, fp, _ = self.totals()
        return tp / (tp + fp) if tp + fp else 1.0

    def recall(self) -> float:
        tp, _, fn = self.totals()
        return tp / (tp + fn) if tp + fn else 1.0

    def line(self) -> str:
        return f"F1 {self.f1():.3f}  P {self.precision():.3f}  R {self.recall():.3f}  quoted-taken {len(self.quoted_taken)}  ({self.messages} messages)"


def f1(tp: int, fp: int, fn: int) -> float:
    return 2 * tp / (2 * tp + fp + fn) if tp else (1.0 if not fp and not fn else 0.0)


def labels(corpus: Path) -> dict[str, dict]:  # type: ignore[type-arg]
    return json.loads((corpus / "labels.json").read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def drafts(corpus: Path) -> Iterator[tuple[str, dict, LeadDraft]]:  # type: ignore[type-arg]
    for name, entry in sorted(labels(corpus).items()):
        ctx = ReadContext(own_domains=frozenset(entry["context"].get("own_domains", [])))
        raw = as_opened((corpus / f"{name}.eml").read_bytes())
        yield name, entry, extract_lead(parse_message(raw), ctx)


def score(corpus: Path, which: str = "all") -> Score:
    """which: "all", "dev" or "held_out" (the real-mail split; other corpora have no split)."""
    result = Score()
    for name, entry, draft in drafts(corpus):
        if which != "all" and held_out(name) != (which == "held_out"):
            continue
        result.messages += 1
        got = draft.values()
        others = entry.get("others", [])
        for f in FIELDS:
            want, have = norm(entry["expected"][f], f), norm(got[f], f)
            if want and have == want:
                result.counts[f][0] += 1
                continue
            if have:
                result.counts[f][1] += 1
            if want:
                result.counts[f][2] += 1
            if want or have:
                result.misses.append(f"{name}.{f}: want {entry['expected'][f]!r} got {got[f]!r}")
            if have and any(have == norm(o.get(k), k) for o in others for k in _SAME_KIND.get(f, (f,))):
                result.quoted_taken.append(f"{name}.{f}: {got[f]!r} belongs to another person of the message")
        expected_person = entry.get("person")
        person = getattr(draft, "person", None)
        if expected_person and person is not None and person.role != expected_person:
            result.person_wrong.append(f"{name}: draft about the {person.role}, want the {expected_person}")
    return result
