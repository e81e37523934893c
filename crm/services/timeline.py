"""A record's timeline: what feeds it (`add_entry`, called by the other use cases), the
newest-first keyset pages the API serves, and the move of a converted lead's history.

Other features feed it through `add_entry` only, e.g. the outbox after sending:
`timeline.add_entry(session, lead, "automatic_mail", summary=subject, payload={...},
source_key=f"outbox:{message_id}")`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from crm.domain.errors import InvalidInput, NotFound
from crm.domain.mail_log import KINDS, RECORD_TYPES
from crm.domain.principal import Principal
from crm.store.base import utcnow
from crm.store.models import Account, Contact, Lead
from crm.store.timeline import AutoLogRecord, TimelineEntry

MODELS: dict[str, type[Lead] | type[Contact] | type[Account]] = {"lead": Lead, "contact": Contact, "account": Account}
MAX_PAGE = 100


@dataclass(frozen=True, slots=True)
class RecordRef:
    """A lead, contact or account of an organisation, by type and id."""

    type: str
    id: int
    organisation_id: int


def ref_of(record: Lead | Contact | Account | RecordRef) -> RecordRef:
    if isinstance(record, RecordRef):
        return record
    kind = {Lead: "lead", Contact: "contact", Account: "account"}[type(record)]
    return RecordRef(kind, record.id, record.organisation_id)


def person_of_lead(session: Session, organisation_id: int, lead_id: int) -> RecordRef:
    """Where an event of a lead goes: the lead, or the contact it became once converted
    (the lead's entries moved there)."""
    contact_id = session.scalar(select(Contact.id).where(Contact.organisation_id == organisation_id, Contact.lead_id == lead_id).limit(1))
    return RecordRef("contact", contact_id, organisation_id) if contact_id is not None else RecordRef("lead", lead_id, organisation_id)


def get_record(session: Session, principal: Principal, record_type: str, record_id: int) -> Lead | Contact | Account:
    """The record of the principal's organisation, or NotFound (another organisation's too)."""
    model = MODELS.get(record_type)
    if model is None:
        raise InvalidInput(f"a record is one of {', '.join(RECORD_TYPES)}")
    row: Lead | Contact | Account | None = session.get(model, record_id)  # type: ignore[assignment]
    if row is None or row.organisation_id != principal.organisation_id:
        raise NotFound(f"no {record_type} {record_id}")
    return row


def add_entry(
    session: Session,
    record: Lead | Contact | Account | RecordRef,
    kind: str = "automatic_mail",
    *,
    at: datetime | None = None,
    summary: str = "",
    payload: dict[str, Any] | None = None,
    source_key: str | None = None,
    mail_id: int | None = None,
    user_id: int | None = None,
) -> tuple[TimelineEntry, bool]:
    """Add one entry to the record's timeline; returns (entry, created). With a
    `source_key` the same event added twice gives the first entry back (created False)."""
    if kind not in KINDS:
        raise InvalidInput(f"a timeline entry is one of {', '.join(KINDS)}")
    ref = ref_of(record)
    if source_key is not None:
        existing = _by_source(session, ref, source_key)
        if existing is not None:
            return existing, False
    entry = TimelineEntry(
        organisation_id=ref.organisation_id, record_type=ref.type, record_id=ref.id, kind=kind, at=at or utcnow(),
        summary=summary[:500], payload=payload or {}, source_key=source_key, mail_id=mail_id, user_id=user_id,
    )
    try:
        with session.begin_nested():
            session.add(entry)
            session.flush()
    except IntegrityError:
        existing = _by_source(session, ref, source_key) if source_key is not None else None
        if existing is None:
            raise
        return existing, False  # a concurrent writer added it first
    return entry, True


def _by_source(session: Session, ref: RecordRef, source_key: str) -> TimelineEntry | None:
    return session.scalar(select(TimelineEntry).where(TimelineEntry.record_type == ref.type, TimelineEntry.record_id == ref.id, TimelineEntry.source_key == source_key))


def encode_cursor(entry: TimelineEntry) -> str:
    at = entry.at if entry.at.tzinfo else entry.at.replace(tzinfo=UTC)
    return f"{int(at.timestamp() * 1_000_000)}-{entry.id}"


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        micros, _, entry_id = cursor.partition("-")
        return datetime.fromtimestamp(int(micros) / 1_000_000, UTC), int(entry_id)
    except (ValueError, OverflowError, OSError):
        raise InvalidInput("not a timeline cursor", code="bad_cursor") from None


def page(session: Session, principal: Principal, record_type: str, record_id: int, *, limit: int = 20, before: str | None = None) -> tuple[list[TimelineEntry], str | None]:
    """The record's entries newest first, `limit` of them below the cursor `before`, and the
    cursor of the next page (None at the end). Keyset, not OFFSET: page 500 of a 10,000-entry
    timeline costs what page 1 does (the index on (record, at, id) is walked from the cursor)."""
    get_record(session, principal, record_type, record_id)
    limit = max(1, min(limit, MAX_PAGE))
    query = select(TimelineEntry).where(
        TimelineEntry.organisation_id == principal.organisation_id, TimelineEntry.record_type == record_type, TimelineEntry.record_id == record_id
    )
    if before:
        at, entry_id = decode_cursor(before)
        query = query.where(or_(TimelineEntry.at < at, and_(TimelineEntry.at == at, TimelineEntry.id < entry_id)))
    rows = list(session.scalars(query.order_by(TimelineEntry.at.desc(), TimelineEntry.id.desc()).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, encode_cursor(rows[-1]) if more and rows else None


def move_to_converted(session: Session, lead: Lead, contact: Contact, account: Account) -> int:
    """A converted lead's history becomes the contact's, and the account gets a copy of each
    entry (an account's timeline shows all its contacts'). Called inside the conversion's
    savepoint: a failed conversion moves nothing. Auto-log moves to the contact too."""
    rows = list(session.scalars(select(TimelineEntry).where(TimelineEntry.record_type == "lead", TimelineEntry.record_id == lead.id)))
    taken = set(session.scalars(select(TimelineEntry.source_key).where(TimelineEntry.record_type == "account", TimelineEntry.record_id == account.id, TimelineEntry.source_key.is_not(None))))
    for row in rows:
        if row.source_key is not None and row.source_key in taken:
            continue
        session.add(
            TimelineEntry(
                organisation_id=row.organisation_id, record_type="account", record_id=account.id, kind=row.kind, at=row.at, summary=row.summary,
                payload={**row.payload, "contact_id": contact.id}, source_key=row.source_key, mail_id=row.mail_id, user_id=row.user_id,
            )
        )
    session.execute(
        update(TimelineEntry).where(TimelineEntry.record_type == "lead", TimelineEntry.record_id == lead.id).values(record_type="contact", record_id=contact.id)
    )
    session.execute(
        update(AutoLogRecord).where(AutoLogRecord.record_type == "lead", AutoLogRecord.record_id == lead.id).values(record_type="contact", record_id=contact.id)
    )
    session.flush()
    return len(rows)


def entry_out(entry: TimelineEntry) -> dict[str, Any]:
    return {
        "id": entry.id, "kind": entry.kind, "at": entry.at, "summary": entry.summary, "payload": entry.payload,
        "mail_id": entry.mail_id, "user_id": entry.user_id,
    }
