"""Field-level F1 of the lead draft over the labelled corpora: tests/data/leads (generated
from 32 people and eight layouts) and tests/data/leads_handwritten (120 messages written one
by one in the styles of real mailers, none from the generator).

A wrong value counts as a false positive and a false negative; an empty prediction only as
a false negative. Values compare after NFKC and trimming (phones are E.164 on both sides).
"""

from __future__ import annotations

import json
import re
import unicodedata
from pathlib import Path

import pytest

from crm.domain.drafts import ReadContext
from mail_adapter.leads import extract_lead
from mail_adapter.parsing import parse_message

CORPUS = Path(__file__).parent / "data" / "leads"
CORPORA = (CORPUS, Path(__file__).parent / "data" / "leads_handwritten")
FIELDS = ("first_name", "last_name", "email", "company", "title", "phone", "mobile", "website", "zip_code", "city", "state")
TARGET = 0.95


def _norm(value: str | None, field: str = "") -> str | None:
    if not value:
        return None
    value = unicodedata.normalize("NFKC", value).strip().casefold()
    if field == "website":  # "https://example.com/" and "example.com" are the same site
        value = re.sub(r"^https?://", "", value).rstrip("/")
    return value


def score(corpus: Path) -> tuple[dict[str, tuple[int, int, int]], list[str]]:
    labels = json.loads((corpus / "labels.json").read_text(encoding="utf-8"))
    counts = {f: [0, 0, 0] for f in FIELDS}  # tp, fp, fn
    misses = []
    for name, entry in sorted(labels.items()):
        ctx = ReadContext(own_domains=frozenset(entry["context"].get("own_domains", [])))
        got = extract_lead(parse_message((corpus / f"{name}.eml").read_bytes()), ctx).values()
        for f in FIELDS:
            want, have = _norm(entry["expected"][f], f), _norm(got[f], f)
            if want and have == want:
                counts[f][0] += 1
            else:
                if have:
                    counts[f][1] += 1
                if want:
                    counts[f][2] += 1
                if want or have:
                    misses.append(f"{name}.{f}: want {entry['expected'][f]!r} got {got[f]!r}")
    return {f: (c[0], c[1], c[2]) for f, c in counts.items()}, misses


def f1(tp: int, fp: int, fn: int) -> float:
    return 2 * tp / (2 * tp + fp + fn) if tp else (1.0 if not fp and not fn else 0.0)


def test_corpus_is_big_enough_and_half_japanese() -> None:
    labels = json.loads((CORPUS / "labels.json").read_text(encoding="utf-8"))
    assert len(labels) >= 60
    assert sum(1 for n in labels if n.startswith("ja_")) >= len(labels) / 2


@pytest.mark.parametrize("corpus", CORPORA, ids=lambda c: c.name)
def test_field_f1(corpus: Path) -> None:
    counts, misses = score(corpus)
    total = [sum(c[i] for c in counts.values()) for i in range(3)]
    for f, c in counts.items():
        print(f"{f:12} F1 {f1(*c):.3f}  (tp {c[0]}, fp {c[1]}, fn {c[2]})")
    overall = f1(*total)
    print(f"overall F1 {overall:.3f}")
    print("\n".join(misses[:40]))
    assert overall >= TARGET, "\n".join(misses[:40])
