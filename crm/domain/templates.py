"""Mail templates with merge fields: `{{lead.last_name}}`, `{{lead.company}}`, and a custom
field as `{{lead.custom.<key>}}`. Pure: text and values in, text out.

A merge field's value is the lead's data, which anyone who fills a web form writes: in an
HTML body it is HTML-escaped, in the subject it loses its line breaks (a header must stay
one line), in the plain-text body it goes as is. An unknown name is refused when the
template is saved (`unknown_fields`), so a typo never reaches a customer as `{{lead.compny}}`.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from crm.domain.drafts import LEAD_FIELDS
from crm.domain.rules import CUSTOM_FIELD_KEY

MERGE_FIELD = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
_STANDARD = re.compile(rf"^lead\.(?:{'|'.join(LEAD_FIELDS)})$")
_CUSTOM = re.compile(rf"^lead\.custom\.({CUSTOM_FIELD_KEY})$")
CHARSETS = ("utf-8", "iso-2022-jp")
_LEAD_NAMES = tuple((name, f"lead.{name}") for name in LEAD_FIELDS)


@dataclass(frozen=True, slots=True)
class RenderedMail:
    subject: str
    text: str
    html: str | None


def merge_fields(text: str) -> list[str]:
    """The merge field names in `text`, in order of appearance, each once."""
    return list(dict.fromkeys(m.group(1) for m in MERGE_FIELD.finditer(text)))


def unknown_fields(texts: Iterable[str | None], custom_keys: Iterable[str]) -> list[str]:
    """The merge field names of `texts` that are neither a lead field nor one of the
    organisation's custom fields."""
    custom = set(custom_keys)
    out: list[str] = []
    for text in texts:
        for name in merge_fields(text or ""):
            match = _CUSTOM.match(name)
            known = bool(_STANDARD.match(name)) or (match is not None and match.group(1) in custom)
            if not known and name not in out:
                out.append(name)
    return out


def lead_values(standard: Mapping[str, object], custom: Mapping[str, object]) -> dict[str, str]:
    """Merge field name → text, from a lead's standard fields (those given) and its custom
    values by key."""
    out = {name: "" if (value := standard[field]) is None else str(value) for field, name in _LEAD_NAMES if field in standard}
    for key, value in custom.items():
        out[f"lead.custom.{key}"] = "" if value is None else (f"{value:g}" if isinstance(value, float) else str(value))
    return out


def _pieces(text: str) -> tuple[tuple[str, str | None], ...]:
    """`text` as (literal, merge field name or None) pairs, parsed once per template."""
    out: list[tuple[str, str | None]] = []
    at = 0
    for match in MERGE_FIELD.finditer(text):
        out.append((text[at : match.start()], match.group(1)))
        at = match.end()
    out.append((text[at:], None))
    return tuple(out)


def _fill(pieces: tuple[tuple[str, str | None], ...], values: Mapping[str, str], escape: bool, one_line: bool) -> str:
    parts: list[str] = []
    for literal, name in pieces:
        parts.append(literal)
        if name is not None:
            value = values.get(name, "")
            if one_line and value:
                value = " ".join(value.split())
            parts.append(html.escape(value, quote=True) if escape and value else value)
    return "".join(parts)


@dataclass(frozen=True, slots=True)
class Template:
    """A template parsed once, rendered for many leads (a rule's batch) without re-scanning."""

    subject: tuple[tuple[str, str | None], ...]
    text: tuple[tuple[str, str | None], ...]
    html: tuple[tuple[str, str | None], ...] | None

    @classmethod
    def parse(cls, subject: str, text: str, html_body: str | None) -> Template:
        return cls(_pieces(subject), _pieces(text), _pieces(html_body) if html_body is not None else None)

    @property
    def names(self) -> frozenset[str]:
        """The merge field names the template uses."""
        return frozenset(name for part in (self.subject, self.text, self.html or ()) for _literal, name in part if name is not None)

    def render(self, values: Mapping[str, str]) -> RenderedMail:
        """Filled with `values` (see lead_values); a name without a value gives ""."""
        return RenderedMail(
            subject=_fill(self.subject, values, escape=False, one_line=True),
            text=_fill(self.text, values, escape=False, one_line=False),
            html=_fill(self.html, values, escape=True, one_line=False) if self.html is not None else None,
        )


def render(subject: str, text: str, html_body: str | None, values: Mapping[str, str]) -> RenderedMail:
    """The template filled with `values` (see lead_values); a name without a value gives ""."""
    return Template.parse(subject, text, html_body).render(values)
