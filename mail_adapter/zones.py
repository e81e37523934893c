"""The zones of a mail body: the sender's own words, and the quoted or forwarded messages
below (or between) them, each with the person its header names.

One small rule engine over lines, shared by everything that must tell the sender's text
from someone else's: the signature finder, the lead reader (who is the draft about), the
invitation reader (an invitation's own text without the thread quoted under it) and the
mail log. A zone starts at a header line in one of the forms real clients write:

- forward banners: Gmail/Thunderbird/Apple Mail "Forwarded message" in several languages,
  Lotus Notes "----- Forwarded by Name/OU/ORG on 03/14/2002 09:30 AM -----" (often wrapped
  onto a second line by the client);
- reply headers: Outlook "-----Original Message-----" (and its translations) or a bare
  From:/Sent:/To:/Subject: block, Lotus Notes `"Name" <addr> on 03/12/2002 04:05:11 PM` or a
  name line over a date line, each followed by To:/cc:/Subject:, GroupWise ">>> Name
  11/08/00 10:31AM >>>", "On …, Name <addr> wrote:" in several languages (wrapped over two
  lines too), Japanese "2022年1月1日(金) 9:00 田中太郎 <…>:" and "…さんは書きました:";
- a raw header dump of a forwarded message (Date:/From:/To:/Subject:/MIME-Version: lines);
- `>` quoting: the quoted lines are a zone of their own, read again one level down for the
  headers inside them; the lines after them go back to the zone around them.

Everything below a header belongs to the person it names until the next header. Pure
functions over text; no special cases for any one field.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

OWN, QUOTED, FORWARDED = "own", "quoted", "forwarded"
_MAX_HEADER_LINES = 60  # a Notes To: list can run over dozens of lines
_MAX_DEPTH = 8  # `>` levels read


@dataclass(frozen=True, slots=True)
class HeaderPerson:
    """Who a quoted or forwarded message is from, as its header names them."""

    name: str  # display name as written ("Kaminski, Vince J", "Frank A. Wolak"), "" if none
    email: str | None  # None when the header gives only a Notes name ("Tim Belden@ECT")
    line: str  # the header line it was read from (evidence)


@dataclass(frozen=True, slots=True)
class Segment:
    """A run of lines of one zone. `start`/`end` index the body's lines (end exclusive);
    `header` is the number of lines at the start that are the zone's header block (banner,
    From:/To:/Subject: lines), so `body` is the message text under it, quote marks removed."""

    kind: str  # OWN | QUOTED | FORWARDED
    start: int
    end: int
    lines: tuple[str, ...]
    header: int = 0
    person: HeaderPerson | None = None
    depth: int = 0  # 0 for the sender's own zone, +1 per quoted/forwarded level

    @property
    def body(self) -> str:
        return "\n".join(self.lines[self.header :])

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


# ----------------------------------------------------------------------------- header lines

_DATE = r"(?:\d{1,4}[./-]\d{1,2}[./-]\d{1,4}|\d{4}\s*年\s*\d{1,2}\s*月\s*\d{1,2}\s*日)"
_TIME = r"\d{1,2}:\d{2}(?::\d{2})?\s*(?:[AaPp]\.?[Mm]\.?)?"
_FIELD_NAMES = (
    "from|sent|date|to|cc|bcc|subject|reply-to|sent by|please respond to|importance|"
    "差出人|送信者|送信日時|日付|日時|宛先|件名|cc|"
    "von|gesendet|an|betreff|datum|de|envoyé|envoyé par|à|objet|date d'envoi|"
    "enviado|enviado el|para|asunto|fecha|van|verzonden|aan|onderwerp|da|inviato|oggetto|a|"
    "od|wysłano|do|temat|fra|sendt|til|emne|från|skickat|till|ämne|lähettäjä|lähetetty|vastaanottaja|aihe|"
    "от кого|от|кому|дата|тема|отправлено"
)
_FIELD = re.compile(rf"^\s*\**\s*({_FIELD_NAMES})\s*\**\s*[:：]\s*(.*)$", re.I)
_FROM_NAMES = frozenset(["from", "差出人", "送信者", "von", "de", "van", "da", "od", "fra", "från", "lähettäjä", "от кого", "от"])
# Fields that a reply header carries besides From (at least two of them near it).
_NEXT_NAMES = frozenset(
    "sent date to cc subject 送信日時 日付 日時 宛先 件名 gesendet an betreff datum envoyé à objet enviado para asunto fecha verzonden aan onderwerp inviato oggetto a "
    "wysłano do temat sendt til emne skickat till ämne lähetetty vastaanottaja aihe кому дата тема отправлено".split()
)
_SUBJECT_NAMES = frozenset("subject 件名 betreff objet asunto onderwerp oggetto temat emne ämne aihe тема".split())
_RFC_HEADER = re.compile(r"^(return-path|received|message-id|date|from|to|cc|subject|mime-version|content-[\w-]+|x-[\w-]+|reply-to|organization|in-reply-to|references|full-name|thread-\w+|importance)\s*:", re.I)

_FORWARD_BANNER = re.compile(
    r"^\s*(?:-{2,}|_{2,})?\s*(?:forwarded message|forwarded message follows|forwarded mail|original message follows|"
    r"転送されたメッセージ|転送メッセージ|転送済みのメール|weitergeleitete nachricht|message transféré|mensaje reenviado|messaggio inoltrato|doorgestuurd bericht|"
    r"пересылаемое сообщение|пересланное сообщение|videresendt meddelelse|vidarebefordrat meddelande|przekazana wiadomość|"
    r"forwarded e-?mail)\s*(?:-{2,}|_{2,}|:)?\s*$"
    r"|^\s*(?:begin forwarded message|anfang der weitergeleiteten nachricht|début du message réexpédié|inicio del mensaje reenviado|転送元のメッセージ|転送元メッセージ)\s*[:：]?\s*$",
    re.I,
)
# Lotus Notes: "---------------------- Forwarded by Steven J Kean/HOU/EES on 10/18/99 08:46" +
# "AM ---------------------------" on the next line when the client wrapped it.
_NOTES_FORWARD = re.compile(r"^\s*-{3,}\s*Forwarded by\s+(?P<who>.+?)(?:\s+on\s+.*)?$", re.I)
_ORIGINAL = re.compile(
    r"^\s*[>\s]*-{2,}\s*(original message|original appointment|ursprüngliche nachricht|ursprünglicher termin|message d'origine|rendez-vous d'origine|"
    r"mensaje original|messaggio originale|oorspronkelijk bericht|oorspronkelijke afspraak|opprinnelig melding|alkuperäinen viesti|"
    r"původní zpráva|oryginalna wiadomość|исходное сообщение|oprindelig meddelelse|ursprungligt meddelande|元のメッセージ|元の予定|원본 메시지|原始邮件)\s*-{2,}",
    re.I,
)
_SEPARATOR = re.compile(r"^\s*_{8,}\s*$")
_GROUPWISE = re.compile(rf"^\s*>>>\s*(?P<who>.+?)\s+{_DATE}\s+{_TIME}\s*>>>\s*$")
# "On Tue, 28 Nov 2000 Shirley.Crenshaw@enron.com wrote:" and its translations.
_WROTE = r"(?:wrote|writes|a écrit|schrieb|escribió|ha scritto|scrisse|schreef|skrev|kirjoitti|napisał\w*|написал\w*|escreveu)"
_ON_WROTE = re.compile(rf"^\s*(?:On|Le|Am|El|Il|Op|Den|Em|W dniu)\b(?P<rest>.{{3,300}}?)\s*{_WROTE}\s*[:：]\s*$", re.I)
_ON_START = re.compile(r"^\s*(?:On|Le|Am|El|Il|Op|Den|Em|W dniu)\s+\S", re.I)
# "Den 24. nov. 2025 kl. 10.00 skrev Peter Petersen <peter@example.com>:", "Am So., 1. Jan.
# 2023 um 17:22 Uhr schrieb John Doe <…>:": the verb before the name.
_WROTE_WHO = re.compile(rf"^\s*(?P<pre>.{{3,250}}?(?:{_DATE}|\d{{1,2}}[:.]\d{{2}}).{{0,40}}?)\s+{_WROTE}\s+(?P<who>[^:：]{{1,160}}?)\s*[:：]\s*$", re.I)
_DATED_WROTE = re.compile(rf"(?:{_DATE}|\d{{1,2}}:\d{{2}}).{{0,250}}\b{_WROTE}\s*[:：]\s*$", re.I)
_JA_WROTE = re.compile(
    r"^(?P<rest>.{0,200}?)(?:さん|様)?(?:は書きました|が書きました|からのメッセージ)\s*[:：]?\s*$"
    rf"|^\s*(?P<dated>{_DATE}.{{0,40}}?\d{{1,2}}[:：]\d{{2}}.{{0,200}}?)[:：]\s*$"
)
# Lotus Notes reply header: `"Name" <addr> on 03/12/2002 04:05:11 PM`, `Name@ORG on …`.
_NOTES_ON = re.compile(rf"^\s*(?P<who>\S.{{0,160}}?)\s+on\s+{_DATE}\s+{_TIME}(?:\s*\w{{2,4}})?\s*$", re.I)
_NOTES_DATE_LINE = re.compile(rf"^\s*{_DATE}\s+{_TIME}\s*$")
_NOTES_MEMO_FROM = re.compile(rf"^\s*From:\s+(?P<who>.+?)\s{{2,}}{_DATE}\s+{_TIME}\s*$", re.I)
_PLEASE_RESPOND = re.compile(r"^\s*(please respond to|sent by:|phone no:)", re.I)

# One cheap test before the detailed ones: a line that passes none of these cannot open a
# zone, and most lines of a body are such lines — so it looks at the first character, and
# runs a pattern only where that character allows one.
_WORD_START = re.compile(r"(?:On|Le|Am|El|Il|Op|Den|Em|W dniu|begin|anfang|début|inicio|forwarded)\b", re.I)
_DATE_START = re.compile(r"(?:\d{1,4}[./-]\d{1,2}[./-]\d{1,4}|\d{4}\s*年|\d{1,2}\.?\s+\w+\.?\s+\d{4})")


_WORD_INITIALS = frozenset("OLAEIDWBFolaeidwbf")  # the first letters of _WORD_START's words


def _candidate(text: str) -> bool:
    """text: a non-blank line, left-stripped."""
    first = text[0]
    if first in ">-_*":
        return True
    if first.isdigit():
        return bool(_DATE_START.match(text))
    head = text[:48]
    if ((":" in head or "：" in head) and _FIELD.match(text)) or text.startswith("転送") or (first in _WORD_INITIALS and _WORD_START.match(text)):
        return True
    # Attributions end with a colon ("… wrote:", "…さんは書きました:"); a Notes header with
    # its time ("… on 03/12/2002 04:05:11 PM", "… PM CDT").
    end = text.rstrip()[-1:]
    return end in (":", "：") or (end in ("M", "m", "T") and " on " in text)


_DIGIT = re.compile(r"\d")
_EMAIL = re.compile(r"[\w.!#$%&'*+/=?^`{|}~-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")


def _field(line: str) -> tuple[str, str] | None:
    m = _FIELD.match(line)
    return (m.group(1).lower(), m.group(2).strip()) if m else None


def _next_fields(lines: list[str], i: int, window: int = 6) -> int:
    """How many reply-header fields (Sent/To/Subject…) follow line i closely."""
    count, seen = 0, 0
    for line in lines[i + 1 : i + 1 + window + 4]:
        if not line.strip():
            continue
        seen += 1
        if seen > window:
            break
        f = _field(line)
        if f and f[0] in _NEXT_NAMES:
            count += 1
    return count


def _to_follows(lines: list[str], i: int, within: int = 4) -> bool:
    """A Lotus Notes header: To: (or cc:/Subject:) within a few non-blank lines."""
    seen = 0
    for line in lines[i + 1 : i + 12]:
        if not line.strip():
            continue
        seen += 1
        if seen > within:
            return False
        f = _field(line)
        if f and f[0] in ("to", "cc", "subject", "宛先", "件名"):
            return True
        if not (_PLEASE_RESPOND.match(line) or _NOTES_DATE_LINE.match(line) or len(line.strip()) < 80):
            return False
    return False


# ----------------------------------------------------------------------------- people


_NOTES_ORG = re.compile(r"@[A-Za-z_&][\w&-]*(?:\s+\w+)?$")  # "Karen Denne@ENRON", "Jeff Dasovich@EES"


@lru_cache(maxsize=128)  # the same header value recurs down a thread
def person_of(value: str) -> HeaderPerson | None:
    """The person a header value names: `"Name" <addr>`, `Name [mailto:addr]`, `addr
    (Name)`, Notes `Name/OU/ORG@ORG`, `"Frank A. Wolak" <wolak@…>@ENRON`, Outlook's
    `Kaminski, Vince J`."""
    text = value.strip().strip("*").strip()
    if not text:
        return None
    emails = _EMAIL.findall(text.replace("mailto:", " "))
    email = next((e for e in emails if not e.lower().startswith("imceanotes")), None)
    name = re.split(r"\s*[<\[]", text, maxsplit=1)[0]
    name = re.sub(r"\((?:e-?mail|by way of[^)]*)\)", "", name, flags=re.I)
    if email and name.strip().lower() == email.lower():
        name = ""
    if "@" in name and not _EMAIL.fullmatch(name.strip()):
        name = _NOTES_ORG.sub("", name.strip())  # Notes "Name@ORG"
    if _EMAIL.search(name):
        paren = re.search(r"\(([^()@]+)\)", text)  # "addr (Name)"
        name = paren.group(1) if paren else ""
    name = name.split("/")[0] if "/" in name and not email else name  # Notes "Name/HOU/ECT"
    name = re.sub(r"^\s*(?:from|差出人|送信者|von|de|van|da|od|fra|från)\s*[:：]\s*", "", name, flags=re.I)
    name = name.strip().strip("\"'").strip().rstrip(",;:")
    if len(name) > 80 or not (name or email):
        return None
    return HeaderPerson(name=name, email=email.lower() if email else None, line=value.strip()[:300])


def _attribution_person(text: str) -> HeaderPerson | None:
    """The person of "On <date>, Name <addr> wrote:" and its relatives."""
    text = re.sub(rf"\s*{_WROTE}\s*[:：]\s*$", "", text.strip(), flags=re.I)
    text = re.sub(r"(?:さん|様)?(?:は書きました|が書きました|からのメッセージ)\s*[:：]?\s*$", "", text).rstrip(":： ")
    m = re.search(r'("[^"]*"\s*<[^<>]+>|[^"<>,]*<[^<>]+>|[\w.+-]+@[\w-]+(?:\.[\w-]+)+)\s*$', text)
    if m:
        found = person_of(_after_date(m.group(1)))
        return found and HeaderPerson(found.name, found.email, text)
    # No address: the words after the date and time ("On Mon, Jan 3, 2011 at 5:00 PM, Bob
    # Smith wrote:", "2022年1月1日(金) 9:00 田中太郎:").
    tail = _after_date(text)
    return HeaderPerson(name=tail, email=None, line=text) if 0 < len(tail) <= 60 else None


_DATE_PREFIX = re.compile(rf"^.*(?:{_TIME}|\d{{4}}(?:\s*年.*?日(?:\s*[(（].[)）])?)?)(?:\s*(?:Uhr|h|[A-Z]{{2,4}}T|GMT|UTC|[+-]\d{{4}}))?[\s,，、]*")


def _after_date(text: str) -> str:
    """The part of an attribution after its date and time ("2022年1月1日(金) 9:00 田中太郎 <…>"
    → "田中太郎 <…>", "Tuesday, 2016 at 11:10 PM Steven Scott <…>" → "Steven Scott <…>")."""
    head = text.split("<", 1)[0]
    if not _DIGIT.search(head):
        return text.strip()
    rest = _DATE_PREFIX.sub("", head, count=1)
    rest = re.sub(r"^(?:at|um|à|a las|alle|kl\.?)\s+", "", rest, flags=re.I)
    return (rest + ("<" + text.split("<", 1)[1] if "<" in text else "")).strip(" ,")


# ----------------------------------------------------------------------------- the engine


@dataclass(frozen=True, slots=True)
class _Start:
    kind: str
    header_end: int  # index of the first line after the header block
    person: HeaderPerson | None
    first: int  # first line of the zone (may be above the line that triggered it)
    attribution: bool = False  # "On … wrote:": it opens the `>` block under it only


def _header_block(lines: list[str], i: int) -> tuple[int, HeaderPerson | None]:
    """Consume a reply/forward header block that starts at line i: field lines, Notes name
    and date lines, To:/cc: lists wrapped over many lines. Ends after Subject: or at the
    first blank line after some fields. Returns (end, person of its From/first line)."""
    person: HeaderPerson | None = None
    j, n = i, len(lines)
    fields = 0
    in_list = False
    while j < n and j - i < _MAX_HEADER_LINES:
        line = lines[j]
        stripped = line.strip()
        if not stripped:
            if fields:
                # Notes leaves blank lines between From:, the To: list, cc: and Subject:.
                k = j + 1
                while k < n and k - j < 3 and not lines[k].strip():
                    k += 1
                if k < n and _field(lines[k]):
                    j = k
                    continue
                break
            j += 1
            continue
        f = _field(line)
        if f:
            fields += 1
            name, value = f
            if not value:
                # Thunderbird's HTML header table: the value on the next non-blank line.
                k = j + 1
                while k < n and k - j < 3 and not lines[k].strip():
                    k += 1
                if k < n and lines[k].strip() and not _field(lines[k]):
                    value = lines[k].strip()
                    j = k
            if name in _FROM_NAMES and person is None:
                person = person_of(re.split(rf"\s+on\s+{_DATE}", value)[0]) if value else None
            in_list = name in ("to", "cc", "bcc", "宛先", "an", "à", "para", "aan")
            j += 1
            if name in _SUBJECT_NAMES and person is not None:  # Thunderbird writes Subject: first
                break
            continue
        if fields == 0 and (_NOTES_DATE_LINE.match(line) or _PLEASE_RESPOND.match(line) or j - i < 4):
            j += 1
            continue
        if in_list and len(stripped) < 120 and ("@" in stripped or "/" in stripped or "," in stripped):
            j += 1  # a To:/cc: list continued on the next line
            continue
        if _PLEASE_RESPOND.match(line):
            j += 1
            continue
        break
    if fields == 0:
        return i, None  # no header fields under the banner: what follows is the body
    return j, person


def _start_at(lines: list[str], i: int, forward_hint: bool) -> _Start | None:
    """Whether a zone starts at line i, and its header."""
    line = lines[i]
    stripped = line.strip()
    if not stripped or not _candidate(line.lstrip()):
        return None
    n = len(lines)
    if _FORWARD_BANNER.match(line):
        end, person = _header_block(lines, i + 1)
        return _Start(FORWARDED, end, person, i)
    m = _NOTES_FORWARD.match(line)
    if m:
        j = i + 1
        if j < n and not line.rstrip().endswith("-") and re.match(r"^\s*(?:[AP]M\s*)?-{3,}\s*$", lines[j]):
            j += 1  # the banner wrapped onto a second line
        k = j
        while k < n and not lines[k].strip():
            k += 1
        person = None
        if k < n:
            # A Notes header under the banner: a name line (+ date line), `Name on date`, a
            # memo From: line, or an Outlook block.
            sub = _start_at(lines, k, forward_hint)
            if sub is not None:
                return _Start(FORWARDED, sub.header_end, sub.person, i)
            # Notes letterhead lines ("Enron Capital & Trade Resources Corp.") before it.
            for skip in range(k, min(n, k + 4)):
                sub = _start_at(lines, skip, forward_hint) if lines[skip].strip() else None
                if sub is not None:
                    return _Start(FORWARDED, sub.header_end, sub.person, i)
        return _Start(FORWARDED, j, person, i)
    if _ORIGINAL.match(line):
        end, person = _header_block(lines, i + 1)
        return _Start(FORWARDED if forward_hint else QUOTED, end, person, i)
    f = _field(line)
    if f and f[0] in _FROM_NAMES:
        memo = _NOTES_MEMO_FROM.match(line)
        if _next_fields(lines, i) >= 2 or (memo and _to_follows(lines, i)):
            end, person = _header_block(lines, i)
            if memo:
                person = person_of(memo.group("who"))
            first = i
            # A raw header dump (Date:/From:/To:… of a forwarded message): the zone starts
            # at its first header line. Notes letterhead lines indented like the From: line
            # above it belong to the header too.
            while first > 0 and _RFC_HEADER.match(lines[first - 1]):
                first -= 1
            indent = re.match(r"^\s*", line).group(0)  # type: ignore[union-attr]
            if indent and first == i:
                k = i - 1
                while k >= 0 and i - k <= 3 and (not lines[k].strip() or lines[k].startswith(indent)) and not _field(lines[k]):
                    if lines[k].strip():
                        first = k
                    k -= 1
            return _Start(FORWARDED if forward_hint else QUOTED, end, person, first)
    if _SEPARATOR.match(line):
        k = i + 1
        while k < n and not lines[k].strip():
            k += 1
        if k < n and (g := _field(lines[k])) and g[0] in _FROM_NAMES and _next_fields(lines, k) >= 1:
            end, person = _header_block(lines, k)
            return _Start(FORWARDED if forward_hint else QUOTED, end, person, i)
    if stripped.startswith(">"):
        return None  # `>` blocks are read by the caller
    m = _ON_WROTE.match(line)
    if m:
        return _Start(QUOTED, i + 1, _attribution_person(m.group("rest")), i, True)
    m = _WROTE_WHO.match(line)
    if m and len(stripped) < 320:
        return _Start(QUOTED, i + 1, person_of(m.group("who")), i, True)
    if _DATED_WROTE.search(line) and len(stripped) < 320:
        return _Start(QUOTED, i + 1, _attribution_person(stripped), i, True)
    m = _JA_WROTE.match(line)
    if m and len(stripped) < 250:
        return _Start(QUOTED, i + 1, _attribution_person(stripped), i, True)
    if i + 1 < n and _ON_START.match(line) and _DIGIT.search(line) and not lines[i + 1].lstrip().startswith(">"):
        # Clients wrap "On …, X <x@y>" / "wrote:" over two lines, or three ("Am So., 1. Jan.
        # 2023 um 17:22 Uhr" / "schrieb John Doe <" / "noreply@github.com>:").
        for extra in (1, 2):
            if i + extra >= n or not lines[i + extra].strip():
                break
            joined = " ".join(ln.strip() for ln in lines[i : i + extra + 1]).replace("< ", "<")
            m = _ON_WROTE.match(joined)
            if m:
                return _Start(QUOTED, i + extra + 1, _attribution_person(m.group("rest")), i, True)
            m = _WROTE_WHO.match(joined)
            if m:
                return _Start(QUOTED, i + extra + 1, person_of(m.group("who")), i, True)
    if i + 1 < n and _DIGIT.search(line) and not _DATED_WROTE.search(lines[i + 1]):
        joined = f"{stripped} {lines[i + 1].strip()}"
        if _DATED_WROTE.search(joined) and len(joined) < 320:
            return _Start(QUOTED, i + 2, _attribution_person(joined), i, True)
    m = _NOTES_ON.match(line)
    if m and _to_follows(lines, i):
        end, _person = _header_block(lines, i + 1)
        return _Start(QUOTED, end, person_of(m.group("who")), i)
    # Notes: a name line over a date line ("Tara Rozen" / "04/10/2000 12:09 PM"), then To:.
    if _NOTES_DATE_LINE.match(line) and i > 0 and lines[i - 1].strip() and len(lines[i - 1].strip()) <= 80 and _to_follows(lines, i):
        who = lines[i - 1]
        first = i - 1
        if _PLEASE_RESPOND.match(who) and i > 1:  # "Jeff Dasovich" / "Sent by: Jeff Dasovich" / date
            who, first = lines[i - 2], i - 2
        if not _field(who) and not who.strip().endswith((".", "!", "?")):
            end, _person = _header_block(lines, i + 1)
            return _Start(QUOTED, end, person_of(who), first)
    return None


_QUOTE_MARK = re.compile(r"^\s*>\s?")


def _dequote(line: str) -> str:
    return _QUOTE_MARK.sub("", line, count=1)


def segments(text: str, *, forward_hint: bool = False) -> list[Segment]:
    """The body's zones in order. forward_hint: the message is a forward (its Subject
    starts with Fw:/Fwd:/転送), so an Outlook "Original Message" block under it is the
    forwarded original rather than a quoted one."""
    return _segments(text.splitlines(), forward_hint, 0)


def _segments(lines: list[str], forward_hint: bool, depth: int) -> list[Segment]:
    out: list[Segment] = []
    n = len(lines)
    # The zone the lines belong to: own at first, then the one the last header opened.
    kind, person, zone_depth = OWN, None, depth
    before_attribution: tuple[str, HeaderPerson | None, int] | None = None
    seg_start, seg_header = 0, 0
    i = 0

    def close(end: int) -> None:
        if end > seg_start:
            out.append(Segment(kind, seg_start, end, tuple(lines[seg_start:end]), min(seg_header, end - seg_start), person, zone_depth))

    while i < n:
        line = lines[i]
        text = line.lstrip()
        # Most lines are blank or plain prose that can open no zone: skip them before any
        # pattern runs (this loop sees every line of every body the product reads).
        if not text or (text[0] != ">" and not _candidate(text)):
            i += 1
            continue
        m = _GROUPWISE.match(line) if text.startswith(">>>") else None
        if m:
            close(i)
            kind, person, zone_depth, before_attribution = QUOTED, person_of(m.group("who")), depth + 1, None
            seg_start, seg_header = i, 1
            i += 1
            continue
        if depth < _MAX_DEPTH and text[0] == ">":
            # A `>` block (blank lines inside it included), read again one level down.
            j = i
            while j < n and (lines[j].lstrip().startswith(">") or (not lines[j].strip() and j + 1 < n and lines[j + 1].lstrip().startswith(">"))):
                j += 1
            attributed = before_attribution is not None and not any(ln.strip() for ln in lines[seg_start + seg_header : i])
            if j - i == 1 and not attributed and not _FIELD.match(_dequote(line)):
                i += 1  # one stray `>` line (">>> Things in the Mailbag") is no quote
                continue
            quote_person = person if attributed else None
            if attributed:
                close(seg_start + seg_header)  # the attribution line alone
            else:
                close(i)
            for s in _segments([_dequote(ln) for ln in lines[i:j]], forward_hint, depth + 1):
                out.append(Segment(QUOTED if s.kind == OWN else s.kind, s.start + i, s.end + i, s.lines, s.header, s.person or quote_person, s.depth))
            if attributed and before_attribution is not None:
                kind, person, zone_depth = before_attribution  # the attribution opened this quote only
                before_attribution = None
            seg_start, seg_header = j, 0
            i = j
            continue
        start = _start_at(lines, i, forward_hint)
        if start is not None:
            close(start.first)
            before_attribution = (kind, person, zone_depth) if start.attribution else None
            kind, person, zone_depth = start.kind, start.person, depth + 1
            seg_start, seg_header = start.first, start.header_end - start.first
            i = max(start.header_end, i + 1)
            continue
        i += 1
    close(n)
    return out


def own_of(segs: list[Segment]) -> str:
    """The sender's own words among the zones: the own zone before the first quoted or
    forwarded one — or, when nothing comes before it (a bottom-posted reply, as Thunderbird
    writes them), the first own zone after it."""
    own = [s for s in segs if s.kind == OWN]
    if not own:
        return ""
    first = own[0]
    if first.start == 0 and first.text.strip():
        return first.text
    later = next((s for s in own if s.text.strip()), None)
    return later.text if later else ""


def own_text(text: str) -> str:
    """own_of the zones of a body."""
    return own_of(segments(text))
