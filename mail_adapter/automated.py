"""Automated senders (newsletters, notifications, bounces): the draft warns; it never
silently drops them, since a real customer may still write from such an address."""

from __future__ import annotations

import re

from mail_adapter.parsing import ParsedMessage

_NOREPLY = re.compile(r"^(no-?reply|do-?not-?reply|donotreply|noreply-.*|mailer-daemon|postmaster|bounces?|notifications?|newsletter|info-noreply)([+.-].*)?@", re.I)


def automated_reasons(msg: ParsedMessage) -> list[str]:
    reasons = []
    if msg.header("list-unsubscribe") or msg.header("list-id"):
        reasons.append("list")
    if (msg.header("precedence") or "").strip().lower() in ("bulk", "list", "junk"):
        reasons.append("precedence")
    auto = (msg.header("auto-submitted") or "").strip().lower()
    if auto and auto != "no":
        reasons.append("auto_submitted")
    sender = msg.from_[0].email if msg.from_ else ""
    if sender and _NOREPLY.match(sender):
        reasons.append("noreply")
    if "report-type=delivery-status" in (msg.header("content-type") or "").lower():
        reasons.append("delivery_report")
    return reasons


def is_noreply(address: str) -> bool:
    return bool(_NOREPLY.match(address))
