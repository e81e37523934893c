"""Where the sender's own words end: reply headers of every common client (English and
Japanese), `>` quotes, and forwarded blocks whose original sender may be the lead."""

from __future__ import annotations

import re
from dataclasses import dataclass

# A line that starts the quoted original of a reply.
_REPLY_START = [re.compile(p, re.I) for p in (
    r"^\s*On\b.{3,300}\bwrote:\s*$",
    r"^\s*On\b.{3,200}$",  # Gmail wraps "On …, X <x@y>" and puts "wrote:" on the next line (checked below)
    r"^\s*\d{4}\s*年\s*\d{1,2}\s*月\s*\d{1,2}\s*日.{0,40}?\d{1,2}[:：]\d{2}.{0,200}[:：]\s*$",
    r"^\s*\d{4}[/-]\d{1,2}[/-]\d{1,2}.{0,40}?\d{1,2}:\d{2}.{0,200}(wrote|書きました)?[:：]\s*$",
    r"^.{0,200}(さん|様)?は書きました\s*[:：]?\s*$",
    r"^.{0,200}からのメッセージ\s*[:：]\s*$",
    r"^\s*-{2,}\s*(Original Message|元のメッセージ|Original)\s*-{2,}",
    r"^\s*Le .{3,200} a écrit\s*:\s*$",
    r"^\s*Am .{3,200} schrieb .{0,200}:\s*$",
)]
# A reply header in other languages, or wrapped over two lines by the client ("02.04.2012 14:20
# пользователь "bob" <" / "bob@…> написал:"): a date or time, then the verb and a colon.
_REPLY_DATED = re.compile(
    r"(\d{1,4}[./-]\d{1,2}[./-]\d{2,4}|\d{1,2}:\d{2}).{0,250}\b(wrote|написал\w*|schrieb|a écrit|escribió|scrisse|schreef|skrev|kirjoitti|napisał\w*)\s*:\s*$",
    re.I,
)
_GMAIL_ON = re.compile(r"^\s*On\b", re.I)
_WROTE = re.compile(r"wrote:\s*$", re.I)
_OUTLOOK_FROM = re.compile(r"^\s*\**\s*(From|差出人|送信者)\s*\**\s*[:：]", re.I)
_OUTLOOK_NEXT = re.compile(r"^\s*\**\s*(Sent|Date|To|Subject|Cc|送信日時|日付|日時|宛先|件名|CC)\s*\**\s*[:：]", re.I)
_FORWARD_START = re.compile(
    r"^\s*(-{3,}\s*(Forwarded message|Forwarded Message|転送されたメッセージ|転送メッセージ)\s*-{3,}|Begin forwarded message:|転送元メッセージ:)", re.I
)
_SEPARATOR = re.compile(r"^\s*_{8,}\s*$")
# One cheap test per line before the detailed ones: a line that matches none of these
# cannot start a quote, and most lines of a body are such lines.
_CANDIDATE = re.compile(r"^\s*(>|On\b|Le |Am |\d{4}|\d{1,2}[./]\d{1,2}[./]\d{2,4}|-{2,}|_{8,}|\**\s*(From|差出人|送信者)|Begin forwarded|転送元)|書きました|からのメッセージ", re.I)
_HEADER_LINE = re.compile(r"^\s*\**\s*(From|差出人|送信者|Sent|Date|To|Subject|Cc|送信日時|日付|宛先|件名)\s*\**\s*[:：]\s*(.*)$", re.I)


@dataclass(frozen=True, slots=True)
class Forwarded:
    """An inline forwarded original: its From header value and its text."""

    from_value: str
    text: str


def _outlook_block_at(lines: list[str], i: int) -> bool:
    if not _OUTLOOK_FROM.match(lines[i]):
        return False
    following = [ln for ln in lines[i + 1 : i + 6] if ln.strip()]
    return sum(1 for ln in following[:4] if _OUTLOOK_NEXT.match(ln)) >= 2


def quote_start(lines: list[str]) -> int:
    """Index of the first line that belongs to a quoted original (len(lines) if none)."""
    for i, line in enumerate(lines):
        stripped = line.strip()
        if not stripped or not _CANDIDATE.search(line):
            continue
        if stripped.startswith(">") and i + 1 < len(lines) and lines[i + 1].strip().startswith(">"):
            return i
        if _SEPARATOR.match(line) and i + 1 < len(lines) and any(_OUTLOOK_FROM.match(x) for x in lines[i + 1 : i + 3]):
            return i
        if _outlook_block_at(lines, i) or _FORWARD_START.match(line):
            return i
        if _REPLY_DATED.search(line):
            return i
        if i + 1 < len(lines) and not _REPLY_DATED.search(lines[i + 1]) and _REPLY_DATED.search(f"{line} {lines[i + 1]}"):
            return i  # the header wrapped onto the next line
        for pattern in _REPLY_START:
            if pattern.match(line):
                if pattern.pattern.startswith(r"^\s*On\b.{3,200}$"):
                    if not (_GMAIL_ON.match(line) and i + 1 < len(lines) and _WROTE.search(lines[i + 1])):
                        continue
                return i
    return len(lines)


def own_text(text: str) -> str:
    """The sender's own part of a body: everything before the first quoted original, with
    stray `>` lines removed — or, when nothing comes before it (a bottom-posted reply, as
    Thunderbird writes them), the unquoted lines after the quoted block."""
    lines = text.splitlines()
    start = quote_start(lines)
    own = [ln for ln in lines[:start] if not ln.lstrip().startswith(">")]
    if not any(ln.strip() for ln in own) and start < len(lines):
        rest = lines[start + 1 :]
        while rest and (not rest[0].strip() or rest[0].lstrip().startswith(">")):
            rest = rest[1:]
        own = [ln for ln in rest[: quote_start(rest)] if not ln.lstrip().startswith(">")]
    return "\n".join(own)


def inline_forward(text: str) -> Forwarded | None:
    """The first forwarded original written inline ("---------- Forwarded message ---------",
    Outlook's From:/Sent: block): its From value and the text below its header block."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if _FORWARD_START.match(line) or _outlook_block_at(lines, i) or (line.strip().startswith("-----") and "Original" in line):
            j = i + 1 if not _OUTLOOK_FROM.match(line) else i
            from_value = ""
            while j < len(lines) and (not lines[j].strip() or _HEADER_LINE.match(lines[j])):
                m = _HEADER_LINE.match(lines[j])
                if m and m.group(1).lower() in ("from", "差出人", "送信者") and not from_value:
                    from_value = m.group(2).strip().strip("*").strip()
                j += 1
                if j - i > 12:
                    break
            if from_value:
                body = "\n".join(ln[1:] if ln.startswith(">") else ln for ln in lines[j:])
                return Forwarded(from_value, body)
    return None
