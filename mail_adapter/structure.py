"""Reading an IMAP BODYSTRUCTURE (RFC 3501 §7.4.2) into the list of parts worth fetching.

Pure: imapclient's parsed BODYSTRUCTURE in, `PartInfo`s out. The mailbox fetches only the
parts `wanted_parts` picks, so a 20 MB attachment is never downloaded.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from mail_adapter.parsing import CALENDAR_TYPES, decode_header_value

# Bodies larger than this are fetched only up to it (<0.N> partial fetch): a signature is
# at the top of the sender's text, and a 5 MB text part must not cost 5 MB.
MAX_TEXT_BYTES = 512 * 1024
MAX_CALENDAR_BYTES = 2 * 1024 * 1024
MAX_NESTED = 3
MAX_WANTED = 40


@dataclass(frozen=True, slots=True)
class PartInfo:
    """One leaf of the structure. `nested` counts message/rfc822 levels above it."""

    section: str
    content_type: str
    charset: str | None
    encoding: str | None
    size: int
    filename: str | None
    method: str | None
    attachment: bool
    nested: int


@dataclass(frozen=True, slots=True)
class NestedMessage:
    """An attached message (message/rfc822): its header is fetched as `<section>.HEADER`."""

    section: str
    nested: int


def _s(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return "" if value is None else str(value)


def _params(raw: Any) -> dict[str, str]:
    """A (k, v, k, v) parameter list as a dict, RFC 2231 `name*` values decoded."""
    out: dict[str, str] = {}
    if not isinstance(raw, (list, tuple)):
        return out
    items = list(raw)
    for key, value in zip(items[0::2], items[1::2], strict=False):
        name = _s(key).lower()
        text = _s(value)
        if name.endswith("*"):
            name = name.rstrip("*")
            if "''" in text:
                from urllib.parse import unquote

                charset, _, encoded = text.partition("''")
                text = unquote(encoded, encoding=charset or "utf-8", errors="replace")
        out[name] = decode_header_value(text)
    return out


def _disposition(part: Any, index: int) -> tuple[bool, dict[str, str]]:
    """(is attachment, parameters) from the extension data at `index`, when present."""
    if len(part) <= index or not isinstance(part[index], (list, tuple)) or not part[index]:
        return False, {}
    kind = _s(part[index][0]).lower()
    params = _params(part[index][1]) if len(part[index]) > 1 else {}
    return kind == "attachment", params


def walk_structure(bs: Any, section: str = "", nested: int = 0, depth: int = 0) -> Iterator[PartInfo | NestedMessage]:
    """Every leaf and attached message of `bs` with its IMAP section number.

    `section` is the number of the node itself ("" for the top); a multipart's children are
    section.1, section.2…; a non-multipart body (top level or inside message/rfc822) is
    section.1 (RFC 3501 §6.4.5).
    """
    if depth > 20 or not isinstance(bs, (list, tuple)) or not bs:
        return
    if isinstance(bs[0], list):  # multipart: imapclient puts the children in one list first
        for i, child in enumerate(bs[0]):
            yield from walk_structure(child, f"{section}.{i + 1}".lstrip("."), nested, depth + 1)
        return
    if len(bs) < 2:
        return  # not even a type and subtype: a broken server's answer, nothing to fetch
    here = section or "1"
    ctype = f"{_s(bs[0]).lower()}/{_s(bs[1]).lower()}"
    params = _params(bs[2]) if len(bs) > 2 else {}
    encoding = _s(bs[5]).lower() if len(bs) > 5 else None
    size = int(bs[6]) if len(bs) > 6 and isinstance(bs[6], int) else 0
    if ctype == "message/rfc822" and len(bs) > 8:
        yield NestedMessage(here, nested + 1)
        if nested + 1 <= MAX_NESTED:
            body = bs[8]
            multipart = isinstance(body, (list, tuple)) and body and isinstance(body[0], list)
            yield from walk_structure(body, here if multipart else f"{here}.1", nested + 1, depth + 1)
        return
    # Extension data starts after the fields of the body type: text/* has `lines` at 7.
    ext = 8 if ctype.startswith("text/") else 7
    attachment, disp = _disposition(bs, ext + 1)
    filename = disp.get("filename") or params.get("name")
    yield PartInfo(here, ctype, params.get("charset"), encoding, size, filename, params.get("method"), attachment, nested)


def is_calendar_part(p: PartInfo) -> bool:
    return p.content_type in CALENDAR_TYPES or (p.filename or "").lower().endswith((".ics", ".vcs"))


def wanted_parts(bs: Any) -> tuple[list[PartInfo], list[NestedMessage]]:
    """The parts a draft and an invitation need: readable text bodies and calendar objects,
    and the headers of attached messages (forwarded originals). Nothing else."""
    parts: list[PartInfo] = []
    nested: list[NestedMessage] = []
    for item in walk_structure(bs):
        if isinstance(item, NestedMessage):
            if item.nested <= MAX_NESTED:
                nested.append(item)
            continue
        if is_calendar_part(item):
            if item.size <= MAX_CALENDAR_BYTES:
                parts.append(item)
        elif item.content_type in ("text/plain", "text/html") and not item.attachment:
            parts.append(item)
        if len(parts) >= MAX_WANTED:
            break
    return parts, nested[:MAX_WANTED]
