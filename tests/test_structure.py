"""BODYSTRUCTURE → the parts worth fetching: text and calendars, never attachments."""

from __future__ import annotations

from imapclient.response_parser import parse_fetch_response

from mail_adapter.structure import walk_structure, wanted_parts


def structure(text: bytes):  # type: ignore[no-untyped-def]
    return parse_fetch_response([b"1 (UID 1 BODYSTRUCTURE " + text + b")"])[1][b"BODYSTRUCTURE"]


MIXED = (
    b'((("text" "plain" ("charset" "iso-2022-jp") NIL NIL "7bit" 100 3 NIL NIL NIL NIL)'
    b'("text" "html" ("charset" "utf-8") NIL NIL "quoted-printable" 300 9 NIL NIL NIL NIL) "alternative" ("boundary" "a") NIL NIL NIL)'
    b'("text" "calendar" ("charset" "utf-8" "method" "REQUEST") NIL NIL "7bit" 800 20 NIL NIL NIL NIL)'
    b'("application" "pdf" ("name" "big.pdf") NIL NIL "base64" 20000000 NIL ("attachment" ("filename" "big.pdf")) NIL NIL)'
    b'("message" "rfc822" NIL NIL NIL "7bit" 500 (NIL "s" NIL NIL NIL NIL NIL NIL NIL NIL) '
    b'("text" "plain" ("charset" "utf-8") NIL NIL "7bit" 20 1 NIL NIL NIL NIL) 9 NIL NIL NIL NIL)'
    b'("text" "plain" ("charset" "utf-8") NIL NIL "7bit" 20 1 NIL ("attachment" ("filename" "notes.txt")) NIL NIL)'
    b' "mixed" ("boundary" "m") NIL NIL NIL)'
)


class TestWalk:
    def test_sections_follow_rfc3501(self) -> None:
        sections = [(getattr(p, "content_type", "message"), p.section) for p in walk_structure(structure(MIXED))]
        assert sections == [
            ("text/plain", "1.1"),
            ("text/html", "1.2"),
            ("text/calendar", "2"),
            ("application/pdf", "3"),
            ("message", "4"),
            ("text/plain", "4.1"),
            ("text/plain", "5"),
        ]

    def test_a_single_part_message_is_section_1(self) -> None:
        parts = list(walk_structure(structure(b'("text" "plain" ("charset" "utf-8") NIL NIL "7bit" 10 1 NIL NIL NIL NIL)')))
        assert [p.section for p in parts] == ["1"]


class TestWanted:
    def test_text_and_calendar_and_nested_headers_but_never_attachments(self) -> None:
        parts, nested = wanted_parts(structure(MIXED))
        assert [p.section for p in parts] == ["1.1", "1.2", "2", "4.1"]
        assert parts[2].method == "REQUEST"
        assert [n.section for n in nested] == ["4"]

    def test_garbage_gives_nothing(self) -> None:
        assert wanted_parts(None) == ([], [])
        assert wanted_parts(()) == ([], [])


def test_a_broken_bodystructure_gives_nothing_to_fetch() -> None:
    from mail_adapter.structure import wanted_parts

    for broken in ([None], [b"TEXT"], [[[b"TEXT"]], b"MIXED"], [[], b"MIXED"], [[None, [b"TEXT"]]]):
        assert wanted_parts(broken) == ([], [])
