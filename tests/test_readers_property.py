"""Property tests (Hypothesis) of the readers that take bytes from strangers: the MIME parser
with the draft extraction on top, the BODYSTRUCTURE walk, and the iCalendar reader. Random
nesting, charsets, transfer encodings, sizes and corruption: never an exception, and each
call bounded in CPU time and memory.

Deterministic: derandomised, no example database, no wall-clock deadline (CPU time and
tracemalloc's peak are the bounds, so a loaded machine cannot make them flaky).
"""

from __future__ import annotations

import base64
import quopri
import time
import tracemalloc
from collections.abc import Callable
from typing import Any, TypeVar

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crm.domain.drafts import ReadContext
from crm.domain.invites import in_range
from crm.domain.ports import CalendarObject
from mail_adapter.invites import read_invites
from mail_adapter.parsing import parse_message
from mail_adapter.reading import looks_like_mail, read_raw
from mail_adapter.structure import wanted_parts

T = TypeVar("T")
MAX_CPU_SECONDS = 5.0  # per call, for inputs of at most a few hundred kilobytes (typical: milliseconds)
MAX_PEAK_BYTES = 64 * 2**20

SETTINGS = settings(
    max_examples=150, deadline=None, derandomize=True, database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)


def bounded(fn: Callable[[], T]) -> T:
    """Run `fn`, asserting its CPU time and its peak of allocated memory."""
    tracemalloc.start()
    started = time.process_time()
    try:
        result = fn()
        spent = time.process_time() - started
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert spent < MAX_CPU_SECONDS, f"{spent:.1f} s of CPU"
    assert peak < MAX_PEAK_BYTES, f"{peak / 2**20:.0f} MB at peak"
    return result


# ------------------------------------------------------------------------- MIME

CHARSETS = ["utf-8", "UTF-8", "iso-2022-jp", "shift_jis", "cp932", "euc-jp", "iso-8859-1", "windows-1252", "gb2312", "koi8-r", "x-unknown", "", "utf-7"]
ENCODINGS = ["7bit", "8bit", "base64", "quoted-printable", "binary", "x-uuencode", "BASE64", ""]
TYPES = ["text/plain", "text/html", "text/calendar", "application/octet-stream", "image/png", "text/x-vcard", "application/ics", "message/delivery-status"]
CONTAINERS = ["multipart/mixed", "multipart/alternative", "multipart/related", "multipart/digest", "multipart/report", "message/rfc822"]
words = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=200)
tokens = st.text(st.sampled_from("abcXYZ019-_.=+/ "), min_size=0, max_size=72)


def _encode(text: str, charset: str) -> bytes:
    try:
        return text.encode(charset or "ascii", "replace")
    except LookupError:
        return text.encode("utf-8")


def _transfer(data: bytes, encoding: str, garble: bool) -> bytes:
    if encoding.lower() == "base64":
        data = base64.encodebytes(data)
    elif encoding == "quoted-printable":
        data = quopri.encodestring(data)
    return data[: len(data) // 2] + b"=\xff!" + data[len(data) // 2 :] if garble else data


@st.composite
def headers(draw: Any) -> bytes:
    lines = [
        b"From: " + _encode(draw(words), draw(st.sampled_from(CHARSETS)) or "utf-8") + b" <" + draw(tokens).replace(" ", "").encode() + b"@example.com>",
        b"Subject: " + draw(st.sampled_from([b"", b"=?utf-8?B?" + base64.b64encode(draw(words).encode()) + b"?=", b"=?iso-2022-jp?Q?broken=1B?=", _encode(draw(words), "utf-8")])),
        b"Message-ID: <" + _encode(draw(words), "utf-8") + b">",
    ]
    for _ in range(draw(st.integers(0, 3))):
        lines.append(draw(st.sampled_from([b"X-Long: ", b"Received: from x\r\n\tby y; ", b"Content-Disposition: attachment; filename*=", b"\tcontinued ", b"No colon here "])) + _encode(draw(words), "utf-8"))
    return b"\r\n".join(lines) + b"\r\n"


@st.composite
def leaf(draw: Any) -> bytes:
    ctype, charset, encoding = draw(st.sampled_from(TYPES)), draw(st.sampled_from(CHARSETS)), draw(st.sampled_from(ENCODINGS))
    body = _encode(draw(words), charset) if draw(st.booleans()) else draw(st.binary(max_size=300))
    if ctype == "text/calendar":
        body = draw(calendars())
    name = draw(st.sampled_from([b"", b'; name="=?utf-8?B?5pel5pys?=.ics"', b"; name*=utf-8''%E6%97%A5.txt"]))
    head = b"Content-Type: " + ctype.encode() + (b"; charset=" + charset.encode() if charset else b"") + name + b"\r\n"
    head += b"Content-Transfer-Encoding: " + encoding.encode() + b"\r\n" if encoding else b""
    return head + b"\r\n" + _transfer(body, encoding, draw(st.booleans()))


def container(children: st.SearchStrategy[list[bytes]]) -> st.SearchStrategy[bytes]:
    @st.composite
    def build(draw: Any) -> bytes:
        kind = draw(st.sampled_from(CONTAINERS))
        parts = draw(children)
        if kind == "message/rfc822":
            return b"Content-Type: message/rfc822\r\n\r\n" + draw(headers()) + (parts[0] if parts else b"\r\n")
        boundary = draw(tokens.filter(bool)).encode()
        quoted = b'"' + boundary + b'"' if draw(st.booleans()) else boundary
        body = b"".join(b"--" + boundary + b"\r\n" + p + b"\r\n" for p in parts)
        if draw(st.booleans()):
            body += b"--" + boundary + b"--\r\n"  # else: the closing boundary is missing
        return b"Content-Type: " + kind.encode() + b"; boundary=" + quoted + b"\r\n\r\n" + draw(st.binary(max_size=20)) + b"\r\n" + body

    return build()


mime_parts = st.recursive(leaf(), lambda inner: container(st.lists(inner, max_size=4)), max_leaves=12)


@st.composite
def messages(draw: Any) -> bytes:
    raw = draw(headers()) + draw(mime_parts)
    if draw(st.booleans()):  # corruption: bytes changed, or the message cut short
        at = draw(st.integers(0, max(len(raw) - 1, 0)))
        raw = raw[:at] + draw(st.binary(max_size=8)) + (raw[at + 1 :] if draw(st.booleans()) else b"")
    return raw.replace(b"\r\n", b"\n") if draw(st.booleans()) else raw


@st.composite
def deep(draw: Any) -> bytes:
    """One chain of multiparts and attached messages, far past any recursion limit."""
    levels, inner = draw(st.integers(0, 2500)), b"Content-Type: text/plain\r\n\r\nbottom\r\n"
    kinds = draw(st.lists(st.sampled_from(["multipart/mixed", "message/rfc822"]), min_size=1, max_size=4))
    for i in reversed(range(levels)):
        kind = kinds[i % len(kinds)]
        if kind == "message/rfc822":
            inner = b"Content-Type: message/rfc822\r\n\r\nSubject: level\r\n" + inner
        else:
            inner = b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n%s\r\n--b%d--\r\n" % (i, i, inner, i)
    return b"From: a@example.com\r\nSubject: deep\r\n" + inner


class TestMime:
    @SETTINGS
    @given(messages())
    def test_any_message_parses_and_reads_into_a_draft(self, raw: bytes) -> None:
        parsed = bounded(lambda: parse_message(raw))
        assert isinstance(parsed.text, str) and isinstance(parsed.subject, str)
        assert "\x00" not in parsed.text and "\n" not in parsed.subject
        opened = bounded(lambda: read_raw(raw, ReadContext()))
        assert all(isinstance(v, str) for v in opened.draft.values().values() if v is not None)
        looks_like_mail(raw)

    @settings(SETTINGS, max_examples=25)
    @given(deep())
    def test_nesting_past_any_recursion_limit(self, raw: bytes) -> None:
        parsed = bounded(lambda: parse_message(raw))
        assert parsed.subject == "deep"

    @SETTINGS
    @given(st.recursive(st.one_of(st.none(), st.integers(-(2**70), 2**70), st.binary(max_size=30), st.text(max_size=30)), lambda inner: st.lists(inner, max_size=10), max_leaves=60))
    def test_any_bodystructure_gives_parts_to_fetch(self, structure: object) -> None:
        parts, nested = bounded(lambda: wanted_parts(structure))
        assert all(p.section for p in parts) and len(parts) <= 40


# ------------------------------------------------------------------------- iCalendar

ZONES = ["Asia/Tokyo", "Europe/Berlin", "W. Europe Standard Time", "Tokyo Standard Time", "/mozilla.org/20050126_1/Asia/Tokyo", "Not/AZone", "", "UTC"]
PROPERTIES = ["DTSTART", "DTEND", "DTSTAMP", "RECURRENCE-ID", "RRULE", "EXDATE", "RDATE", "DURATION", "UID", "SEQUENCE", "ORGANIZER", "ATTENDEE", "SUMMARY", "STATUS", "X-WR-TIMEZONE", "TZID", "X-MICROSOFT-CDO-APPT-SEQUENCE"]


@st.composite
def date_value(draw: Any) -> str:
    year, month, day = draw(st.integers(0, 10000)), draw(st.integers(0, 13)), draw(st.integers(0, 32))
    text = f"{year:04d}{month:02d}{day:02d}"
    if draw(st.booleans()):
        text += f"T{draw(st.integers(0, 25)):02d}{draw(st.integers(0, 61)):02d}{draw(st.integers(0, 61)):02d}" + draw(st.sampled_from(["", "Z"]))
    return text


@st.composite
def ical_property(draw: Any) -> str:
    name = draw(st.sampled_from(PROPERTIES))
    params = "".join(draw(st.lists(st.sampled_from([f";TZID={z}" for z in ZONES] + [";VALUE=DATE", ";VALUE=DATE-TIME", ";RANGE=THISANDFUTURE", ";CN=\"山田\"", ";PARTSTAT=ACCEPTED", ";SENT-BY=mailto:s@x"]), max_size=3)))
    value = draw(st.one_of(
        date_value(),
        st.builds(lambda f, c, i, by: f"FREQ={f};COUNT={c};INTERVAL={i}{by}", st.sampled_from(["SECONDLY", "MINUTELY", "DAILY", "YEARLY", "BOGUS"]), st.integers(-1, 10**9), st.integers(-1, 10**6), st.sampled_from(["", ";BYDAY=MO, TU", ";BYSECOND=0,30", ";UNTIL=99991231T235959Z", ";BYMONTHDAY=-40"])),
        st.sampled_from(["mailto:o@example.com", "mailto:", "P1D", "P99999999D", "PT-5H", "-P1W", "2", "x"]),
        words,
    ))
    return f"{name}{params}:{value}"


@st.composite
def calendars(draw: Any) -> bytes:
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "METHOD:" + draw(st.sampled_from(["REQUEST", "CANCEL", "REPLY", "PUBLISH", "", "request"]))]
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(["VEVENT", "VEVENT", "VTIMEZONE", "VTODO", "VALARM", "STANDARD"]))
        lines.append(f"BEGIN:{kind}")
        lines += draw(st.lists(ical_property(), max_size=10))
        if draw(st.integers(0, 9)):  # sometimes left open
            lines.append(f"END:{kind}")
    lines.append(draw(st.sampled_from(["END:VCALENDAR", "END:VCALENDARD", ""])))
    text = draw(st.sampled_from(["\r\n", "\n", "\r\n\r\n"])).join(lines)
    if draw(st.booleans()):  # folded long lines
        text = "\r\n ".join(text[i : i + 75] for i in range(0, len(text), 75))
    data = draw(st.sampled_from([b"", b"\xef\xbb\xbf"])) + _encode(text, draw(st.sampled_from(["utf-8", "iso-8859-1", "shift_jis"])))
    if draw(st.booleans()):
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        data = data[:at] + draw(st.binary(max_size=6)) + data[at:]
    return data


class TestICalendar:
    @SETTINGS
    @given(st.lists(calendars(), min_size=1, max_size=3), st.sampled_from([None, "REQUEST", "cancel", "bogus"]))
    def test_any_calendar_reads_to_invitations_or_warnings(self, datas: list[bytes], method: str | None) -> None:
        invites, warnings = bounded(lambda: read_invites([CalendarObject(d, method) for d in datas]))
        assert all(isinstance(w, str) for w in warnings)
        for invite in invites:  # whatever was read can be stored and shown
            assert all(in_range(v) for v in (invite.start, invite.end, invite.recurrence_id, invite.dtstamp))
            assert isinstance(invite.ics, str) and invite.instance_key is not None
