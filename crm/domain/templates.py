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
    """Merge field name → text, from a lead's standard fields and its custom values by key."""
    out = {f"lead.{name}": "" if standard.get(name) is None else str(standard.get(name)) for name in LEAD_FIELDS}
    for key, value in custom.items():
        out[f"lead.custom.{key}"] = "" if value is None else (f"{value:g}" if isinstance(value, float) else str(value))
    return out


def _fill(text: str, values: Mapping[str, str], escape: bool, one_line: bool) -> str:
    def value(match: re.Match[str]) -> str:
        out = values.get(match.group(1), "")
        if one_line:
            out = " ".join(out.split())
        return html.escape(out, quote=True) if escape else out

    return MERGE_FIELD.sub(value, text)


def render(subject: str, text: str, html_body: str | None, values: Mapping[str, str]) -> RenderedMail:
    """The template filled with `values` (see lead_values); a name without a value gives ""."""
    return RenderedMail(
        subject=_fill(subject, values, escape=False, one_line=True),
        text=_fill(text, values, escape=False, one_line=False),
        html=_fill(html_body, values, escape=True, one_line=False) if html_body is not None else None,
    )
