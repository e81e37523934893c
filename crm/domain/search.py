"""The search key of a lead, contact or account, and the same folding applied to a query.

A key is each searchable value folded (NFKC, so full-width "ＡＢＣ" and half-width "ｱｲｳ" become
"ABC" and "アイウ"; katakana turned into hiragana; case-folded; spaces dropped) and joined by a
separator that no folded value contains, so a query never matches across two fields. Phones
are kept as digits, a Japanese +81 number also in its national form (0…), so "03-1234-5678",
"０３（１２３４）５６７８" and "+81 3 1234 5678" all find the same record.

The key is stored in a column (crm.store keeps it current on every write), and a query is a
substring test against it in SQL: no row is read into Python to be compared.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

SEPARATOR = "|"
MAX_QUERY = 100
# The key column's length: the longest values of every field, folded, fit well inside it.
MAX_KEY = 2000

_SPACE = re.compile(r"\s+")
_PHONE_QUERY = re.compile(r"[+\d\s()\-.]+")
# Katakana ァ (U+30A1) … ヶ (U+30F6) sit 0x60 above their hiragana.
_KATAKANA = {c: c - 0x60 for c in range(0x30A1, 0x30F7)}
_KATAKANA[0x30FD] = 0x309D  # ヽ ゝ
_KATAKANA[0x30FE] = 0x309E  # ヾ ゞ


def fold(text: str | None) -> str:
    """Comparable text: NFKC, katakana as hiragana, case-folded, without spaces or the separator."""
    if not text:
        return ""
    value = unicodedata.normalize("NFKC", text).translate(_KATAKANA).casefold()
    return _SPACE.sub("", value).replace(SEPARATOR, "")


def phone_digits(text: str | None) -> list[str]:
    """The phone's digits, and for a Japanese international number also the national form."""
    digits = re.sub(r"\D", "", unicodedata.normalize("NFKC", text or ""))
    if not digits:
        return []
    forms = [digits]
    if digits.startswith("81") and len(digits) >= 11:
        forms.append("0" + digits[2:].removeprefix("0"))
    return forms


def search_key(texts: Iterable[str | None], phones: Iterable[str | None] = ()) -> str:
    """The stored key: folded texts and phone digits, each between separators."""
    parts = [f for f in (fold(t) for t in texts) if f]
    for phone in phones:
        parts.extend(phone_digits(phone))
    key = SEPARATOR + SEPARATOR.join(dict.fromkeys(parts)) + SEPARATOR if parts else ""
    return key[:MAX_KEY]


def person_texts(first_name: str | None, last_name: str | None, *others: str | None) -> list[str | None]:
    """A person's searchable texts: the name in both orders (山田太郎 and 太郎山田), then the rest."""
    return [f"{last_name or ''}{first_name or ''}", f"{first_name or ''}{last_name or ''}", *others]


def query_needle(q: str) -> str:
    """What a query is looked for as, inside keys: the digits when it reads as a phone
    number (at least four digits and nothing but phone punctuation), else its folded text."""
    text = unicodedata.normalize("NFKC", q).strip()
    if _PHONE_QUERY.fullmatch(text) and len(re.sub(r"\D", "", text)) >= 4:
        forms = phone_digits(text)
        return forms[-1]  # the national form when there is one: stored keys hold it too
    return fold(q)
