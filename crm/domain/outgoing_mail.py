"""The automatic mail as sent: a pure builder from an `OutgoingDraft` to RFC 5322 bytes.

Built once, when the mail is queued, and stored: the bytes (and so the Message-ID) a retry
sends are the bytes first tried, which is what lets a retry be recognised.

Headers every automatic mail carries: From, To, Subject (RFC 2047 in the body's charset),
Date, Message-ID, MIME-Version, List-Unsubscribe (the one-click https URL and a mailto, RFC
2369) and List-Unsubscribe-Post: List-Unsubscribe=One-Click (RFC 8058). With HTML the body is
multipart/alternative (text first, HTML preferred by clients).

ISO-2022-JP (RFC 1468) is what older Japanese mail clients and some carriers' phones expect;
it cannot hold every character (e.g. emoji, some kanji variants): `OutgoingDraft` refuses
such text instead of sending "?" in its place.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from email.header import Header
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.policy import compat32
from email.utils import format_datetime, formataddr, make_msgid

CHARSETS = ("utf-8", "iso-2022-jp")
# Headers are not refolded (998 is RFC 5322's hard limit): the encoded Subject comes folded
# from Header, and List-Unsubscribe stays on one line for the receivers that parse it naively.
_POLICY = compat32.clone(linesep="\r\n", max_line_length=998)


@dataclass(frozen=True, slots=True)
class OutgoingDraft:
    from_address: str
    to_address: str
    subject: str
    text: str
    html: str | None
    charset: str
    unsubscribe_url: str
    unsubscribe_mailto: str
    from_name: str | None = None
    reply_to: str | None = None

    def __post_init__(self) -> None:
        if self.charset not in CHARSETS:
            raise ValueError(f"charset must be one of {CHARSETS}")
        if self.charset == "iso-2022-jp":
            for part in (self.subject, self.text, self.html or "", self.from_name or ""):
                part.encode("iso-2022-jp")  # UnicodeEncodeError: not representable
        for header in (self.from_address, self.to_address, self.reply_to or "", self.subject, self.from_name or ""):
            if "\r" in header or "\n" in header:
                raise ValueError("a header value holds a line break")


def _text_part(body: str, subtype: str, charset: str) -> MIMEText:
    # compat32 picks the transfer encoding per charset: 7bit for ISO-2022-JP, base64 for UTF-8.
    return MIMEText(body, subtype, charset)


def build_message(draft: OutgoingDraft, now: datetime) -> tuple[bytes, str]:
    """The message's bytes (CRLF line ends) and its Message-ID (with angle brackets)."""
    domain = draft.from_address.rsplit("@", 1)[-1]
    message_id = make_msgid(domain=domain)
    msg: MIMEText | MIMEMultipart
    if draft.html is None:
        msg = _text_part(draft.text, "plain", draft.charset)
    else:
        msg = MIMEMultipart("alternative")
        msg.attach(_text_part(draft.text, "plain", draft.charset))
        msg.attach(_text_part(draft.html, "html", draft.charset))
    msg["From"] = formataddr((draft.from_name, draft.from_address), draft.charset) if draft.from_name else draft.from_address
    msg["To"] = draft.to_address
    msg["Subject"] = Header(draft.subject, draft.charset, header_name="Subject").encode(linesep="\r\n") if not draft.subject.isascii() else draft.subject
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = message_id
    if draft.reply_to:
        msg["Reply-To"] = draft.reply_to
    msg["List-Unsubscribe"] = f"<{draft.unsubscribe_url}>, <{draft.unsubscribe_mailto}>"
    msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    # RFC 3834: an auto-generated message; auto-responders must not answer it (no mail loops).
    msg["Auto-Submitted"] = "auto-generated"
    return msg.as_bytes(policy=_POLICY), message_id
