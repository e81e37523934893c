"""What the spam filter said: SpamAssassin's X-Spam-Status / X-Spam-Score / X-Spam-Flag and
rspamd's X-Spamd-Result / X-Rspamd-Score, when the server adds them."""

from __future__ import annotations

import re
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class SpamReport:
    filter: str | None = None  # "spamassassin" | "rspamd"
    is_spam: bool | None = None
    score: float | None = None
    required: float | None = None
    rules: tuple[str, ...] = field(default=())

    def as_dict(self) -> dict[str, object]:
        return {"filter": self.filter, "is_spam": self.is_spam, "score": self.score, "required": self.required, "rules": list(self.rules)}


def _float(text: str | None) -> float | None:
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


def spam_report(headers: list[tuple[str, str]]) -> SpamReport:
    h: dict[str, str] = {}
    for name, value in headers:
        h.setdefault(name, value)
    status = h.get("x-spam-status")
    if status:
        m = re.match(r"\s*(yes|no)\b", status, re.I)
        score = re.search(r"score=(-?[\d.]+)", status)
        required = re.search(r"required=(-?[\d.]+)", status)
        tests = re.search(r"tests=([^\s]+(?:\s*,\s*[^\s,]+)*)", status)
        rules = tuple(t.strip() for t in tests.group(1).split(",") if t.strip() and t.strip().lower() != "none") if tests else ()
        return SpamReport("spamassassin", m.group(1).lower() == "yes" if m else None, _float(score.group(1)) if score else None, _float(required.group(1)) if required else None, rules[:30])
    result = h.get("x-spamd-result")
    if result:
        m = re.search(r"(true|false)\s*\[\s*(-?[\d.]+)\s*/\s*(-?[\d.]+)\s*\]", result, re.I)
        rules = tuple(re.findall(r"([A-Z][A-Z0-9_]+)\(-?[\d.]+\)", result))
        return SpamReport("rspamd", m.group(1).lower() == "true" if m else None, _float(m.group(2)) if m else None, _float(m.group(3)) if m else None, rules[:30])
    if "x-rspamd-score" in h or "x-spam-score" in h or "x-spam-flag" in h:
        flag = h.get("x-spam-flag")
        return SpamReport(
            "rspamd" if "x-rspamd-score" in h else "spamassassin",
            flag.strip().lower() == "yes" if flag else None,
            _float(h.get("x-rspamd-score") or h.get("x-spam-score")),
        )
    return SpamReport()
