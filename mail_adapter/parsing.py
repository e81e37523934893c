"""Bytes of a mail (whole, or the header plus the parts a partial fetch brought) to a
`ParsedMessage`: decoded headers, addresses, the readable body and the calendar parts.

Never raises on bad mail: broken charsets degrade to replacement characters, broken
structure to whatever could be read. Limits keep hostile input bounded in time.
"""

from __future__ import annotations

import email
import email.policy
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from email.feedparser import BytesFeedParser
from email.header import decode_header
from email.message import Message
from email.utils import getaddresses, parsedate_to_datetime

from crm.domain.rules import normalise_email
from mail_adapter.charsets import decode_text
from mail_adapter.html_text import html_to_text

MAX_DEPTH = 20  # nested multiparts read; deeper ones are skipped, not an error
MAX_PARTS = 200  # leaf parts looked at in one message
# What the MIME parser itself builds: deeper parts are kept as opaque bodies (the stdlib
# parser recurses once per level and fails near 1000), and the rest of a message is not
# parsed once this many parts were made (a 50 MB message can hold a million of them).
MAX_PARSE_DEPTH = MAX_DEPTH + 2
MAX_PARSE_PARTS = 5 * MAX_PARTS
PARSE_CHUNK = 64 * 1024
MAX_HEADER_CHARS = 64 * 1024  # a header value longer than this is truncated
MAX_TEXT_CHARS = 512 * 1024  # body text kept for extraction
# Markup converted to text: generous over MAX_TEXT_CHARS (tags and entities take room), and
# cut *before* the conversion, whose time and memory grow with the markup.
MAX_HTML_CHARS = 4 * MAX_TEXT_CHARS
# Of a text/plain or text/html part, the transfer-encoded payload decoded (base64: 4 bytes
# for 3): enough for MAX_HTML_CHARS of UTF-8 text, not the whole of a 50 MB part.
MAX_TEXT_PART_ENCODED = 4 * MAX_HTML_CHARS
CALENDAR_TYPES = ("text/calendar", "application/ics", "text/x-vcalendar")

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_FOLD = re.compile(r"\r?\n[ \t]*")


@dataclass(frozen=True, slots=True)
class Address:
    """One mailbox of an address header; `email` is normalised (see rules.normalise_email)."""

    name: str
    email: str


@dataclass(frozen=True, slots=True)
class BodyPart:
    """A leaf part as a partial IMAP fetch or a MIME walk delivers it (still encoded).

    `section` is the IMAP body section ("1", "2.1"); `nested` counts the message/rfc822
    levels above the part, so forwarded originals stay apart from the sender's text.
    """

    content_type: str
    payload: bytes
    charset: str | None = None
    encoding: str | None = None
    filename: str | None = None
    method: str | None = None
    section: str = ""
    nested: int = 0


@dataclass(frozen=True, slots=True)
class CalendarPart:
    """An iCalendar object found in the message, decoded to bytes (UTF-8 as sent)."""

    content_type: str
    method: str | None
    filename: str | None
    data: bytes


@dataclass(frozen=True)
class ParsedMessage:
    """What the extractors read. Header values are decoded (RFC 2047/2231) and single-line.

    headers: every header in order as (lower-case name, value); use `header()`.
    text: the sender's body as text (text/plain, or the HTML rendered when there is no
      usable plain part); quoted replies are still in it, marked the way the client wrote them.
    html: the first HTML body part, raw, for extractors that read table signatures.
    forwarded: messages attached as message/rfc822 (a forwarded original), parsed alike.
    """

    headers: tuple[tuple[str, str], ...] = ()
    subject: str = ""
    message_id: str | None = None
    date: datetime | None = None
    from_: tuple[Address, ...] = ()
    sender: tuple[Address, ...] = ()
    reply_to: tuple[Address, ...] = ()
    to: tuple[Address, ...] = ()
    cc: tuple[Address, ...] = ()
    text: str = ""
    html: str | None = None
    calendar_parts: tuple[CalendarPart, ...] = ()
    attachments: tuple[str, ...] = ()
    forwarded: tuple[ParsedMessage, ...] = ()
    defects: tuple[str, ...] = field(default=())

    def header(self, name: str) -> str | None:
        """The first value of header `name` (case-insensitive), or None."""
        name = name.lower()
        return next((v for k, v in self.headers if k == name), None)

    def header_all(self, name: str) -> list[str]:
        """Every value of header `name`, topmost first (the order trace headers need)."""
        name = name.lower()
        return [v for k, v in self.headers if k == name]


# ---------------------------------------------------------------- headers


def decode_header_value(raw: str) -> str:
    """RFC 2047 words and raw 8-bit bytes to one clean line of text."""
    raw = raw[:MAX_HEADER_CHARS]
    if raw.isascii() and raw.isprintable() and "=?" not in raw:
        # Most values: no encoded word, no 8-bit byte, no fold or control character (all
        # unprintable), so decoding and cleaning would give the value back, stripped.
        return raw.strip()
    try:
        chunks = decode_header(raw)
    except Exception:  # noqa: BLE001 - the stdlib raises several types on garbage
        chunks = [(raw, None)]
    out: list[str] = []
    for chunk, charset in chunks:
        if isinstance(chunk, str):
            out.append(_raw_to_text(chunk))
        else:
            out.append(decode_text(chunk, charset))
    # decode_header drops the space between an encoded word and plain text only where the
    # RFC says so; joining as is keeps Japanese names unspaced.
    return clean_line("".join(out) if any(c for _, c in chunks) else " ".join(out))


def _raw_to_text(value: str) -> str:
    """Header text parsed from bytes keeps 8-bit bytes as surrogates: decode them."""
    try:
        data = value.encode("ascii", "surrogateescape")
    except UnicodeEncodeError:
        return value
    if data.isascii() and b"\x1b" not in data:
        return value
    return decode_text(data, None)


def clean_line(value: str) -> str:
    """Unfold and drop control characters (CR/LF/NUL in a display name are an attack)."""
    return _CONTROL.sub("", _FOLD.sub(" ", value)).replace("\r", " ").replace("\n", " ").strip()


def parse_addresses(raw_values: Iterable[str]) -> tuple[Address, ...]:
    """Address header values (undecoded, so quoting survives) to Address tuples."""
    out: list[Address] = []
    raws = [v[:MAX_HEADER_CHARS] for v in raw_values]
    try:
        pairs = getaddresses(raws)
    except Exception:  # noqa: BLE001
        pairs = []
    for name, addr in pairs:
        addr = clean_line(_raw_to_text(addr))
        if "@" not in addr:
            continue
        email_norm = normalise_email(addr)
        if email_norm is None:
            continue
        out.append(Address(name=decode_header_value(name).strip('"\' '), email=email_norm))
    return tuple(out)


def _headers(msg: Message) -> tuple[tuple[str, str], ...]:
    out = []
    for k, v in msg.raw_items():
        if isinstance(v, str):
            out.append((k.lower().strip(), decode_header_value(v)))
    return tuple(out)


def parse_header_block(raw: bytes) -> tuple[tuple[str, str], ...]:
    """Every header of a header block as (lower-case name, decoded value), topmost first."""
    return _headers(email.message_from_bytes(raw.replace(b"\x00", b""), policy=email.policy.compat32))


def _date(msg: Message) -> datetime | None:
    raw = msg.get("Date")
    if not raw:
        return None
    try:
        return parsedate_to_datetime(str(raw))
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def _message_id(msg: Message) -> str | None:
    raw = next(iter(_all(msg, "Message-ID")), None)  # raw: an RFC 6532 UTF-8 id stays readable
    if not raw:
        return None
    value = clean_line(_raw_to_text(raw))
    m = re.search(r"<[^<>\s]+>", value)
    return m.group(0) if m else (f"<{value}>" if value and " " not in value else None)


# ---------------------------------------------------------------- bodies


def _walk(msg: Message, depth: int = 0, section: str = "", nested: int = 0) -> Iterator[BodyPart | tuple[str, Message, int]]:
    """Leaf parts of `msg` in order; an attached message yields ("rfc822", msg, nested)."""
    stack: list[tuple[Message, str, int, int]] = [(msg, section, depth, nested)]
    seen = 0
    while stack and seen < MAX_PARTS:
        part, sec, d, nest = stack.pop()
        ctype = part.get_content_type()
        if part.is_multipart():
            if d >= MAX_DEPTH:
                continue
            children = part.get_payload()
            if not isinstance(children, list):
                continue
            if ctype == "message/rfc822":
                for child in children[:1]:
                    if isinstance(child, Message):
                        yield ("rfc822", child, nest + 1)
                continue
            for i, child in reversed(list(enumerate(children, 1))):
                if isinstance(child, Message):
                    stack.append((child, f"{sec}.{i}" if sec else str(i), d + 1, nest))
            continue
        seen += 1
        payload = _text_payload(part) if ctype in ("text/plain", "text/html") else _decoded(part)
        if not isinstance(payload, bytes):
            raw = part.get_payload()
            payload = raw.encode("ascii", "surrogateescape") if isinstance(raw, str) else b""
        yield BodyPart(
            content_type=ctype,
            payload=payload,
            charset=_param(part, "charset"),
            encoding=None,  # already decoded above
            filename=_filename(part),
            method=_param(part, "method"),
            section=sec or "1",
            nested=nest,
        )


def _decoded(part: Message) -> bytes | None:
    try:
        payload = part.get_payload(decode=True)
    except Exception:  # noqa: BLE001
        return None
    return payload if isinstance(payload, bytes) else None


def _text_payload(part: Message) -> bytes | None:
    """A body text part decoded from its first MAX_TEXT_PART_ENCODED characters only: only
    its beginning is ever read, and decoding all of a huge part costs time and memory."""
    raw = part.get_payload()
    if not isinstance(raw, str) or len(raw) <= MAX_TEXT_PART_ENCODED:
        return _decoded(part)
    head = raw[:MAX_TEXT_PART_ENCODED]
    encoding = str(part.get("Content-Transfer-Encoding", "")).strip().lower()
    if encoding == "base64":
        head = head[: head.rfind("\n") + 1] or head  # whole lines: a cut base64 quantum is noise
    return decode_payload(head.encode("ascii", "surrogateescape"), encoding)


def _param(part: Message, name: str) -> str | None:
    try:
        value = part.get_param(name)
    except Exception:  # noqa: BLE001
        return None
    if isinstance(value, tuple):  # RFC 2231 (charset, language, text)
        value = email.utils.collapse_rfc2231_value(value)
    return clean_line(str(value)) if value else None


def _filename(part: Message) -> str | None:
    try:
        name = part.get_filename()
    except Exception:  # noqa: BLE001
        return None
    return decode_header_value(name) if name else None


def decode_payload(data: bytes, encoding: str | None) -> bytes:
    """Undo a Content-Transfer-Encoding (for parts fetched raw by section)."""
    enc = (encoding or "").lower()
    try:
        if enc == "base64":
            import base64

            return base64.b64decode(re.sub(rb"[^A-Za-z0-9+/=]", b"", data) + b"==", validate=False)
        if enc == "quoted-printable":
            import quopri

            return quopri.decodestring(data)
    except Exception:  # noqa: BLE001 - broken encodings degrade to the raw bytes
        return data
    return data


def is_calendar(part: BodyPart) -> bool:
    name = (part.filename or "").lower()
    return part.content_type in CALENDAR_TYPES or name.endswith((".ics", ".vcs"))


def _assemble(msg: Message, parts: Iterable[BodyPart | tuple[str, Message, int]], *, depth: int = 0) -> ParsedMessage:
    plain: list[str] = []
    html: list[str] = []
    calendars: list[CalendarPart] = []
    attachments: list[str] = []
    forwarded: list[ParsedMessage] = []
    for item in parts:
        if isinstance(item, tuple):
            if depth < 3:
                forwarded.append(_parse_message(item[1], depth=depth + 1))
            continue
        part = item
        if part.nested:
            continue  # text of attached messages belongs to `forwarded`
        payload = decode_payload(part.payload, part.encoding)
        if is_calendar(part):
            calendars.append(CalendarPart(part.content_type, part.method, part.filename, payload))
            continue
        if part.filename and not part.content_type.startswith("text/"):
            attachments.append(part.filename)
            continue
        if part.content_type == "text/plain" and not _is_attachment_name(part.filename):
            plain.append(decode_text(payload, part.charset))
        elif part.content_type == "text/html" and not _is_attachment_name(part.filename):
            html.append(decode_text(payload, part.charset))
        elif part.filename:
            attachments.append(part.filename)
    plain_text = _CONTROL.sub("", "\n".join(plain)).replace("\r\n", "\n").replace("\r", "\n")
    html_raw = html[0] if html else None
    text = plain_text
    if html and len(plain_text.strip()) < 3:
        text = html_to_text("\n".join(html)[:MAX_HTML_CHARS])
    return ParsedMessage(
        headers=_headers(msg),
        subject=decode_header_value((_all(msg, "Subject") or [""])[0]),
        message_id=_message_id(msg),
        date=_date(msg),
        from_=parse_addresses(_all(msg, "From")),
        sender=parse_addresses(_all(msg, "Sender")),
        reply_to=parse_addresses(_all(msg, "Reply-To")),
        to=parse_addresses(_all(msg, "To")),
        cc=parse_addresses(_all(msg, "Cc")),
        text=text[:MAX_TEXT_CHARS],
        html=html_raw[:MAX_TEXT_CHARS] if html_raw else None,
        calendar_parts=tuple(calendars),
        attachments=tuple(attachments),
        forwarded=tuple(forwarded),
        defects=tuple(type(d).__name__ for d in getattr(msg, "defects", [])[:20]),
    )


def _is_attachment_name(filename: str | None) -> bool:
    return bool(filename) and not (filename or "").lower().endswith((".txt", ".htm", ".html"))


def _all(msg: Message, name: str) -> list[str]:
    """Every raw value of a header. Not `get_all`: for a value with raw 8-bit bytes (UTF-8
    display names are common) compat32 returns a Header whose str() is U+FFFD garbage;
    the raw value keeps the bytes as surrogates for decode_header_value to decode."""
    name = name.lower()
    return [v if isinstance(v, str) else str(v) for k, v in msg.raw_items() if k.lower() == name]


class _Part(Message):
    """A part the parser reached too deep: its declared type is ignored, so the parser
    takes its body as bytes instead of descending into it."""

    opaque = False

    def get_content_type(self) -> str:
        return "application/octet-stream" if self.opaque else super().get_content_type()


class _BoundedParser(BytesFeedParser):
    """The stdlib's MIME parser with MAX_PARSE_DEPTH enforced where it creates each part
    (the one step every nesting level goes through), counting the parts it made."""

    def __init__(self) -> None:
        super().__init__(_factory=_Part, policy=email.policy.compat32)
        self.parts = 0

    def _new_message(self) -> None:
        super()._new_message()  # type: ignore[misc]
        stack: list[_Part] = self._msgstack  # type: ignore[attr-defined]
        self.parts += 1
        if len(stack) > MAX_PARSE_DEPTH:
            stack[-1].opaque = True


def mime_tree(raw: bytes | bytearray) -> Message:
    """A whole message parsed into its MIME tree, bounded in depth, and read only up to the
    chunk in which MAX_PARSE_PARTS parts were made. Never raises."""
    parser = _BoundedParser()
    data = memoryview(raw)  # NULs dropped chunk by chunk: no second copy of the whole message
    for start in range(0, len(data), PARSE_CHUNK):
        parser.feed(bytes(data[start : start + PARSE_CHUNK]).replace(b"\x00", b""))
        if parser.parts > MAX_PARSE_PARTS:
            break
    return parser.close()


def _parse_message(msg: Message, *, depth: int = 0) -> ParsedMessage:
    return _assemble(msg, _walk(msg), depth=depth)


def parse_message(raw: bytes | bytearray) -> ParsedMessage:
    """A whole message (RFC 5322 bytes) to a ParsedMessage. Never raises."""
    return _parse_message(mime_tree(raw))


def parse_fetched(header: bytes, parts: Iterable[BodyPart], nested_headers: dict[str, bytes] | None = None) -> ParsedMessage:
    """A message from a partial fetch: its header block and the parts chosen by section.

    nested_headers maps the section of an attached message/rfc822 ("2") to its header
    block, so a forwarded original comes out in `forwarded` as a MIME walk would give it.
    """
    msg = email.message_from_bytes(header.replace(b"\x00", b""), policy=email.policy.compat32)
    parts = list(parts)
    parsed = _assemble(msg, [p for p in parts if not p.nested])
    forwarded = []
    for sec, hdr in sorted((nested_headers or {}).items()):
        sub = email.message_from_bytes(hdr.replace(b"\x00", b""), policy=email.policy.compat32)
        inner = [replace(p, nested=0) for p in parts if p.nested and p.section.startswith(sec + ".")]
        forwarded.append(_assemble(sub, inner, depth=1))
    return replace(parsed, forwarded=parsed.forwarded + tuple(forwarded)) if forwarded else parsed
