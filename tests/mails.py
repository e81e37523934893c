"""Small message builders for tests (bytes, as a server would store them)."""

from __future__ import annotations

import os
from email.message import EmailMessage
from email.utils import make_msgid


def business_mail(
    *,
    sender: str = '"Taro Yamada" <taro.yamada@example.co.jp>',
    to: str = "rep@acme.example",
    subject: str = "Quotation request",
    body: str | None = None,
    message_id: str | None = None,
    attachment_bytes: int = 0,
) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = "Thu, 19 Nov 2026 16:02:00 +0900"
    msg["Message-ID"] = message_id or make_msgid(domain="example.co.jp")
    msg.set_content(
        body
        or "Hello,\n\nPlease send us a quotation for 20 licences.\n\nBest regards,\n\nTaro Yamada\nSales Manager\nExample Trading Co., Ltd.\nTel: +81 3-1234-5678\nhttps://example.co.jp\n"
    )
    if attachment_bytes:
        msg.add_attachment(os.urandom(attachment_bytes), maintype="application", subtype="octet-stream", filename="big.bin")
    return msg.as_bytes()
