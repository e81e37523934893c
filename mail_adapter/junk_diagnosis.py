"""Why a message is (or is not) trusted, from its header block alone: the single sender,
SPF/DKIM/DMARC as the receiving server recorded them, and the spam filter's report.

Pure (no IMAP), so that `mailwidget inspect` reads a file without loading the IMAP library."""

from __future__ import annotations

from crm.domain.drafts import ReadContext
from crm.domain.junk import Diagnosis
from crm.domain.rules import email_domain
from mail_adapter.auth_results import verdict
from mail_adapter.parsing import parse_addresses
from mail_adapter.spam_headers import spam_report


def single_sender(headers: list[tuple[str, str]]) -> str | None:
    addresses = parse_addresses([v for k, v in headers if k == "from"])
    return addresses[0].email if len(addresses) == 1 and addresses[0].email else None


def diagnose_headers(headers: list[tuple[str, str]], ctx: ReadContext) -> Diagnosis:
    sender = single_sender(headers)
    auth = verdict([v for k, v in headers if k == "authentication-results"], email_domain(sender) if sender else None, ctx.trusted_authserv_ids)
    return Diagnosis(sender, auth.as_dict(), spam_report(headers).as_dict(), auth.authenticated)
