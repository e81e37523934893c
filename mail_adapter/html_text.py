"""HTML mail bodies to plain text that keeps the line structure signatures depend on.

Paragraphs become blank-line separated, line blocks (div, tr, li) and <br> line breaks,
table cells are separated by spaces, and
quoted blocks (<blockquote>, Gmail/Outlook/Yahoo quote containers) come out prefixed
with "> " so the quote detection that works on plain text works here too.
"""

from __future__ import annotations

import html as html_lib
import re

from selectolax.lexbor import LexborHTMLParser

# Paragraphs are set off by a blank line; line blocks (a Gmail signature's <div>s, a
# signature table's rows) only start a new line, so a signature stays one paragraph.
_PARAGRAPHS = ("p", "table", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "hr", "ul", "ol", "dl")
_LINES = (
    "div", "tr", "li", "address", "section", "article", "header", "footer", "dt", "dd",
    "center", "form", "fieldset", "tbody", "thead",
)  # fmt: skip
_CELLS = ("td", "th")
_QUOTES = (
    "blockquote",
    "div.gmail_quote",
    "div.yahoo_quoted",
    "div#divRplyFwdMsg",
    "div#appendonsend",
    "div.moz-cite-prefix",
)
# Sentinels that cannot occur in decoded mail text (C0 controls are stripped before).
_QUOTE_OPEN, _QUOTE_CLOSE, _LINE = "\x02", "\x03", "\x04"
# A run of line breaks from line blocks: one newline, or a blank line where it meets one.
_LINE_RUN = re.compile(r"[\s\x04]*\x04[\s\x04]*")
_BLANKS = re.compile(r"[ \t\u00a0\u3000]*\n[ \t\u00a0\u3000\n]*\n")
_SPACES = re.compile(r"[ \t\u00a0]+")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def html_to_text(markup: str) -> str:
    """Render HTML to text; never raises on malformed markup."""
    markup = _CONTROL.sub("", markup)
    if not markup.strip():
        return ""
    tree = LexborHTMLParser(markup)
    for node in tree.css("script, style, head, title, noscript, template"):
        node.decompose()
    root = tree.body or tree.root
    if root is None:
        return ""
    for node in root.css("a[href]"):
        href = node.attributes.get("href") or ""
        if href[:4].lower() == "tel:" and not re.search(r"\d", node.text() or ""):
            node.insert_child(" " + html_lib.unescape(href[4:]))
    for node in root.css("br"):
        node.insert_before("\n")
    for node in root.css(", ".join(_QUOTES)):
        node.insert_before("\n" + _QUOTE_OPEN)
        node.insert_after(_QUOTE_CLOSE + "\n")
    for node in root.css(", ".join(_PARAGRAPHS)):
        node.insert_before("\n\n")
        node.insert_after("\n\n")
    for node in root.css(", ".join(_LINES)):
        node.insert_before(_LINE)
        node.insert_after(_LINE)
    for node in root.css(", ".join(_CELLS)):
        node.insert_after("  ")
    text = root.text(deep=True, separator="")
    text = _LINE_RUN.sub(_line_break, text)
    return _tidy(_prefix_quotes(text))


def _line_break(m: re.Match[str]) -> str:
    """A blank line where the run holds one already, or a <br> between two line blocks
    (Gmail's empty line is <div><br></div>); otherwise one newline."""
    run = m.group(0)
    inner = run[run.index(_LINE) : run.rindex(_LINE)]
    return "\n\n" if run.count("\n") >= 2 or "\n" in inner else "\n"


def _prefix_quotes(text: str) -> str:
    """Prefix "> " to every line inside the quote sentinels (nesting adds more)."""
    if _QUOTE_OPEN not in text:
        return text
    out: list[str] = []
    depth = 0
    for line in text.split("\n"):
        prefix_depth = depth
        depth += line.count(_QUOTE_OPEN) - line.count(_QUOTE_CLOSE)
        depth = max(depth, 0)
        prefix_depth = max(prefix_depth, depth) if _QUOTE_OPEN in line else prefix_depth
        clean = line.replace(_QUOTE_OPEN, "").replace(_QUOTE_CLOSE, "")
        if prefix_depth and clean.strip():
            clean = "> " * prefix_depth + clean.strip()
        out.append(clean)
    return "\n".join(out)


def _tidy(text: str) -> str:
    lines = [_SPACES.sub(" ", line).strip() for line in text.split("\n")]
    return _BLANKS.sub("\n\n", "\n".join(lines)).strip()
