"""Person names from a display name, a signature line or an address's local part, in
English and Japanese order. Readings in parentheses are not part of the name."""

from __future__ import annotations

import re
import unicodedata
from functools import cache, lru_cache

_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uf900-\ufaff々〆ヶ]")
_READING = re.compile(r"[(（][^)）]*[)）]")
_AFFIX = re.compile(r"\s*([|｜/／@＠]|\bvia\b|\bat\b).*$", re.I)
_HONORIFIC = re.compile(r"(様|さま|さん|殿|氏)$|^(Mr|Mrs|Ms|Miss|Dr|Prof)\.?\s+", re.I)
_JA_NAME_LINE = re.compile(r"^[\u3400-\u9fff々ヶ]{1,4}[ 　]?[\u3040-\u30ff\u3400-\u9fff々ヶ]{1,5}$")
_NICKNAME = re.compile(r'\s+"[^"]{1,20}"\s+|\s+\([^)]{1,20}\)\s+(?=\S)')
_SUFFIX = re.compile(r",?\s+(?:Jr|Sr|II|III|IV|Esq|Ph\.?D|M\.?D|CPA|P\.?E)\.?$", re.I)
_INITIALS = re.compile(r"(?:\s+[A-Z]\.?)+$")
_LATIN_NAME = re.compile(r"^[A-ZÀ-Þ][\w'’.-]*(?:\s+[A-ZÀ-Þa-z][\w'’.-]*){1,3}$")


def has_cjk(text: str) -> bool:
    return bool(_CJK.search(text))


@cache
def _divider():  # type: ignore[no-untyped-def]
    from namedivider import BasicNameDivider

    return BasicNameDivider()


def _capitalise(token: str) -> str:
    """taro → Taro, o'neill → O'Neill, but leave mixed case (McDonald, van) as written."""
    if token.islower() or token.isupper():
        return "-".join("'".join(p[:1].upper() + p[1:].lower() for p in part.split("'")) for part in token.split("-"))
    return token


_SPACES = re.compile(r"\s+")


def clean_display(name: str) -> str:
    name = unicodedata.normalize("NFKC", name).strip().strip("\"'")
    name = _READING.sub(" ", name)
    name = _AFFIX.sub("", name)
    name = _HONORIFIC.sub("", name.strip())
    name = _SPACES.sub(" ", name).strip(" ,.-")
    if "@" in name:
        return ""
    return name


def split_name(name: str) -> tuple[str | None, str | None]:
    """(first, last) from a cleaned person name."""
    name = clean_display(name)
    if not name:
        return None, None
    if has_cjk(name):
        name = re.sub(r"[A-Za-z].*$", "", name).strip() or name  # "山田太郎 Taro Yamada"
        if re.fullmatch(r"[\u30a0-\u30ff]+[・=＝][\u30a0-\u30ff・=＝]+", name):
            # A foreign name in katakana keeps its own order: マイク・ジョーンズ is Mike Jones.
            parts = re.split(r"[・=＝]", name)
            return parts[0], parts[-1]
        parts = name.split()
        if len(parts) >= 2:
            return " ".join(parts[1:]), parts[0]
        if len(name) <= 2:
            return None, name
        try:
            divided = _divider().divide_name(name)
            return divided.given or None, divided.family or None
        except Exception:  # noqa: BLE001 - an unusual name: keep it whole as the last name
            return None, name
    name = _SUFFIX.sub("", _NICKNAME.sub(" ", name)).strip(" ,")  # 'Ted L. "Dub" Snider Jr.' is Ted Snider
    if "," in name:
        last, _, first = name.partition(",")
        # "Kaminski, Vince J", "Fergus, Gary S.": the middle initial is not the first name.
        first = _INITIALS.sub("", first.strip()) or first.strip()
        return _capitalise_all(first.strip()) or None, _capitalise_all(last.strip()) or None
    parts = name.split()
    if len(parts) == 1:
        return _capitalise(parts[0]), None
    # "YAMADA Taro": the all-capitals token is the family name (Japanese business style).
    caps = [p for p in parts if p.isupper() and len(p) > 1]
    if len(caps) == 1 and len(parts) == 2 and not all(p.isupper() for p in parts):
        last = caps[0]
        first = next(p for p in parts if p is not last)
        return _capitalise(first), _capitalise(last)
    particles = {"van", "von", "de", "der", "da", "di", "del", "la", "le", "du", "bin", "al"}
    i = len(parts) - 1
    while i > 1 and parts[i - 1].lower() in particles:
        i -= 1
    return _capitalise(parts[0]), " ".join(_capitalise(p) if p.lower() not in particles else p for p in parts[i:]) if i < len(parts) else None


def _capitalise_all(text: str) -> str:
    return " ".join(_capitalise(t) for t in text.split())


# Family names that open a Korean or Chinese name written family-first in Latin letters.
_EAST_ASIAN_FAMILY = frozenset(
    "kim lee park choi jung jeong kang cho yoon yun jang lim han oh seo shin kwon hwang ahn song "
    "wang li zhang liu chen yang huang zhao wu zhou xu sun ma zhu hu guo he lin luo".split()
)


def family_first(first: str | None, last: str | None, email: str) -> tuple[str | None, str | None]:
    """ "Kim Min-jun" <minjun.kim@…>: a Korean or Chinese family name written first, which
    the address confirms by putting it last, is the last name."""
    if not first or not last or first.lower() not in _EAST_ASIAN_FAMILY:
        return first, last
    local = re.sub(r"[^a-z.]", "", email.split("@", 1)[0].lower())
    given, _, family = local.rpartition(".")
    if family == first.lower() and given == re.sub(r"[^a-z]", "", last.lower()):
        return last, first
    return first, last


# Local parts that name a role or a service, not a person (articles-email@, customer_service@).
_ROLE_WORDS = frozenset(
    "info news newsletter articles email mail service services support admin sales contact team office help noreply reply "
    "notifications notification alerts alert marketing billing accounts account customer customerservice webmaster postmaster "
    "communications press media hr jobs careers events orders order shop store".split()
)
_PARTICLES = frozenset("van von de der da di del la le du bin al st".split())


def from_local_part(email: str) -> tuple[str | None, str | None]:
    """first.last@, first_last@, first_m_last@ (the middle initial dropped), first.de.la.x@
    → (First, Last); anything else, or a role address (articles-email@), gives nothing."""
    local = email.split("@", 1)[0]
    parts = [p for p in re.split(r"[._-]", local) if p]
    if not 2 <= len(parts) <= 5 or not all(p.isalpha() for p in parts) or any(p.lower() in _ROLE_WORDS for p in parts):
        return None, None
    first, rest = parts[0], [p for p in parts[1:-1] if len(p) > 1] + parts[-1:]
    if len(first) < 2 or len(rest[-1]) < 2 or any(len(p) == 1 for p in rest):
        return None, None
    if len(rest) > 1 and not any(p.lower() in _PARTICLES for p in rest[:-1]):
        return None, None  # three names and no particle: which is the family name is a guess
    last = " ".join(p.lower() if p.lower() in _PARTICLES and i < len(rest) - 1 else p.capitalize() for i, p in enumerate(rest))
    return first.capitalize(), last[:1].upper() + last[1:]


def looks_like_name_line(line: str) -> bool:
    text = clean_display(line)
    if not text or len(text) > 40 or any(ch.isdigit() for ch in text):
        return False
    return bool(_JA_NAME_LINE.match(text) or _LATIN_NAME.match(text))


@lru_cache(maxsize=256)  # the sender's name is compared with every signature line
def _squashed(text: str) -> str:
    return re.sub(r"[\s　]", "", clean_display(text)).lower()


def same_person(a: str, b: str, *, exact: bool = False) -> bool:
    """Whether a signature line names the sender (ignoring spaces and case); with exact, the
    line is the name and nothing more ("Fiona Grant Consulting" is not Fiona Grant)."""
    x, y = _squashed(a), _squashed(b)
    return bool(x) and bool(y) and (x == y or not exact and (x in y or y in x))


def signs_as(line: str, name: str) -> bool:
    """Whether a signature line is the person's name as they sign it: their first name
    alone ("Kevin"), or first and last name with or without middle initials, suffixes or a
    fuller first name ("Joel L. Greene", "Donald A. Kaplan, Esq." for "Kaplan, Don")."""
    text = line.strip()
    if not text or not name or len(text) > 40 or any(ch.isdigit() for ch in text):
        return False
    first, last = split_name(name)
    if not first:
        return False
    words = text.strip(".,").split()
    if len(words) == 1:
        return words[0].lower() == first.lower()
    given, family = split_name(re.split(r",\s*(?!Esq|Jr|Sr)", text)[0])
    return bool(given and family and last and family.lower() == last.lower() and given[:1].lower() == first[:1].lower())

