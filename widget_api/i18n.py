"""Messages in the user's language (Japanese or English) for the stable codes that errors
and warnings carry. The catalogues are JSON files under locales/, one per language."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

LANGUAGES = ("ja", "en")
LOCALES = Path(__file__).with_name("locales")


@cache
def catalogue(language: str) -> dict[str, str]:
    return json.loads((LOCALES / f"{language}.json").read_text(encoding="utf-8"))


def pick_language(preferred: str | None, accept_language: str | None = None) -> str:
    """The explicit choice (user setting or ?lang=) if known, else the first known language of
    an Accept-Language header, else Japanese (the product's home market)."""
    if preferred in LANGUAGES:
        return preferred
    for item in (accept_language or "").split(","):
        tag = item.split(";")[0].strip().lower()[:2]
        if tag in LANGUAGES:
            return tag
    return "ja"


def translate(code: str, language: str, default: str | None = None, **values: object) -> str:
    text = catalogue(language).get(code) or catalogue("en").get(code) or default or code
    try:
        return text.format(**values)
    except (KeyError, IndexError):
        return text
