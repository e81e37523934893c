"""Field-level F1 of the lead draft over every labelled corpus (tests/lead_corpora.py holds
the scoring): tests/data/leads (generated from 32 people and eight layouts),
tests/data/leads_handwritten (120 messages written one by one in the styles of real
mailers) and tests/data/leads_real (159 Enron messages nobody here wrote, with a held-out
third that no rule was tuned on).

Every corpus must have quoted-taken 0: no draft value may belong to another person of the
message. The bars only go up: raise one when a change lifts its corpus, never lower it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.lead_corpora import CORPORA, GENERATED, HANDWRITTEN, REAL, Score, f1, held_out, labels, score

# (corpus, half) → the F1 it must keep. The issue asks ≥ 0.98 on our own corpora and
# ≥ 0.85 on held-out real mail; these are the figures reached, less a hair for ties.
BARS: dict[tuple[str, str], float] = {
    (GENERATED.name, "all"): 0.99,
    (HANDWRITTEN.name, "all"): 0.99,
    (REAL.name, "dev"): 0.965,
    (REAL.name, "held_out"): 0.93,
}


def _report(name: str, result: Score) -> str:
    rows = [f"{name}: {result.line()}"]
    for f, (tp, fp, fn) in result.counts.items():
        rows.append(f"  {f:12} F1 {f1(tp, fp, fn):.3f}  (tp {tp}, fp {fp}, fn {fn})")
    return "\n".join(rows)


def test_corpus_is_big_enough_and_half_japanese() -> None:
    generated = labels(GENERATED)
    assert len(generated) >= 60
    assert sum(1 for n in generated if n.startswith("ja_")) >= len(generated) / 2


def test_real_corpus_is_big_enough_with_a_third_held_out() -> None:
    names = list(labels(REAL))
    kept = [n for n in names if held_out(n)]
    assert len(names) >= 150
    assert 0.25 <= len(kept) / len(names) <= 0.45
    # every message names the other people of it, so quoted-taken can be counted at all
    assert sum(1 for e in labels(REAL).values() if e["others"]) >= 75


@pytest.mark.parametrize(("corpus", "half"), [(GENERATED, "all"), (HANDWRITTEN, "all"), (REAL, "dev"), (REAL, "held_out")], ids=lambda x: x.name if isinstance(x, Path) else x)
def test_field_f1(corpus: Path, half: str) -> None:
    result = score(corpus, half)
    print(_report(f"{corpus.name} ({half})", result))
    print("\n".join(result.misses[:60]))
    assert result.quoted_taken == [], "\n".join(result.quoted_taken)
    assert result.f1() >= BARS[(corpus.name, half)], "\n".join(result.misses[:60])


@pytest.mark.parametrize("corpus", CORPORA, ids=lambda c: c.name)
def test_no_value_of_another_person(corpus: Path) -> None:
    assert score(corpus).quoted_taken == []


def test_the_draft_is_about_the_labelled_person() -> None:
    """Sender, the forwarded original of a colleague's short forward, or a web form's
    submitter: the draft says whom it is about, and it is the person the label names."""
    result = score(REAL)
    assert result.person_wrong == [], "\n".join(result.person_wrong)
