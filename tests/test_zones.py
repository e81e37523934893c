"""The zones of a mail body (mail_adapter/zones.py) over a corpus of real header formats
(tests/data/zones/headers.json: Lotus Notes, Outlook in five languages, GroupWise, Gmail,
Apple Mail, Thunderbird, Pine, Mail.ru, Japanese clients; each case names where the format
comes from) and over the public fixtures of reply parsers (mail-parser-reply,
quotequail) and real Enron threads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mail_adapter.html_text import html_to_text
from mail_adapter.parsing import parse_message
from mail_adapter.zones import FORWARDED, OWN, QUOTED, own_text, person_of, segments
from tests.lead_corpora import REAL, as_opened

DATA = Path(__file__).parent / "data"
HEADERS = json.loads((DATA / "zones" / "headers.json").read_text(encoding="utf-8"))
FIXTURES = DATA / "corpora" / "replies"


def _people(text: str, *, forward_hint: bool = False) -> list[tuple[str, str, str | None]]:
    """(kind, name, email) of each quoted/forwarded zone with a person, in order, once each."""
    out: list[tuple[str, str, str | None]] = []
    for seg in segments(text, forward_hint=forward_hint):
        if seg.kind != OWN and seg.person and (not out or out[-1][1:] != (seg.person.name, seg.person.email)):
            out.append((seg.kind, seg.person.name, seg.person.email))
    return out


class TestHeaderFormats:
    @pytest.mark.parametrize("case", HEADERS, ids=[c["id"] for c in HEADERS])
    def test_the_zone_and_its_person(self, case: dict) -> None:  # type: ignore[type-arg]
        segs = segments(case["text"])
        other = next(s for s in segs if s.kind != OWN)
        assert other.kind == case["kind"]
        assert other.person is not None
        assert (other.person.name, other.person.email) == (case["name"], case["email"])
        assert own_text(case["text"]).strip() == case["own"]

    def test_the_corpus_covers_the_formats_the_issue_names(self) -> None:
        formats = " ".join(c["format"] for c in HEADERS)
        for name in ("Lotus Notes", "Outlook", "GroupWise", "Gmail", "Apple Mail", "Thunderbird", "Japanese", "German", "French"):
            assert name in formats
        assert len(HEADERS) >= 30

    def test_the_header_block_is_not_the_body(self) -> None:
        case = next(c for c in HEADERS if c["id"] == "notes_forward_banner_wrapped")
        zone = next(s for s in segments(case["text"]) if s.kind == FORWARDED)
        assert zone.body.strip().startswith("Dear Vince")
        assert "Subject:" not in zone.body

    def test_everything_under_a_header_is_that_persons(self) -> None:
        text = "Thanks\n\n-----Original Message-----\nFrom: Ana <ana@x.example>\nSent: Monday\nTo: Ken\nSubject: s\n\nBody\n\nAna Silva\nDirector\n+1 415 555 0100\n"
        zones = segments(text)
        assert [z.kind for z in zones] == [OWN, QUOTED]
        assert "+1 415 555 0100" in zones[1].body and "+1 415" not in own_text(text)


class TestQuoting:
    def test_lines_after_a_quote_go_back_to_the_writer(self) -> None:
        text = "On Mon, Jan 3, 2011 at 5:00 PM, Bob <bob@x.example> wrote:\n> question one\n> question two\n\nMy answer.\n\nKen\n"
        zones = segments(text)
        assert [z.kind for z in zones] == [QUOTED, QUOTED, OWN]
        assert own_text(text).strip() == "My answer.\n\nKen"

    def test_lines_after_a_quote_inside_a_forward_stay_the_forwarded_persons(self) -> None:
        text = "FYI\n\n---------- Forwarded message ---------\nFrom: Ana <ana@x.example>\nDate: today\nSubject: s\n\nSee below\n> old\n> older\nAna Silva\n+1 415 555 0100\n"
        last = segments(text)[-1]
        assert last.kind == FORWARDED and last.person is not None and last.person.email == "ana@x.example"
        assert "+1 415 555 0100" in last.body

    def test_a_stray_quote_line_is_no_zone(self) -> None:
        text = "News\n\n>>> Things in the Mailbag\nmore text\n"
        assert [z.kind for z in segments(text)] == [OWN]

    def test_deep_quoting_is_bounded(self) -> None:
        text = "\n".join(">" * 40 + " x" for _ in range(50))
        assert segments(text)  # read to a fixed depth, no recursion error

    def test_an_outlook_block_under_a_forward_subject_is_the_forwarded_original(self) -> None:
        text = "\n-----Original Message-----\nFrom: Ana <ana@x.example>\nSent: Monday\nTo: Ken\nSubject: s\n\nBody\n"
        assert segments(text, forward_hint=True)[-1].kind == FORWARDED
        assert segments(text)[-1].kind == QUOTED


class TestPeople:
    @pytest.mark.parametrize(
        ("value", "name", "email"),
        [
            ('"Frank A. Wolak" <wolak@zia.Stanford.EDU>@ENRON', "Frank A. Wolak", "wolak@zia.stanford.edu"),
            ("Buy, Rick [<mailto:Rick.Buy@ENRON.com>]", "Buy, Rick", "rick.buy@enron.com"),
            ("Mary.Hain@enron.com [mailto:Mary.Hain@enron.com]", "", "mary.hain@enron.com"),
            ("Tim Belden/HOU/ECT@ECT", "Tim Belden", None),
            ("Karen Denne@ENRON", "Karen Denne", None),
            ("Lee S. Friedman [SMTP:lfried@uclink4.berkeley.edu]", "Lee S. Friedman", "lfried@uclink4.berkeley.edu"),
            ("Steven Kelly (E-mail) <steven@iepa.com>", "Steven Kelly", "steven@iepa.com"),
            ("Presto, Kevin M. <mailto:Kevin.M.Presto@ubswenergy.com>", "Presto, Kevin M.", "kevin.m.presto@ubswenergy.com"),
        ],
    )
    def test_person_of_a_header_value(self, value: str, name: str, email: str | None) -> None:
        person = person_of(value)
        assert person is not None and (person.name, person.email) == (name, email)


# Public fixtures of reply parsers: the people their quoted and forwarded zones name.
FIXTURE_PEOPLE = {
    "mail_parser_reply/email_danish_2.txt": [("quoted", "Hanne Hansen", "hanne@example.com")],
    "mail_parser_reply/email_headers_no_delimiter.txt": [("quoted", "Dan Watson", "user@host.com"), ("quoted", "Watson, Dan", "user@host2.com")],
    "mail_parser_reply/email_ja_1_2.txt": [("quoted", "田中太郎", "taro.tanaka@example.com")],
    "mail_parser_reply/email_swedish_2.txt": [("quoted", "Anna Andersson", "anna.andersson@acme.com")],
    "mail_parser_reply/email_pl_1_1.txt": [("quoted", "Jan Kowalski", "jan.kowalski@example.com")],
    "mail_parser_reply/multiline_on_de.txt": [("quoted", "John Doe", "noreply@github.com"), ("quoted", "Straßburg Dößä", "noreply@github.com")],
    "mail_parser_reply/email_gmail.txt": [("quoted", "Steven Scott", "notifications@github.com")],
    "quotequail/apple_forward.html": [("forwarded", "Foo Bar", "foo@bar.example")],
    "quotequail/gmail_forward.html": [("forwarded", "Foo Bar", "foo@bar.example")],
    "quotequail/thunderbird_forward.html": [("forwarded", "John Doe", "johndoe@example.com")],
    "quotequail/mailru_forward.html": [("forwarded", "Иван Иванов", "ivanivanov@example.com")],
    "quotequail/gmail_reply.html": [("quoted", "Foo Bar", "foo@bar.example")],
    "quotequail/outlook_forward.html": [("quoted", "John Doe", None)],
}


@pytest.mark.parametrize(("path", "people"), FIXTURE_PEOPLE.items(), ids=list(FIXTURE_PEOPLE))
def test_public_fixtures(path: str, people: list[tuple[str, str, str | None]]) -> None:
    raw = (FIXTURES / path).read_text(encoding="utf-8")
    text = html_to_text(raw) if path.endswith(".html") else raw
    assert _people(text) == people


# Real threads of the development half of tests/data/leads_real: every person, in order.
ENRON_PEOPLE = {
    "enron_1_116997": [("quoted", "Jeffrey Watkiss", None), ("quoted", "Fergus, Gary S.", "gfergus@brobeck.com"), ("quoted", "", "mary.hain@enron.com")],
    "enron_1_175844": [("forwarded", "Jeff Dasovich", None), ("forwarded", "Julee Malinowski-Ball", "jmball@ns.net")],
    "enron_1_82386": [
        ("quoted", "Presto, Kevin M.", "kevin.m.presto@ubswenergy.com"),
        ("quoted", "Fred W. Giffels", "fgiffels@hgp-inc.com"),
        ("quoted", "Presto, Kevin M.", "kevin.m.presto@ubswenergy.com"),
        ("quoted", "Fred W. Giffels", "fgiffels@hgp-inc.com"),
    ],
    "enron_6_173248": [("forwarded", "Awais Omar", None), ("quoted", "Tana Jones", None)],
    "enron_4_114714": [("forwarded", "Lee S. Friedman", "lfried@uclink4.berkeley.edu")],
    "enron_1_136543": [("quoted", "Charles Yeung", None), ("quoted", "Shelk, John", None), ("forwarded", "David Cook", "david.cook@nerc.net")],
}


@pytest.mark.parametrize(("name", "people"), ENRON_PEOPLE.items(), ids=list(ENRON_PEOPLE))
def test_real_threads(name: str, people: list[tuple[str, str, str | None]]) -> None:
    msg = parse_message(as_opened((REAL / f"{name}.eml").read_bytes()))
    forward_hint = msg.subject.lower().startswith(("fw:", "fwd:"))
    assert _people(msg.text, forward_hint=forward_hint) == people


def test_a_banner_without_header_fields_keeps_the_whole_body() -> None:
    text = "FYI\n\n---------- Forwarded message ---------\nHello Ken,\nthe figures are below.\nAnna Kowalski\n+48 22 123 45 67\n"
    zone = segments(text)[-1]
    assert zone.kind == FORWARDED and zone.person is None
    assert zone.body.splitlines()[0] == "Hello Ken,"
