"""From a parsed message to what the use cases read (`OpenedMessage`): one path for a
message fetched from IMAP, a raw message the widget uploads, and `mailwidget inspect`."""

from __future__ import annotations

from crm.domain.drafts import MessageRef, ReadContext
from crm.domain.ports import CalendarObject, OpenedMessage
from mail_adapter.leads import extract_lead
from mail_adapter.parsing import ParsedMessage, parse_message


def read_parsed(parsed: ParsedMessage, ref: MessageRef, ctx: ReadContext, bytes_fetched: int = 0) -> OpenedMessage:
    sender = parsed.from_[0].email if parsed.from_ else None
    return OpenedMessage(
        ref=ref,
        message_id=parsed.message_id,
        subject=parsed.subject,
        sender=sender or None,
        draft=extract_lead(parsed, ctx),
        calendars=tuple(CalendarObject(c.data, c.method, c.filename) for c in parsed.calendar_parts),
        headers=parsed.headers,
        bytes_fetched=bytes_fetched,
    )


def read_raw(raw: bytes | bytearray, ctx: ReadContext, ref: MessageRef | None = None) -> OpenedMessage:
    """A whole RFC 5322 message (uploaded by the widget when the backend has no IMAP access)."""
    parsed = parse_message(raw)
    return read_parsed(parsed, ref or MessageRef(folder="", message_id=parsed.message_id), ctx, len(raw))


# How much of the header block is judged: far more than real headers (long Received and
# DKIM chains run to tens of kilobytes), still a bounded look at a 50 MB upload.
HEADER_WINDOW = 1024 * 1024


def looks_like_mail(raw: bytes | bytearray) -> bool:
    """True when the bytes start with a header block (at least one `Name: value` line before
    the blank line): `inspect` and the upload refuse anything else with a clear error.
    Only whole lines are judged: a window that ends inside the header block cuts its last
    line, which says nothing about the message."""
    window = bytes(raw[:HEADER_WINDOW]).replace(b"\r\n", b"\n")  # bytes: a bytearray's lines are unhashable
    head, blank, _body = window.partition(b"\n\n")
    if not blank and len(raw) > HEADER_WINDOW:
        head = head.rpartition(b"\n")[0]
    lines = [ln for ln in head.split(b"\n") if ln and not ln[:1].isspace()]
    if not lines or b"\x00" in head[:512]:
        return False
    named = [ln for ln in lines if b":" in ln and ln.split(b":", 1)[0].strip() and b" " not in ln.split(b":", 1)[0].strip()]
    known = {b"from", b"to", b"subject", b"date", b"message-id", b"received", b"mime-version", b"return-path"}
    return len(named) == len(lines) and any(ln.split(b":", 1)[0].strip().lower() in known for ln in named)
