"""Logging mail onto CRM records: by hand ("log this mail"), and by the auto-log scan for
the records a rep chose, with the never-log rules; the organisation's settings.

Never logged by auto-log: mail with the organisation's own domains (unless the admin turns
`log_internal` on), automated mail (crm: mail_adapter.automated's reasons, read by the
adapter), and the addresses and domains on the rep's own or the organisation's never-log
list. Logging by hand applies the never-log lists too (the rep's own and the organisation's,
on every address of the mail but the rep's): the rep is told which list, and may log the
mail anyway.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sqlalchemy import bindparam, delete, func, insert, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from crm.domain.drafts import MessageRef
from crm.domain.errors import InvalidInput, NeverLogged, NotFound, PermissionDenied
from crm.domain.mail_log import FolderScan, FolderState, MailDraft, MailLogPort, listed, own_address
from crm.domain.principal import Principal
from crm.domain.rules import normalise_email
from crm.services import timeline
from crm.services.organisations import require_admin
from crm.services.spam import normalise_entry
from crm.services.timeline import RecordRef
from crm.store.base import utcnow
from crm.store.models import Contact, Lead, Organisation
from crm.store.timeline import AutoLogRecord, AutoLogState, LoggedMail, MailAttachment, MailAttachmentChunk, MailLogSettings, NeverLogEntry, TimelineEntry

AUTO_LOG_TYPES = ("lead", "contact")


# -- settings ---------------------------------------------------------------------------


def settings_of(session: Session, organisation_id: int) -> MailLogSettings:
    return session.get(MailLogSettings, organisation_id) or MailLogSettings(organisation_id=organisation_id, store_attachments=False, log_internal=False, max_attachment_bytes=50 * 1024 * 1024)


def configure(session: Session, principal: Principal, *, store_attachments: bool, log_internal: bool, max_attachment_bytes: int) -> MailLogSettings:
    require_admin(principal)
    row = session.get(MailLogSettings, principal.organisation_id)
    if row is None:
        row = MailLogSettings(organisation_id=principal.organisation_id)
        session.add(row)
    row.store_attachments, row.log_internal, row.max_attachment_bytes = store_attachments, log_internal, max_attachment_bytes
    session.flush()
    return row


# -- never-log lists ----------------------------------------------------------------------


def add_never(session: Session, principal: Principal, value: str, *, org_wide: bool = False) -> NeverLogEntry:
    """Idempotent per scope. The organisation's list is the admins'."""
    if org_wide and not principal.is_admin:
        raise PermissionDenied("only an administrator may change the organisation's never-log list", code="admin_only")
    norm, scope = normalise_entry(value), principal.list_scope(org_wide)
    row = session.scalar(select(NeverLogEntry).where(NeverLogEntry.organisation_id == principal.organisation_id, NeverLogEntry.scope == scope, NeverLogEntry.value == norm))
    if row is None:
        row = NeverLogEntry(organisation_id=principal.organisation_id, scope=scope, value=norm, added_by_id=principal.user_id)
        session.add(row)
        session.flush()
    return row


def list_never(session: Session, principal: Principal) -> list[NeverLogEntry]:
    """The rep's own entries and the organisation's; never another rep's."""
    return list(
        session.scalars(
            select(NeverLogEntry)
            .where(NeverLogEntry.organisation_id == principal.organisation_id, or_(NeverLogEntry.scope == "org", NeverLogEntry.scope == principal.list_scope(False)))
            .order_by(NeverLogEntry.id)
        )
    )


def remove_never(session: Session, principal: Principal, entry_id: int) -> None:
    row = session.get(NeverLogEntry, entry_id)
    if row is None or row.organisation_id != principal.organisation_id or row.scope not in ("org", principal.list_scope(False)):
        raise NotFound(f"no never-log entry {entry_id}")
    if row.scope == "org" and not principal.is_admin:
        raise PermissionDenied("only an administrator may change the organisation's never-log list", code="admin_only")
    session.delete(row)
    session.flush()


def check_never_log(session: Session, principal: Principal, draft: MailDraft) -> None:
    """NeverLogged when an address of the mail (the rep's own aside) is on the rep's own
    never-log list, else on the organisation's. Only the caller's own entries are read, so
    another rep's list neither blocks nor shows."""
    me = normalise_email(principal.email)
    addresses = sorted({n for n in (normalise_email(a) for a in draft.addresses) if n and n != me})
    if not addresses:
        return
    own = principal.list_scope(False)
    entries: dict[str, set[str]] = {own: set(), "org": set()}
    for scope, value in session.execute(select(NeverLogEntry.scope, NeverLogEntry.value).where(NeverLogEntry.organisation_id == principal.organisation_id, NeverLogEntry.scope.in_([own, "org"]))):
        entries[scope].add(value)
    for scope, name in ((own, "user"), ("org", "org")):
        hit = next((a for a in addresses if listed(a, entries[scope])), None)
        if hit:
            raise NeverLogged(f"{hit} is on the {'rep' if name == 'user' else 'organisation'}'s never-log list", scope=name, address=hit)


# -- logging one mail ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Logged:
    record: RecordRef
    entry_id: int
    created: bool


def _records(session: Session, principal: Principal, records: Iterable[tuple[str, int]]) -> list[RecordRef]:
    refs = [timeline.ref_of(timeline.get_record(session, principal, t, i)) for t, i in dict.fromkeys(records)]
    if not refs:
        raise InvalidInput("name at least one record to log the mail onto")
    return refs


def check_records(session: Session, principal: Principal, records: Iterable[tuple[str, int]]) -> list[RecordRef]:
    """The records, each of the principal's organisation (NotFound otherwise)."""
    return _records(session, principal, records)


def store_mail(session: Session, principal: Principal, draft: MailDraft, records: Iterable[RecordRef]) -> tuple[LoggedMail, list[Logged]]:
    """Store the mail once for the organisation and link it to each record once: the same
    mail logged again gives the existing entries back (created False)."""
    if not draft.message_id:
        raise InvalidInput("a mail without a Message-ID cannot be logged", code="unloggable_mail")
    mail = _mail(session, principal, draft)
    out = []
    for ref in records:
        entry, created = timeline.add_entry(
            session, ref, "mail", at=draft.date or mail.created_at, summary=draft.subject or "(no subject)", source_key=f"mail:{mail.id}", mail_id=mail.id, user_id=principal.user_id,
            payload=mail_payload(draft),
        )
        out.append(Logged(ref, entry.id, created))
    return mail, out


def _mail(session: Session, principal: Principal, draft: MailDraft) -> LoggedMail:
    def find() -> LoggedMail | None:
        return session.scalar(select(LoggedMail).where(LoggedMail.organisation_id == principal.organisation_id, LoggedMail.message_key == draft.message_id))

    mail = find()
    if mail is not None:
        return mail
    mail = LoggedMail(
        organisation_id=principal.organisation_id, message_key=draft.message_id, thread_key=draft.thread_key, subject=draft.subject, sender=draft.sender,
        to=list(draft.to), cc=list(draft.cc), sent_at=draft.date, in_reply_to=draft.in_reply_to, refs=list(draft.references), text=draft.text,
        logged_by_id=principal.user_id,
    )
    try:
        with session.begin_nested():
            session.add(mail)
            session.flush()
            session.add_all(MailAttachment(mail_id=mail.id, section=a.section, name=a.name[:500], content_type=a.content_type[:255], size=a.size, stored=False) for a in draft.attachments)
            session.flush()
    except IntegrityError:
        mail = find()  # logged by a concurrent request meanwhile
        if mail is None:
            raise
    return mail


def attachments_to_store(session: Session, organisation_id: int, mail_id: int) -> list[MailAttachment]:
    """The mail's attachments whose bytes the organisation keeps and that are not kept yet."""
    rules = settings_of(session, organisation_id)
    if not rules.store_attachments:
        return []
    rows = session.scalars(select(MailAttachment).where(MailAttachment.mail_id == mail_id, MailAttachment.stored.is_(False)).order_by(MailAttachment.id))
    return [a for a in rows if a.size <= rules.max_attachment_bytes and a.content_type != "message/rfc822"]


def store_attachment(session: Session, attachment_id: int, port: MailLogPort, ref: MessageRef, encoding: str | None) -> int:
    """Stream one attachment from IMAP into chunk rows (each flushed as it arrives, so the
    process never holds the whole part); returns the bytes the server sent."""
    row = session.get(MailAttachment, attachment_id)
    if row is None or row.stored:
        return 0
    session.execute(delete(MailAttachmentChunk).where(MailAttachmentChunk.attachment_id == row.id))
    seq = [0, 0]

    def sink(data: bytes) -> None:
        if data:
            chunk = MailAttachmentChunk(attachment_id=row.id, seq=seq[0], data=data)
            session.add(chunk)
            session.flush()
            session.expunge(chunk)  # written: the session need not keep its bytes
            seq[0] += 1
            seq[1] += len(data)

    fetched = port.stream_part(ref, row.section, encoding, sink)
    row.stored, row.size = True, seq[1]
    session.flush()
    return fetched


def attachment_chunks(session: Session, principal: Principal, mail_id: int, attachment_id: int) -> tuple[MailAttachment, Callable[[], Iterable[bytes]]]:
    mail = session.get(LoggedMail, mail_id)
    row = session.get(MailAttachment, attachment_id)
    if mail is None or mail.organisation_id != principal.organisation_id or row is None or row.mail_id != mail.id or not row.stored:
        raise NotFound(f"no stored attachment {attachment_id}")

    def chunks() -> Iterable[bytes]:
        ids = list(session.scalars(select(MailAttachmentChunk.id).where(MailAttachmentChunk.attachment_id == row.id).order_by(MailAttachmentChunk.seq)))
        for chunk_id in ids:
            yield session.scalar(select(MailAttachmentChunk.data).where(MailAttachmentChunk.id == chunk_id)) or b""

    return row, chunks


def mail_entry(session: Session, principal: Principal, record_type: str, record_id: int, entry_id: int) -> TimelineEntry:
    timeline.get_record(session, principal, record_type, record_id)
    entry = session.get(TimelineEntry, entry_id)
    if entry is None or entry.organisation_id != principal.organisation_id or entry.record_type != record_type or entry.record_id != record_id or entry.mail_id is None:
        raise NotFound(f"no logged mail {entry_id} on this {record_type}")
    return entry


def mail_of(session: Session, entry: TimelineEntry) -> tuple[LoggedMail, list[MailAttachment]]:
    mail = session.get(LoggedMail, entry.mail_id)
    if mail is None:
        raise NotFound("the logged mail is gone")
    return mail, list(session.scalars(select(MailAttachment).where(MailAttachment.mail_id == mail.id).order_by(MailAttachment.id)))


def unlink(session: Session, principal: Principal, record_type: str, record_id: int, entry_id: int) -> None:
    """Take the mail off this record; a mail no record holds any more is deleted."""
    entry = mail_entry(session, principal, record_type, record_id, entry_id)
    mail_id = entry.mail_id
    session.delete(entry)
    session.flush()
    if not session.scalar(select(func.count()).select_from(TimelineEntry).where(TimelineEntry.mail_id == mail_id)):
        session.execute(delete(LoggedMail).where(LoggedMail.id == mail_id))
    session.flush()


# -- auto-log -------------------------------------------------------------------------------


def _address_of(record: object) -> str | None:
    return getattr(record, "email_norm", None)


def set_auto_log(session: Session, principal: Principal, record_type: str, record_id: int, enabled: bool) -> dict[str, object]:
    """Turn "log every mail with this person" on or off for the principal's mailbox."""
    if record_type not in AUTO_LOG_TYPES:
        raise InvalidInput("auto-log is for leads and contacts")
    record = timeline.get_record(session, principal, record_type, record_id)
    row = session.scalar(select(AutoLogRecord).where(AutoLogRecord.user_id == principal.user_id, AutoLogRecord.record_type == record_type, AutoLogRecord.record_id == record_id))
    address = _address_of(record)
    if enabled:
        if not address:
            raise InvalidInput("this record has no email address to log mail of", code="no_email")
        if row is None:
            row = AutoLogRecord(organisation_id=principal.organisation_id, user_id=principal.user_id, record_type=record_type, record_id=record_id, address=address)
            session.add(row)
        row.address = address
    elif row is not None:
        session.delete(row)
    session.flush()
    return {"enabled": enabled, "address": address}


def auto_log_enabled(session: Session, principal: Principal, record_type: str, record_id: int) -> bool:
    timeline.get_record(session, principal, record_type, record_id)
    return session.scalar(select(AutoLogRecord.id).where(AutoLogRecord.user_id == principal.user_id, AutoLogRecord.record_type == record_type, AutoLogRecord.record_id == record_id)) is not None


@dataclass(frozen=True)
class Targets:
    """What one rep's scan looks for: address → the records to log its mail onto, and the
    never-log values that apply to that rep."""

    records: dict[str, list[RecordRef]]
    never: frozenset[str]
    own_domains: frozenset[str]
    log_internal: bool


# The scan's reads, built once: it runs every minute for every mailbox, mostly to find
# nothing new, and building these statements anew cost more than running them.
_ORG_RULES = (
    select(Organisation.mail_domains, MailLogSettings.log_internal)
    .outerjoin(MailLogSettings, MailLogSettings.organisation_id == Organisation.id)
    .where(Organisation.id == bindparam("org"))
)
_NEVER = select(NeverLogEntry.value).where(NeverLogEntry.organisation_id == bindparam("org"), NeverLogEntry.scope.in_([bindparam("user_scope"), "org"]))
_AUTO_LOG = (
    select(AutoLogRecord.record_type, AutoLogRecord.record_id, func.coalesce(Lead.email_norm, Contact.email_norm))
    .outerjoin(Lead, (AutoLogRecord.record_type == "lead") & (Lead.id == AutoLogRecord.record_id) & (Lead.organisation_id == AutoLogRecord.organisation_id))
    .outerjoin(Contact, (AutoLogRecord.record_type == "contact") & (Contact.id == AutoLogRecord.record_id) & (Contact.organisation_id == AutoLogRecord.organisation_id))
    .where(AutoLogRecord.user_id == bindparam("user"), AutoLogRecord.organisation_id == bindparam("org"))
)
_STATES = select(AutoLogState.role, AutoLogState.folder, AutoLogState.uidvalidity, AutoLogState.last_uid, AutoLogState.addresses).where(AutoLogState.mailbox_account_id == bindparam("account"))


def targets(session: Session, principal: Principal) -> Targets:
    """The rep's auto-log records with their current addresses (an edited email moves
    auto-log with it), less what is never logged."""
    params = {"org": principal.organisation_id, "user": principal.user_id, "user_scope": principal.list_scope(False)}
    org_domains, store_internal = session.execute(_ORG_RULES, params).one()
    own = frozenset(d.lower() for d in org_domains or [])
    never = frozenset(session.scalars(_NEVER, params))
    records: dict[str, list[RecordRef]] = {}
    for record_type, record_id, address in session.execute(_AUTO_LOG, params):
        if not address or listed(address, never) or (own_address(address, own) and not store_internal):
            continue
        records.setdefault(address, []).append(RecordRef(record_type, record_id, principal.organisation_id))
    return Targets(records, never, own, bool(store_internal))


def should_log(draft: MailDraft, found: Targets) -> list[RecordRef]:
    """The records a scanned mail goes to, after the never-log rules on the mail itself:
    an automated mail, or one whose sender is never logged, goes nowhere."""
    if draft.automated or not draft.message_id:
        return []
    if draft.sender and listed(draft.sender, found.never):
        return []
    refs: list[RecordRef] = []
    for address in sorted(draft.addresses):
        refs += found.records.get(address, [])
    return list(dict.fromkeys(refs))


def folder_states(session: Session, mailbox_account_id: int, addresses: Iterable[str]) -> dict[str, tuple[FolderState, list[str]]]:
    """Per folder role, where to scan from — the stored state, or the folder's start when
    an address was added since the last scan (its older mail is logged once too) — and the
    addresses the last scan looked for."""
    wanted = set(addresses)
    out: dict[str, tuple[FolderState, list[str]]] = {"inbox": (FolderState("INBOX"), []), "sent": (FolderState(""), [])}
    for role, folder, uidvalidity, last_uid, addresses_then in session.execute(_STATES, {"account": mailbox_account_id}):
        known = list(addresses_then or [])
        out[role] = (FolderState(folder, uidvalidity, 0 if wanted - set(known) else last_uid), known)
    return out


def mail_ids(session: Session, organisation_id: int, message_ids: Iterable[str]) -> dict[str, int]:
    """Message-ID → id of the organisation's logged mails among `message_ids`."""
    keys = list(message_ids)
    if not keys:
        return {}
    return dict(session.execute(select(LoggedMail.message_key, LoggedMail.id).where(LoggedMail.organisation_id == organisation_id, LoggedMail.message_key.in_(keys))).all())


def scan_changes_nothing(previous: FolderState, scan: FolderScan, found: Targets, known: Iterable[str]) -> bool:
    """Nothing to log and the folder's state as stored: the scan need not write at all."""
    return not scan.mails and scan.state == previous and set(found.records) == set(known)


def record_scan(session: Session, principal: Principal, mailbox_account_id: int, role: str, scan: FolderScan, found: Targets) -> int:
    """Log what the scan found and move the folder's state on, in the caller's transaction:
    both or neither, so a scan that fails midway is done again, never half."""
    batch: dict[str, tuple[MailDraft, list[RecordRef]]] = {}
    for draft in scan.mails:
        refs = should_log(draft, found)
        if refs:
            batch.setdefault(draft.message_id, (draft, refs))
    for draft, refs in _thread_replies(session, principal, [d for d in scan.replies if d.message_id not in batch], found):
        batch.setdefault(draft.message_id, (draft, refs))
    logged = _store_many(session, principal, list(batch.values()))
    row = session.scalar(select(AutoLogState).where(AutoLogState.mailbox_account_id == mailbox_account_id, AutoLogState.role == role))
    if row is None:
        row = AutoLogState(mailbox_account_id=mailbox_account_id, role=role, folder=scan.state.folder)
        session.add(row)
    row.folder, row.uidvalidity, row.last_uid = scan.state.folder, scan.state.uidvalidity, scan.state.last_uid
    row.addresses, row.scanned_at = sorted(found.records), utcnow()
    session.flush()
    return logged


def _thread_replies(session: Session, principal: Principal, replies: list[MailDraft], found: Targets) -> list[tuple[MailDraft, list[RecordRef]]]:
    """The replies that continue a thread logged onto the rep's auto-log records, with
    those records: a thread stays together on the record even when a reply does not name
    the person. The never-log rules apply as to any mail."""
    wanted = {ref for refs in found.records.values() for ref in refs}
    parents = {d.message_id: [k for k in (d.in_reply_to, *d.references) if k] for d in replies if not d.automated and d.message_id}
    keys = {k for ks in parents.values() for k in ks}
    if not keys or not wanted:
        return []
    holders: dict[str, set[RecordRef]] = {}
    rows = session.execute(
        select(LoggedMail.message_key, TimelineEntry.record_type, TimelineEntry.record_id)
        .join(TimelineEntry, TimelineEntry.mail_id == LoggedMail.id)
        .where(LoggedMail.organisation_id == principal.organisation_id, LoggedMail.message_key.in_(sorted(keys)))
    )
    for key, record_type, record_id in rows:
        ref = RecordRef(record_type, record_id, principal.organisation_id)
        if ref in wanted:
            holders.setdefault(key, set()).add(ref)
    out = []
    for draft in replies:
        refs = {r for k in parents.get(draft.message_id, []) for r in holders.get(k, set())}
        if refs and not (draft.sender and (listed(draft.sender, found.never) or (own_address(draft.sender, found.own_domains) and not found.log_internal and draft.sender != principal.email))):
            out.append((draft, sorted(refs, key=lambda r: (r.type, r.id))))
    return out


def _store_many(session: Session, principal: Principal, items: list[tuple[MailDraft, list[RecordRef]]]) -> int:
    """store_mail for many mails in a few statements: the mails and entries that exist are
    looked up at once, the rest inserted at once. A concurrent "log this mail" of one of
    them makes the batch fail on a unique constraint: then one by one."""
    if not items:
        return 0
    try:
        with session.begin_nested():
            return _insert_many(session, principal, items)
    except IntegrityError:
        logged = 0
        for draft, refs in items:
            logged += sum(1 for link in store_mail(session, principal, draft, refs)[1] if link.created)
        return logged


def _insert_many(session: Session, principal: Principal, items: list[tuple[MailDraft, list[RecordRef]]]) -> int:
    org, user = principal.organisation_id, principal.user_id
    keys = [d.message_id for d, _r in items]
    mail_ids = dict(session.execute(select(LoggedMail.message_key, LoggedMail.id).where(LoggedMail.organisation_id == org, LoggedMail.message_key.in_(keys))).all())
    now = utcnow()
    new = [d for d, _r in items if d.message_id not in mail_ids]
    if new:
        # Multi-row INSERT … RETURNING through Core: the ORM's unit of work cost more than
        # the database's work for a first scan's hundreds of mails.
        rows = [
            {"organisation_id": org, "message_key": d.message_id, "thread_key": d.thread_key, "subject": d.subject, "sender": d.sender, "to": list(d.to), "cc": list(d.cc),
             "sent_at": d.date, "in_reply_to": d.in_reply_to, "refs": list(d.references), "text": d.text, "logged_by_id": user, "created_at": now}
            for d in new
        ]
        mail_ids.update(dict(session.execute(insert(LoggedMail).returning(LoggedMail.message_key, LoggedMail.id), rows).all()))
        attachments = [
            {"mail_id": mail_ids[d.message_id], "section": a.section, "name": a.name[:500], "content_type": a.content_type[:255], "size": a.size, "stored": False}
            for d in new for a in d.attachments
        ]
        if attachments:
            session.execute(insert(MailAttachment), attachments)
    sources = [f"mail:{i}" for i in mail_ids.values()]
    have = {tuple(r) for r in session.execute(select(TimelineEntry.record_type, TimelineEntry.record_id, TimelineEntry.source_key).where(TimelineEntry.source_key.in_(sources)))}
    entries = []
    for draft, refs in items:
        mail_id = mail_ids[draft.message_id]
        for ref in refs:
            if (ref.type, ref.id, f"mail:{mail_id}") not in have:
                entries.append(
                    {"organisation_id": org, "record_type": ref.type, "record_id": ref.id, "kind": "mail", "at": draft.date or now, "summary": (draft.subject or "(no subject)")[:500],
                     "payload": mail_payload(draft), "source_key": f"mail:{mail_id}", "mail_id": mail_id, "user_id": user, "created_at": now}
                )
    if entries:
        session.execute(insert(TimelineEntry), entries)
    return len(entries)


def mail_payload(draft: MailDraft) -> dict[str, object]:
    return {"from": draft.sender, "to": list(draft.to), "cc": list(draft.cc), "thread_key": draft.thread_key, "attachments": [a.name for a in draft.attachments]}
