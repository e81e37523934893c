"""Finding the sender's signature block in their own text: after a delimiter line, or after
a sign-off, or the trailing block of contact-looking lines; mobile footers and legal
disclaimers cut off first (their phone numbers are not the sender's)."""

from __future__ import annotations

import re
import unicodedata

from mail_adapter.contact_lines import JA_BUSINESS_ENDINGS
from mail_adapter.names import has_cjk, signs_as
from mail_adapter.zones import own_text

MAX_LINES = 16
_READ_LINES = 300  # lines read from each end of a very long text

_DELIMITER = re.compile(r"^\s*(--\s*|-{3,}.*|={3,}.*|\*{3,}.*|_{3,}.*|[━─―－ー～~＝■□◆◇☆★]{3,}.*|[-=*~]{2,}\s*[^\s=*~-].{0,60}[-=*~]{2,})\s*$")
_SIGNOFF = re.compile(
    r"^\s*(best( regards)?|kind regards|warm regards|regards|best wishes|many thanks|thanks( again)?|thank you|cheers|sincerely( yours)?|yours( truly| sincerely)?|"
    r"respectfully|all the best|with regards|mit freundlichen grüßen|cordialement)\s*[,.!]?\s*$"
    r"|^.{0,30}(よろしくお願い|宜しくお願い|よろしくおねがい|お願い申し上げます|以上、?よろしく|敬具|草々|取り急ぎ.{0,10}(まで|ご連絡)|今後とも).{0,30}$",
    re.I,
)
_FOOTER_TEXT = (
    r"(sent from my|get outlook for|sent from (mail|yahoo|outlook)|iphoneから送信|androidから送信|ipadから送信|my iphoneから送信|送信元:\s*iphone|"
    r"sent via|このメールは.{0,20}から送信)"
)
_DISCLAIMER_TEXT = (
    r"(\W{0,3})(confidential|confidentiality|disclaimer|this (e-?mail|message|communication)( and any)?|the information (contained|in this)|"
    r"if you (have )?received this|notice:|privileged|本メール(は|に|の内容)|このメール(は|に).{0,30}(機密|秘密|誤って|宛先)|"
    r"この電子メール|機密情報|※?本メールの|【?注意】?[:：]?|\*?\s*本電子メール)"
)
_FOOTER = re.compile(rf"^\s*{_FOOTER_TEXT}", re.I)
_DISCLAIMER = re.compile(rf"^\s*{_DISCLAIMER_TEXT}", re.I)
# Either of the two, as one pattern: most lines are turned away by it alone.
_EITHER = re.compile(rf"^\s*(?:{_FOOTER_TEXT}|{_DISCLAIMER_TEXT})", re.I)
_CONTACTISH = re.compile(
    r"(tel|phone|mobile|cell|direct|office|fax|携帯|電話|〒|https?://|www\.|@|株式会社|有限会社|合同会社|\(株\)|㈱|inc\b|llc\b|ltd|gmbh|k\.k\.|corp|"
    rf"{JA_BUSINESS_ENDINGS}|"
    r"部長|課長|社長|manager|director|president|founder|officer|\b[se]?vp\b|head of|"
    r"\d{2,4}[-.‐－ー]\d{2,4}[-.‐－ー]\d{3,4}|\(\d{2,4}\)\s?\d{2,4}[-.\s]\d{3,4}|\+\d{1,3}[\s.-]?\(?\d)",
    re.I,
)


# A line of someone else's contact details inside the signature: an assistant, a secretary.
_SOMEONE_ELSE = re.compile(r"^\s*(assistant|executive assistant|ea|secretary|pa|秘書|アシスタント|代理)\s*[:：]", re.I)


# A sentence, not a signature line: "Please call Keith Bohn (403) 261-3388." names someone
# else's number, and a lone link at the end of a mail is no signature either.
_URL_ONLY = re.compile(r"^\s*(https?://|www\.)\S+\s*$", re.I)


_FUNCTION_WORDS = frozenset("a an the to on at for in of and or me my you your our we i is are will be if please call contact let her his she he it its they them this that with from by as would like can could here there".split())


def _prose(line: str) -> bool:
    text = line.strip()
    if has_cjk(text):
        return len(text) >= 20 and text.endswith(("。", "！", "？"))
    words = text.split()
    if len(words) >= 3 and _LIST_ITEM.match(text):
        return True  # "1) Call Bruce Webster w/ Hunter Oil." is a to-do list, not a signature
    # "Ventana Cloud Inc." ends with a full stop too: a sentence also has its small words,
    # and a signature line its separators. A sentence wrapped at 72 columns ends anywhere.
    return (
        len(words) >= 6
        and (text.endswith((".", "!", "?", ":")) or len(words) >= 8)
        and not re.search(r"[|｜·•]", text)
        and sum(1 for w in words if w.lower().strip(".,!?:") in _FUNCTION_WORDS) >= 2
    )


_LIST_ITEM = re.compile(r"^\s*(?:\d{1,2}[.)]|[-*•])\s+\S")


def _own(block: list[str]) -> list[str]:
    return [ln for ln in block if not _SOMEONE_ELSE.match(ln)]


# The list of attachments a client writes under the text ("(See attached file: a.doc)",
# " - a.doc", "<<a.doc>>"): never a signature line.
_ATTACHMENT = re.compile(r"^\s*(?:.*\(See attached file:.*|[^()]{0,80}\.\w{2,5}\)(?:\s*\(See attached file:.*)?|-\s+\S.{0,120}\.\w{2,5}(?:\s*<<.*)?|<<[^<>]+>>(?:\s*<<[^<>]+>>)*|\[IMAGE\](?:\s*\[IMAGE\])*)\s*$", re.I)


def _attachment_line(line: str) -> bool:
    # Every form of the list has a bracket, "<<" or a leading dash: the pattern runs on those
    # lines only (this is read for every line of every body).
    if not ("(" in line or ")" in line or "<" in line or "[" in line or line.lstrip().startswith("-")):
        return False
    return bool(_ATTACHMENT.match(line))


def _cut_footer_and_disclaimer(lines: list[str]) -> list[str]:
    lines = [ln for ln in lines if not _attachment_line(ln)]
    for i, line in enumerate(lines):
        # _EITHER matches where one of the two does: one pattern on most lines, not two.
        if _EITHER.match(line) and (_FOOTER.match(line) or (_DISCLAIMER.match(line) and i > 0)):
            return lines[:i]
    return lines


def _signed_block(lines: list[str], name: str) -> list[str]:
    """The writer's name line followed by contact lines, wherever it stands (a signature
    with pasted articles under it): the last such name line in the text wins."""
    n = len(lines)
    first = name.replace(",", " ").split()
    words = [w.lower() for w in first if len(w) > 1]
    for i in range(n - 1, 0, -1):
        low = lines[i].lower()
        if len(low) > 40 or not any(w in low for w in words) or not signs_as(lines[i], name):
            continue
        block: list[str] = []
        # The company and title lines written above the name belong to the block too.
        k = i
        while k > 0 and i - k < 4 and lines[k - 1].strip() and len(lines[k - 1].strip()) <= 60 and not _prose(lines[k - 1]) and not lines[k - 1].strip().endswith((".", ",", "!", "?", ":")):
            k -= 1
        block.extend(ln.strip() for ln in lines[k:i])
        for line in lines[i : i + MAX_LINES]:
            if not line.strip():
                if len(block) > 1:
                    break
                continue
            if len(line.strip()) > 80 or _prose(line):
                break
            block.append(line.strip())
        after = block[i - k + 1 : i - k + 3]
        if len(block) > 1 and any(_CONTACTISH.search(ln) and not _URL_ONLY.match(ln) for ln in after):
            return block
    return []


def _trailing_run(lines: list[str]) -> list[str]:
    """The short, non-prose lines that end the text, when a signature follows the last
    sentence without a blank line ("…the best,\nNXE Energy\nDavid Taylor, CSO\nTel …")."""
    run: list[str] = []
    for line in reversed(lines):
        text = line.strip()
        if not text or len(text) > 80 or _prose(line) or text.endswith((",", ";")) and len(text.split()) > 3:
            break
        run.insert(0, text)
        if len(run) >= MAX_LINES:
            break
    return run if len(run) >= 2 and any(_CONTACTISH.search(ln) and not _URL_ONLY.match(ln) for ln in run) else []


def signature_lines(text: str, name: str = "", *, whole_body: bool = True) -> tuple[list[str], str]:
    """The signature's lines (trimmed, blank lines dropped) and how it was found:
    "delimiter", "signoff", "signed" (the writer's name line and contact lines under it,
    anywhere in the text), "trailing" or "" when no block was found. Only the writer's own
    zone of `text` is read (zones.own_text): nothing under a quoted or forwarded header.
    name: the writer's name as the header gives it, to find where they signed.
    whole_body: False when `text` already is one zone's text (a Segment's body)."""
    own = own_text(text) if whole_body else text
    lines = own.splitlines()
    if len(lines) > 2 * _READ_LINES:  # a pasted newsletter: the signature is near one end
        lines = lines[:_READ_LINES] + [""] + lines[-_READ_LINES:]
    lines = [ln.rstrip() for ln in lines] if own.isascii() else [unicodedata.normalize("NFC", ln.rstrip()) for ln in lines]  # ASCII is its own NFC form
    lines = _cut_footer_and_disclaimer(lines)
    while lines and not lines[-1].strip():
        lines.pop()
    n = len(lines)
    window = max(0, n - 30)
    # A delimiter in the last lines opens the signature; boxed signatures (━━━ above and
    # below) take what is between the first and the last delimiter.
    delims = [i for i in range(window, n) if _DELIMITER.match(lines[i]) and not _CONTACTISH.search(lines[i])]
    if delims:
        first = delims[0]
        block = [ln.strip() for ln in lines[first + 1 :] if ln.strip() and not _DELIMITER.match(ln)]
        if block and any(_CONTACTISH.search(ln) for ln in block) or len(block) <= 6 and block:
            return _own(block)[:MAX_LINES], "delimiter"
    for i in range(n - 1, window - 1, -1):
        if _SIGNOFF.match(lines[i]):
            block = [ln.strip() for ln in lines[i + 1 :] if ln.strip()]
            if block:
                return _own(block)[:MAX_LINES], "signoff"
    # No delimiter, no sign-off: the trailing paragraphs that look like contact details — up to
    # two, for a signature followed by an assistant's line or a second address paragraph.
    trailing: list[str] = []
    end = n
    for _paragraph in range(2):
        while end > 0 and not lines[end - 1].strip():
            end -= 1
        start = end
        while start > 0 and lines[start - 1].strip():
            start -= 1
        paragraph = [ln.strip() for ln in lines[start:end]]
        if (
            not paragraph
            or len(trailing) + len(paragraph) > MAX_LINES
            or any(len(ln) > 80 or _prose(ln) for ln in paragraph)
            or not any(_CONTACTISH.search(ln) and not _URL_ONLY.match(ln) for ln in paragraph)
        ):
            break
        trailing = paragraph + trailing
        end = start
    if trailing:
        return _own(trailing), "trailing"
    signed = _signed_block(lines, name) if name else []
    if signed:
        return _own(signed), "signed"
    trailing = _trailing_run(lines)
    return (_own(trailing), "trailing") if trailing else ([], "")
