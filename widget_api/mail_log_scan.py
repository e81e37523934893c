"""The mail log's two flows over IMAP and the database, for the API and the worker: logging
one mail by hand, and the auto-log scan of a rep's inbox and Sent folder.

No database transaction is held while the mail server answers (on SQLite, a write lock):
reads come first, then one short transaction writes; attachments are streamed afterwards,
one transaction each, so a slow download never blocks the other writers for long.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from crm.domain.drafts import MessageRef
from crm.domain.errors import MailboxError
from crm.domain.mail_log import MailDraft, MailLogPort
from crm.domain.principal import Principal
from crm.services import mail_log, mailboxes
from crm.services.mail_log import Logged
from mail_adapter.mail_log import MailLog
from widget_api.runtime import Runtime

log = logging.getLogger(__name__)
ROLES = (("inbox", False), ("sent", True))


def log_message(
    runtime: Runtime, principal: Principal, ref: MessageRef, records: Sequence[tuple[str, int]], mailbox_id: int | None = None, *, force: bool = False
) -> tuple[list[Logged], int]:
    """Log the mail onto the records (each checked first, then the never-log lists unless
    the rep `force`s it); returns the links and the bytes the IMAP server sent for it
    (header, text, and any attachment kept)."""
    with runtime.sessions() as session:
        mail_log.check_records(session, principal, records)
        port = MailLog(runtime.mailbox(session, principal, mailbox_id))
    draft = port.read(ref)
    with runtime.sessions.begin() as session:
        refs = mail_log.check_records(session, principal, records)
        if not force:
            mail_log.check_never_log(session, principal, draft)
        mail, links = mail_log.store_mail(session, principal, draft, refs)
        mail_id = mail.id
    return links, draft.bytes_fetched + store_attachments(runtime, principal, port, draft, mail_id)


def store_attachments(runtime: Runtime, principal: Principal, port: MailLogPort, draft: MailDraft, mail_id: int) -> int:
    """Keep the bytes of the mail's attachments when the organisation says so."""
    with runtime.sessions() as session:
        wanted = [(a.id, a.section) for a in mail_log.attachments_to_store(session, principal.organisation_id, mail_id)]
    encodings = {a.section: a.encoding for a in draft.attachments}
    fetched = 0
    for attachment_id, section in wanted:
        with runtime.sessions.begin() as session:
            fetched += mail_log.store_attachment(session, attachment_id, port, draft.ref or MessageRef("", message_id=draft.message_id), encodings.get(section))
    return fetched


def scan_mailbox(runtime: Runtime, principal: Principal, mailbox_id: int | None = None) -> dict[str, int]:
    """Auto-log the rep's inbox and Sent folder since the last scan. Each folder's mails and
    its new state are written in one transaction: a scan cut off by a dropped connection
    leaves the state where it was, and the next scan logs the same mails once."""
    with runtime.sessions() as session:
        account = mailboxes.get_account(session, principal, mailbox_id)
        account_id = account.id
        box = runtime.pool.get(runtime.mailbox_settings(account.host, account.port, account.security, account.username, runtime.secrets.decrypt(account.secret_encrypted), account.auth))
        found = mail_log.targets(session, principal)
        states = mail_log.folder_states(session, account_id, found.records)
    port = MailLog(box)
    result = {"logged": 0, "scanned": 0, "round_trips": 0}
    if not found.records:
        return result
    for role, sent in ROLES:
        previous, known = states[role]
        scan = port.scan(previous, found.records, sent=sent)
        if not mail_log.scan_changes_nothing(previous, scan, found, known):
            with runtime.sessions.begin() as session:
                result["logged"] += mail_log.record_scan(session, principal, account_id, role, scan, found)
        with_files = [d for d in scan.mails if d.attachments and mail_log.should_log(d, found)]
        if with_files:
            with runtime.sessions() as session:
                ids = mail_log.mail_ids(session, principal.organisation_id, (d.message_id for d in with_files))
            for draft in with_files:
                if draft.message_id in ids:
                    store_attachments(runtime, principal, port, draft, ids[draft.message_id])
        result["scanned"] += len(scan.mails)
        result["round_trips"] += scan.round_trips
    return result


def scan_quietly(runtime: Runtime, principal: Principal, mailbox_id: int) -> dict[str, int] | None:
    """The worker's call: a mailbox that fails is logged and tried again next pass."""
    try:
        return scan_mailbox(runtime, principal, mailbox_id)
    except MailboxError as exc:
        log.warning("auto-log scan of mailbox %s skipped: %s", mailbox_id, exc.code)
        return None
