"""Message parsing: encodings and hostile input degrade to readable text, never an exception."""

from __future__ import annotations

import base64

import pytest

from mail_adapter.charsets import decode_text
from mail_adapter.parsing import parse_message


def mail(headers: str, body: bytes) -> bytes:
    return headers.replace("\n", "\r\n").encode() + b"\r\n" + body


class TestCharsets:
    def test_iso_2022_jp_with_circled_digits_and_kabu(self) -> None:
        text = "①㈱山田商事 髙橋"
        raw = text.encode("cp932")
        from mail_adapter.charsets import iso2022jp_to_text

        jis = "株式会社".encode("iso2022_jp")
        assert iso2022jp_to_text(jis) == "株式会社"
        # Outlook writes CP932's NEC row 13 inside ISO-2022-JP escapes: not in JIS X 0208.
        assert decode_text(b"\x1b$B-!\x1b(B", "ISO-2022-JP") == "①"
        assert decode_text(b"\x1b$B-j\x1b(B", "iso-2022-jp") == "㈱"
        assert decode_text(raw, "Shift_JIS") == text  # the label means CP932 in practice

    @pytest.mark.parametrize("label", ["x-unknown", "bad-charset", "", None])
    def test_unknown_labels_fall_back_to_detection(self, label: str | None) -> None:
        assert decode_text("お世話になっております。山田です。".encode(), label) == "お世話になっております。山田です。"

    def test_utf8_mislabelled_as_latin1(self) -> None:
        assert decode_text("Café Müller".encode(), "iso-8859-1") == "Café Müller"

    def test_real_latin1(self) -> None:
        assert decode_text("Café Müller".encode("latin-1"), "iso-8859-1") == "Café Müller"

    def test_euc_jp(self) -> None:
        assert decode_text("営業部 部長".encode("euc_jp"), "EUC-JP") == "営業部 部長"


class TestHeaders:
    def test_rfc2047_and_rfc2231(self) -> None:
        raw = mail(
            'From: =?ISO-2022-JP?B?GyRCOzNFRBsoQiAbJEJCQE86GyhC?= <taro@example.co.jp>\nSubject: =?UTF-8?B?44GK6KaL56mN44KK?=\n'
            'MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="b"\n',
            b"--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nhello\r\n--b\r\nContent-Type: application/pdf\r\n"
            b"Content-Disposition: attachment; filename*=UTF-8''%E8%A6%8B%E7%A9%8D.pdf\r\n\r\nxx\r\n--b--\r\n",
        )
        msg = parse_message(raw)
        assert msg.from_[0].name == "山田 太郎"
        assert msg.subject == "お見積り"
        assert msg.attachments == ("見積.pdf",)

    @pytest.mark.parametrize("charset", ["utf-8", "cp932"])
    def test_raw_8bit_headers_as_mailers_really_send_them(self, charset: str) -> None:
        """No RFC 2047 at all: UTF-8 (RFC 6532) or Shift_JIS bytes straight in the header."""
        raw = "From: 佐々木 健一 <k.sasaki@mirai-kogyo.jp>\r\nTo: 鈴木 <s@ourco.example>\r\nSubject: 打ち合わせの件\r\n\r\nbody".encode(charset)
        msg = parse_message(raw)
        assert msg.from_[0].name == "佐々木 健一" and msg.to[0].name == "鈴木"
        assert msg.subject == "打ち合わせの件"

    def test_a_display_name_with_crlf_or_script_is_one_safe_line(self) -> None:
        raw = mail('From: "Evil\\r\\nBcc: x <script>alert(1)</script>" <evil@example.com>\nSubject: hi\n', b"body")
        msg = parse_message(raw)
        assert "\n" not in msg.from_[0].name and "\r" not in msg.from_[0].name
        assert msg.from_[0].email == "evil@example.com"


class TestHostileInput:
    def test_truncated_mime(self) -> None:
        raw = mail('From: a@example.com\nContent-Type: multipart/mixed; boundary="zz"\n', b"--zz\r\nContent-Type: text/plain\r\n\r\nhalf a mess")
        assert "half a mess" in parse_message(raw).text

    def test_a_five_megabyte_header(self) -> None:
        raw = mail("From: a@example.com\nX-Big: " + "a" * (5 * 2**20) + "\nSubject: s\n", b"body")
        msg = parse_message(raw)
        assert msg.from_[0].email == "a@example.com"

    def test_a_hundred_level_nested_multipart(self) -> None:
        body = b""
        head = "From: a@example.com\nContent-Type: multipart/mixed; boundary=b0\n"
        for i in range(1, 100):
            body += f"--b{i - 1}\r\nContent-Type: multipart/mixed; boundary=b{i}\r\n\r\n".encode()
        body += b"--b99\r\nContent-Type: text/plain\r\n\r\ndeep text\r\n--b99--\r\n"
        msg = parse_message(mail(head, body))  # must not recurse without bound
        assert msg.from_[0].email == "a@example.com"

    @pytest.mark.parametrize("levels", [950, 5000])
    def test_multipart_nested_past_the_interpreter_recursion_limit(self, levels: int) -> None:
        opening = b"".join(b"--b%d\r\nContent-Type: multipart/mixed; boundary=b%d\r\n\r\n" % (i - 1, i) for i in range(1, levels))
        closing = b"".join(b"\r\n--b%d--\r\n" % i for i in reversed(range(levels)))
        head = "From: a@example.com\nSubject: deep\nContent-Type: multipart/mixed; boundary=b0\n"
        top = b"--b0\r\nContent-Type: text/plain\r\n\r\nvisible text\r\n"
        msg = parse_message(mail(head, top + opening + b"--b%d\r\nContent-Type: text/plain\r\n\r\nbottom\r\n" % (levels - 1) + closing))
        assert msg.subject == "deep" and "visible text" in msg.text and "bottom" not in msg.text

    def test_a_message_rfc822_chain_past_the_recursion_limit(self) -> None:
        inner = b"From: last@example.com\r\nSubject: last\r\n\r\nend\r\n"
        for i in range(2000):
            inner = b"From: f%d@example.com\r\nContent-Type: message/rfc822\r\n\r\n" % i + inner
        msg = parse_message(b"Subject: top\r\n" + inner)
        assert msg.subject == "top"

    def test_three_hundred_thousand_parts_are_not_all_parsed(self) -> None:
        from mail_adapter import parsing

        parts = b"".join(b"--z\r\nContent-Type: text/plain\r\n\r\npart %d\r\n" % i for i in range(300_000))
        raw = mail("From: a@example.com\nContent-Type: multipart/mixed; boundary=z\n", parts + b"--z--\r\n")
        parser_parts = []
        original = parsing._BoundedParser._new_message

        def counting(self):  # type: ignore[no-untyped-def]
            original(self)
            parser_parts.append(1)

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(parsing._BoundedParser, "_new_message", counting)
            msg = parse_message(raw)
        assert msg.text.startswith("part 0\npart 1\n") and len(parser_parts) < 2 * parsing.MAX_PARSE_PARTS

    def test_nul_bytes(self) -> None:
        msg = parse_message(mail("From: a@exa\x00mple.com\nSubject: x\x00y\n", b"te\x00xt"))
        assert "\x00" not in msg.text and "\x00" not in msg.subject

    def test_broken_base64_and_qp(self) -> None:
        raw = mail("From: a@example.com\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: base64\n", base64.b64encode("日本語".encode())[:-3] + b"!!")
        assert isinstance(parse_message(raw).text, str)

    def test_html_only_body_becomes_text(self) -> None:
        raw = mail("From: a@example.com\nContent-Type: text/html; charset=utf-8\n", "<p>山田 太郎<br>TEL <a href='tel:0312345678'>03-1234-5678</a></p>".encode())
        text = parse_message(raw).text
        assert "山田 太郎" in text and "03-1234-5678" in text and "<" not in text

    def test_forwarded_message_rfc822(self) -> None:
        inner = b"From: Original <orig@customer.example>\r\nSubject: inner\r\n\r\nhello from inside\r\n"
        raw = mail('From: colleague@acme.example\nContent-Type: multipart/mixed; boundary="o"\n', b"--o\r\nContent-Type: text/plain\r\n\r\nFYI\r\n--o\r\nContent-Type: message/rfc822\r\n\r\n" + inner + b"--o--\r\n")
        msg = parse_message(raw)
        assert msg.forwarded and msg.forwarded[0].from_[0].email == "orig@customer.example"
        assert "hello from inside" in msg.forwarded[0].text and "hello from inside" not in msg.text


class TestHtmlLines:
    def test_a_gmail_signature_of_divs_stays_one_paragraph(self) -> None:
        from mail_adapter.html_text import html_to_text

        markup = '<div>Thanks, works for us.</div><div><br></div><div>Sophie Martin</div><div>Customer Success Lead</div><div>Harborlight Co.</div>'
        assert html_to_text(markup) == "Thanks, works for us.\n\nSophie Martin\nCustomer Success Lead\nHarborlight Co."

    def test_table_rows_are_lines_and_paragraphs_blank_separated(self) -> None:
        from mail_adapter.html_text import html_to_text

        markup = "<p>本日はありがとうございました。</p><table><tr><td>さくらソフト株式会社</td></tr><tr><td>小野 英樹</td></tr></table><p>以上</p>"
        assert html_to_text(markup) == "本日はありがとうございました。\n\nさくらソフト株式会社\n小野 英樹\n\n以上"


def long_headers(subject_at: int) -> bytes:
    """A message whose `Subject` header starts at byte `subject_at`, after long ones."""
    first = b"From: a@example.com\r\nReceived: from relay.example.net\r\n\tby mx.example.com; Mon, 2 Dec 2024 10:00:00 +0900\r\n"
    pad = b"DKIM-Signature: v=1; b="
    filler = pad + b"A" * (subject_at - len(first) - len(pad) - 2) + b"\r\n"
    raw = first + filler + b"Subject: long headers\r\n\r\nbody\r\n"
    assert raw.index(b"Subject") == subject_at
    return raw


class TestLooksLikeMail:
    @pytest.mark.parametrize("cut", [3, 1, 9, 200])
    def test_headers_longer_than_eight_kilobytes(self, cut: int) -> None:
        from mail_adapter.reading import looks_like_mail

        assert looks_like_mail(long_headers(8192 - cut))  # `cut` bytes of a header name before the old 8 KB window ended


    def test_other_bytes_are_not_mail(self) -> None:
        from mail_adapter.reading import looks_like_mail

        assert not looks_like_mail(b"\x89PNG\r\n\x1a\n" + b"\x00" * 100)
        assert not looks_like_mail(b"just some text\nwith lines\n\nand more")
        assert not looks_like_mail(b"From: a@example.com\nthis line is no header\n\nbody")
        assert looks_like_mail(b"From: a@example.com\nSubject: no body")
