"""The extraction rules one by one, on the traps the issue names."""

from __future__ import annotations

import pytest

from crm.domain.drafts import ReadContext
from mail_adapter import contact_lines as cl
from mail_adapter.leads import extract_lead
from mail_adapter.names import split_name
from mail_adapter.parsing import parse_message
from mail_adapter.signature import signature_lines
from mail_adapter.zones import own_text


def draft(body: str, sender: str = "Taro Yamada <taro@example.co.jp>", headers: str = "", ctx: ReadContext | None = None):  # type: ignore[no-untyped-def]
    raw = f"From: {sender}\r\nSubject: s\r\n{headers}Content-Type: text/plain; charset=utf-8\r\n\r\n{body}".encode()
    return extract_lead(parse_message(raw), ctx or ReadContext())


class TestNames:
    @pytest.mark.parametrize(
        ("display", "first", "last"),
        [
            ("Taro Yamada", "Taro", "Yamada"),
            ("Yamada, Taro", "Taro", "Yamada"),
            ("taro yamada", "Taro", "Yamada"),
            ("YAMADA Taro", "Taro", "Yamada"),
            ("山田 太郎", "太郎", "山田"),
            ("山田太郎", "太郎", "山田"),
            ("山田 太郎（やまだ たろう）", "太郎", "山田"),
            ("Élodie O'Neill", "Élodie", "O'Neill"),
            ("Ludwig van Beethoven", "Ludwig", "van Beethoven"),
        ],
    )
    def test_split(self, display: str, first: str, last: str) -> None:
        assert split_name(display) == (first, last)

    def test_first_last_local_part_when_no_display_name(self) -> None:
        d = draft("hello", sender="anna.kowalski@vistula-data.com")
        assert (d.value("first_name"), d.value("last_name")) == ("Anna", "Kowalski")


class TestQuotes:
    @pytest.mark.parametrize(
        "header",
        [
            "On Wed, Nov 18, 2026 at 10:15 AM Jiro Ito <jiro@acme.example> wrote:",
            "2026年11月19日(木) 16:02 伊藤 <ito@acme.example>:",
            "-----Original Message-----",
            "伊藤 次郎 さんは書きました:",
            "---------- Forwarded message ---------",
        ],
    )
    def test_the_quoted_original_is_cut(self, header: str) -> None:
        assert own_text(f"mine\n\n{header}\n> theirs\nTEL 03-0000-0000") == "mine\n"

    def test_outlook_block(self) -> None:
        text = "mine\n\nFrom: Ito <ito@acme.example>\nSent: Monday\nTo: x\nSubject: y\n\ntheirs"
        assert own_text(text) == "mine\n"


class TestSignature:
    def test_disclaimer_phone_is_not_the_senders(self) -> None:
        d = draft("Hi\n\nBest regards,\nTaro Yamada\nExample KK\n\nCONFIDENTIAL: this e-mail is private. Call +81 3-0000-1111 if misdelivered.")
        assert d.value("phone") is None and d.value("company") == "Example KK"

    def test_mobile_footer_is_cut(self) -> None:
        lines, _ = signature_lines("Hi\n\nよろしくお願いいたします。\n山田\n\niPhoneから送信")
        assert lines == ["山田"]

    def test_fax_is_never_a_phone(self) -> None:
        d = draft("Hi\n--\nTaro Yamada\nFAX: 03-1234-9999\nTEL: 03-1234-5678")
        assert d.value("phone") == "+81312345678"


class TestLines:
    def test_full_width_phone(self) -> None:
        assert [p.e164 for p in cl.phones_in("電話：０３−１２３４−５６７８", "JP")] == ["+81312345678"]

    def test_mobile_label_and_type(self) -> None:
        assert [(p.kind, p.e164) for p in cl.phones_in("携帯 090-1234-5678", "JP")] == [("mobile", "+819012345678")]

    @pytest.mark.parametrize(("line", "company"), [("㈱山田商事 営業部", "株式会社山田商事"), ("(株)山田商事", "株式会社山田商事"), ("Acme Widgets Inc.", "Acme Widgets Inc."), ("山田商事株式会社", "山田商事株式会社")])
    def test_company_keeps_its_legal_form(self, line: str, company: str) -> None:
        assert cl.company_in(line) == company

    def test_japanese_address(self) -> None:
        a = cl.address_in(["〒100-0005 東京都千代田区丸の内1-1-1"])
        assert a is not None and (a.zip_code, a.state, a.city, a.street) == ("100-0005", "東京都", "千代田区", "丸の内1-1-1")

    def test_us_address(self) -> None:
        a = cl.address_in(["500 Market Street", "San Francisco, CA 94105", "USA"])
        assert a is not None and (a.street, a.city, a.state, a.zip_code, a.country) == ("500 Market Street", "San Francisco", "CA", "94105", "USA")


class TestFlattened:
    def test_a_signature_flattened_into_one_line_is_still_read(self) -> None:
        """HTML-to-text can glue a signature into one line: company, title and phones come
        apart at the legal form, the title word and the field labels."""
        d = draft("お世話になっております。\n\n株式会社サンプル商事営業部部長山田太郎TEL03-1111-2222携帯090-1234-5678\n", sender="山田 太郎 <yamada@sample-shoji.co.jp>")
        assert (d.value("company"), d.value("title"), d.value("phone"), d.value("mobile")) == ("株式会社サンプル商事", "部長", "+81311112222", "+819012345678")


class TestNotASignature:
    def test_a_closing_sentence_with_someone_elses_number_gives_no_phone(self) -> None:
        d = draft("Hi Ken,\n\nThe contract is attached.\n\nPlease call Keith Bohn at (403) 261-3388 for the details.\n", sender="Anna Lee <anna@northfield.example>")
        assert d.value("phone") is None and d.value("mobile") is None

    def test_a_lone_intranet_link_at_the_end_is_no_website(self) -> None:
        d = draft("Status page:\n\nhttp://172.17.172.62/inf/default.html\n", sender="Anna Lee <anna@northfield.example>")
        assert d.value("website") == "https://northfield.example"  # the domain's guess, not the link


class TestWho:
    def test_free_mail_domain_is_never_the_company_or_website(self) -> None:
        d = draft("Hi", sender="Taro <taro.yamada@gmail.com>")
        assert d.value("company") is None and d.value("website") is None

    def test_automated_sender_is_a_warning_not_a_drop(self) -> None:
        d = draft("News", sender="news@shop.example", headers="List-Unsubscribe: <mailto:u@shop.example>\r\n")
        assert d.warnings == ("automated_sender",) and d.value("email") == "news@shop.example"

    def test_greeting_gives_the_company(self) -> None:
        d = draft("伊藤様\n\n株式会社山田商事の山田です。\n\nよろしくお願いいたします。\n山田", sender="山田 太郎 <t@example.co.jp>")
        assert d.value("company") == "株式会社山田商事"

    def test_a_colleagues_forward_makes_the_original_sender_the_lead(self) -> None:
        body = "FYI\n\n---------- Forwarded message ---------\nFrom: Anna Kowalski <anna@vistula-data.com>\nDate: today\nSubject: hi\n\nHello\n"
        d = draft(body, sender="Ken <ken@acme.example>", ctx=ReadContext(own_domains=frozenset({"acme.example"})))
        assert d.value("email") == "anna@vistula-data.com" and d.value("first_name") == "Anna"


class TestNamesAsSigned:
    def test_the_headers_full_name_wins_over_a_bare_signed_first_name(self) -> None:
        d = draft("Sounds good.\n\nBob\n", sender="Robert J Miller <rmiller@northwind.example>")
        assert (d.value("first_name"), d.value("last_name")) == ("Robert", "Miller")

    def test_a_signatures_fuller_name_wins_over_a_short_header_form(self) -> None:
        d = draft("Regards,\nDan\n\nDaniel M. Wall\nLatham & Watkins\nDirect:  (415) 395-8240\n", sender='"Wall, Dan (SF)" <dan.wall@lw.example>')
        assert (d.value("first_name"), d.value("last_name"), d.value("phone")) == ("Daniel", "Wall", "+14153958240")

    def test_a_middle_initial_is_not_the_first_name(self) -> None:
        assert split_name("Kaminski, Vince J") == ("Vince", "Kaminski")
        assert split_name('Ted L. "Dub" Snider Jr.') == ("Ted", "Snider")

    def test_a_local_part_with_a_middle_initial(self) -> None:
        d = draft("hello", sender="lisa_g_urick@calpx.example")
        assert (d.value("first_name"), d.value("last_name")) == ("Lisa", "Urick")

    def test_initials_or_the_local_part_as_display_name_are_no_name(self) -> None:
        d = draft("We will produce the items.\n\nMike Day\n", sender="MBD <mday@gmssr.example>")
        assert (d.value("first_name"), d.value("last_name")) == ("Mike", "Day")


class TestSignatureLayouts:
    def test_a_title_over_two_lines_is_one_title(self) -> None:
        d = draft("Hello,\n\nplease send the quote.\n\nBest regards,\nAnna Berg\nDirector\nGlobal Supply Operations\nNordlicht Foods GmbH\n+49 30 1234567\n", sender="Anna Berg <anna.berg@nordlicht-foods.example>")
        assert (d.value("title"), d.value("company")) == ("Director, Global Supply Operations", "Nordlicht Foods GmbH")

    def test_a_signature_after_a_long_wrapped_body_without_a_delimiter(self) -> None:
        body = (
            "Attached are three documents comprising the formal proposal to resolve\n"
            "five pending dockets. We appreciate the suggestions received to date and\n"
            "believe that a sufficient nucleus is forming around the elements of this\n"
            "proposal that will lead to the filing of an Offer of Settlement.\n\n"
            "Joel L. Greene\nEnergy Advocates LLP\n202-371-9889\n202-371-9025 (fax)\njlgreene@energyadvocates.example\n"
            " - SRP EPNG Settle.cvr.doc\n"
        )
        d = draft(body, sender="Joel Greene <jlgreene@energyadvocates.example>")
        assert (d.value("company"), d.value("phone")) == ("Energy Advocates LLP", "+12023719889")

    def test_name_title_company_phone_without_labels(self) -> None:
        d = draft("Thanks.\n\nJan Paul Acton\nVice President\nCharles River Associates\n1201 F St., NW, Suite 700\nWashington, DC 20004-1204\n(202) 662 3902\n", sender='"Acton, Jan" <jacton@crai.example>')
        assert (d.value("title"), d.value("company"), d.value("phone"), d.value("zip_code"), d.value("state")) == ("Vice President", "Charles River Associates", "+12026623902", "20004-1204", "DC")

    def test_a_two_column_signature(self) -> None:
        body = (
            "Vince,\n\n  I'll have him e-mail you a CV.\n\nFrank\n\n"
            "Professor Frank A. Wolak                           email:\n"
            "Department of Economics                            Phone:  650-723-3944\n"
            "Stanford University                                FAX:  650-725-5702\n"
            "Stanford, CA  94305-6072                           Cell Phone: 650-814-0107\n"
        )
        d = draft(body, sender='"Frank A. Wolak" <wolak@zia.stanford.example>')
        assert (d.value("title"), d.value("company"), d.value("phone"), d.value("mobile"), d.value("city")) == ("Professor", "Stanford University", "+16507233944", "+16508140107", "Stanford")

    def test_the_signature_above_a_pasted_article(self) -> None:
        body = "Jeff\n\nFYI - strong words from a powerful man.\n\nKevin\n213-926-2626\n\n[IMAGE]\n\nSenator Calls for Hearings Into Energy Regulators' Moves\nBy CHRISTOPHER MARQUIS\nCopyright 2001 The New York Times Company\n"
        d = draft(body, sender="Kevin Scott <kevinscott@onlinemailbox.example>")
        assert d.value("phone") == "+12139262626"
        assert d.value("website") is None  # a mailbox service's domain is nobody's site

    def test_someone_elses_details_pasted_as_the_text(self) -> None:
        d = draft(" JOSEPH  KOOTHRAPPALLY\n (713) 853-6819\n jkoothr@ourco.example\n", sender='"Kaminski, Vince J" <j.kaminski@ourco.example>')
        assert d.value("phone") is None and d.value("first_name") == "Vince"


class TestOnePersonPerDraft:
    CTX = ReadContext(own_domains=frozenset({"acme.example"}))
    QUOTED = "\n\n-----Original Message-----\nFrom: Carla Diaz <carla@fabrikam.example>\nSent: Monday\nTo: Ken\nSubject: Pricing\n\nFigures attached.\n\nCarla Diaz\nVP Sales\nFabrikam Inc.\n+1 415 555 0188\n"

    def test_nothing_of_a_quoted_person_goes_into_the_senders_draft(self) -> None:
        d = draft("Thanks, that works." + self.QUOTED, sender="Bob Miller <bob@northwind.example>")
        assert d.person is not None and d.person.role == "sender"
        assert (d.value("company"), d.value("title"), d.value("phone")) == (None, None, None)
        (alt,) = d.alternatives
        assert alt.person is not None and alt.person.role == "quoted" and alt.value("company") == "Fabrikam Inc."

    def test_a_colleagues_reply_stays_the_colleagues_draft(self) -> None:
        d = draft("Carla, the contract goes out tomorrow with the revised figures for all three sites." + self.QUOTED, sender="Ken <ken@acme.example>", ctx=self.CTX)
        assert d.person is not None and d.person.role == "sender" and d.value("email") == "ken@acme.example"
        assert d.value("phone") is None and [a.value("email") for a in d.alternatives] == ["carla@fabrikam.example"]

    def test_a_colleagues_long_note_over_a_forward_stays_theirs(self) -> None:
        body = "Can you look at this before Thursday and tell me whether the volumes they ask for fit our plan?\n\n---------- Forwarded message ---------\nFrom: Anna <anna@vistula-data.example>\nDate: today\nSubject: hi\n\nHello\n"
        d = draft(body, sender="Ken <ken@acme.example>", ctx=self.CTX)
        assert d.person is not None and d.person.role == "sender"
        assert [a.person.role for a in d.alternatives if a.person] == ["forwarded"]

    def test_an_attached_original_of_a_colleagues_forward(self) -> None:
        inner = "From: Anna Kowalski <anna@vistula-data.example>\r\nSubject: hi\r\n\r\nHello\r\n\r\nAnna Kowalski\r\nVistula Data Sp. z o.o.\r\n+48 22 123 45 67\r\n"
        raw = (
            "From: Ken <ken@acme.example>\r\nSubject: Fwd: hi\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
            f"--b\r\nContent-Type: text/plain\r\n\r\nFYI\r\n--b\r\nContent-Type: message/rfc822\r\n\r\n{inner}\r\n--b--\r\n"
        ).encode()
        d = extract_lead(parse_message(raw), self.CTX)
        assert d.person is not None and d.person.role == "forwarded"
        assert (d.value("email"), d.value("company")) == ("anna@vistula-data.example", "Vistula Data Sp. z o.o.")
        assert d.alternatives[0].value("email") == "ken@acme.example"
