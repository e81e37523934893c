"""crm.domain.outgoing_mail writes the MIME out by hand (fast): checked here against the email
package's own build of the same draft (compat32, as the builder was before), part by part,
and parsed back to the very text it was given."""

from __future__ import annotations

import email
from datetime import UTC, datetime
from email.header import Header, decode_header, make_header
from email.message import Message
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import formataddr

import pytest

from crm.domain.outgoing_mail import OutgoingDraft, build_message

NOW = datetime(2026, 12, 3, 1, 0, tzinfo=UTC)
BASE = {
    "from_address": "info@acme.example", "to_address": "taro@example.jp", "unsubscribe_url": "https://crm.acme.example/u/tok",
}
DRAFTS = [
    {"subject": "山田様 ご登録ありがとうございます", "text": "会社 株式会社\n山田様\ngold プランへようこそ。", "html": "<p>会社<br>山田様</p>", "charset": "utf-8", "from_name": "アクメ 営業部"},
    {"subject": "山田様 ご登録ありがとうございます", "text": "会社 株式会社\r\n山田様\n\nようこそ。\n", "html": "<p>会社</p>", "charset": "iso-2022-jp"},
    {"subject": "Welcome", "text": "Hello\nthere", "html": None, "charset": "utf-8", "from_name": "Acme, Sales", "reply_to": "sales@acme.example"},
    {"subject": "資料のご案内" * 12, "text": "山田様 🎉" * 40, "html": None, "charset": "utf-8"},
    {"subject": "株式会社アクメ 資料のご案内 " * 8, "text": "全角 と ASCII", "html": "<b>x</b>", "charset": "iso-2022-jp", "from_name": "アクメ"},
]


def reference(draft: OutgoingDraft) -> bytes:
    """The email package's build (the builder's former code)."""
    from email.policy import compat32

    msg: Message
    if draft.html is None:
        msg = MIMEText(draft.text, "plain", draft.charset)
    else:
        msg = MIMEMultipart("alternative")
        msg.attach(MIMEText(draft.text, "plain", draft.charset))
        msg.attach(MIMEText(draft.html, "html", draft.charset))
    msg["From"] = formataddr((draft.from_name, draft.from_address), draft.charset) if draft.from_name else draft.from_address
    msg["To"] = draft.to_address
    msg["Subject"] = Header(draft.subject, draft.charset, header_name="Subject").encode(linesep="\r\n") if not draft.subject.isascii() else draft.subject
    if draft.reply_to:
        msg["Reply-To"] = draft.reply_to
    return msg.as_bytes(policy=compat32.clone(linesep="\r\n", max_line_length=998))


def decoded(value: str | None) -> str:
    return str(make_header(decode_header(value or "")))


def parts(msg: Message) -> list[tuple[str, str | None, str | None, str]]:
    leaves = msg.get_payload() if msg.is_multipart() else [msg]
    return [(p.get_content_type(), p.get_content_charset(), p["Content-Transfer-Encoding"], p.get_payload(decode=True).decode(p.get_content_charset())) for p in leaves]  # type: ignore[union-attr]


@pytest.mark.parametrize("fields", DRAFTS)
def test_the_same_mail_as_the_email_package_builds(fields: dict[str, str]) -> None:
    draft = OutgoingDraft(**BASE, **fields)
    raw, message_id = build_message(draft, NOW)
    ours, theirs = email.message_from_bytes(raw), email.message_from_bytes(reference(draft))
    assert parts(ours) == parts(theirs)
    assert ours.get_content_type() == theirs.get_content_type() and ours["MIME-Version"] == "1.0"
    for name in ("From", "To", "Subject", "Reply-To"):
        assert decoded(ours[name]) == decoded(theirs[name]), name
    assert decoded(ours["Subject"]) == fields["subject"]
    assert ours["Message-ID"] == message_id and message_id.endswith("@acme.example>")
    assert ours["Date"] == "Thu, 03 Dec 2026 01:00:00 +0000"
    assert ours["List-Unsubscribe"] == "<https://crm.acme.example/u/tok>"  # https only: no mailbox reads a mailto's mail
    assert ours["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click" and ours["Auto-Submitted"] == "auto-generated"
    assert b"\n" not in raw.replace(b"\r\n", b"")  # CRLF only
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    if draft.charset == "iso-2022-jp":
        assert raw.isascii()
    for line in raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
        if b"=?" in line:
            assert all(len(word) <= 75 for word in line.split() if word.startswith(b"=?"))  # RFC 2047


def test_two_builds_differ_in_message_id_and_boundary() -> None:
    draft = OutgoingDraft(**BASE, **DRAFTS[0])
    (one, first), (two, second) = build_message(draft, NOW), build_message(draft, NOW)
    assert first != second and email.message_from_bytes(one).get_boundary() != email.message_from_bytes(two).get_boundary()
