"""Spam rescue use cases: "not spam" (move + whitelist the sender), the whitelist itself,
the rescue scan of later mail, and the audit trail of each action."""

from __future__ import annotations

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from crm.domain.drafts import MessageRef, ReadContext
from crm.domain.errors import InvalidInput, NotFound, PermissionDenied
from crm.domain.junk import JunkPort, MoveOutcome, RescueOutcome, ScanState
from crm.domain.principal import Principal
from crm.domain.rules import normalise_email
from crm.store.base import utcnow
from crm.store.whitelist import RescueState, SpamAudit, WhitelistEntry


def normalise_entry(value: str) -> str:
    """An address (normalised like every stored email) or "@domain" (IDN as punycode)."""
    value = value.strip()
    if value.startswith("@"):
        norm = normalise_email("x" + value)
        if not norm:
            raise InvalidInput(f"not a domain: {value!r}")
        return "@" + norm.split("@", 1)[1]
    norm = normalise_email(value)
    if not norm:
        raise InvalidInput(f"not an email address or @domain: {value!r}")
    return norm


def audit(session: Session, principal: Principal | None, organisation_id: int, action: str, address: str | None, message_id: str | None, **detail: object) -> None:
    session.add(
        SpamAudit(organisation_id=organisation_id, user_id=principal.user_id if principal else None, action=action, address=address, message_id=message_id, detail=detail)
    )


def add_entry(session: Session, principal: Principal, value: str, *, org_wide: bool = False, source_message_id: str | None = None) -> WhitelistEntry:
    """Idempotent: the same value in the same scope returns the existing entry."""
    if org_wide and not principal.is_admin:
        raise PermissionDenied("only an administrator may change the organisation's whitelist", code="admin_only")
    norm = normalise_entry(value)
    scope = principal.list_scope(org_wide)
    entry = session.scalar(select(WhitelistEntry).where(WhitelistEntry.organisation_id == principal.organisation_id, WhitelistEntry.scope == scope, WhitelistEntry.value == norm))
    if entry is None:
        entry = WhitelistEntry(
            organisation_id=principal.organisation_id, scope=scope, user_id=None if org_wide else principal.user_id,
            value=norm, require_auth=True, added_by_id=principal.user_id, source_message_id=source_message_id,
        )
        session.add(entry)
        audit(session, principal, principal.organisation_id, "whitelist_add", norm, source_message_id, scope=scope)
        session.flush()
    return entry


def list_entries(session: Session, principal: Principal) -> list[WhitelistEntry]:
    """The user's own entries and the organisation's."""
    return list(
        session.scalars(
            select(WhitelistEntry)
            .where(WhitelistEntry.organisation_id == principal.organisation_id, or_(WhitelistEntry.scope == "org", WhitelistEntry.scope == principal.list_scope(False)))
            .order_by(WhitelistEntry.id)
        )
    )


def remove_entry(session: Session, principal: Principal, entry_id: int) -> None:
    """Stops the override for future mail; mail already moved stays where it is."""
    entry = session.get(WhitelistEntry, entry_id)
    if entry is None or entry.organisation_id != principal.organisation_id or entry.scope not in ("org", principal.list_scope(False)):
        raise NotFound(f"no whitelist entry {entry_id}")
    if entry.scope == "org" and not principal.is_admin:
        raise PermissionDenied("only an administrator may change the organisation's whitelist", code="admin_only")
    audit(session, principal, principal.organisation_id, "whitelist_remove", entry.value, None, scope=entry.scope)
    session.delete(entry)
    session.flush()


def mark_not_spam(session: Session, principal: Principal, junk: JunkPort, ref: MessageRef) -> tuple[MoveOutcome, WhitelistEntry | None]:
    """Move the message to the inbox and whitelist its single From address (a message with
    zero or several From addresses is moved but never whitelisted)."""
    outcome = junk.not_spam(ref)
    entry = add_entry(session, principal, outcome.sender, source_message_id=outcome.message_id) if outcome.sender else None
    audit(session, principal, principal.organisation_id, "not_spam", outcome.sender, outcome.message_id, method=outcome.method, uid=outcome.uid)
    session.flush()
    return outcome, entry


def whitelisted_values(session: Session, principal: Principal) -> list[str]:
    return sorted({e.value for e in list_entries(session, principal)})


def scan_state(session: Session, mailbox_account_id: int) -> ScanState:
    row = session.scalar(select(RescueState).where(RescueState.mailbox_account_id == mailbox_account_id))
    if row is None:
        return ScanState()
    return ScanState(row.folder, row.uidvalidity, row.last_uid, row.highestmodseq)


def rescue(session: Session, principal: Principal, mailbox_account_id: int, junk: JunkPort, ctx: ReadContext) -> RescueOutcome:
    """Scan the account's Junk for whitelisted senders since the last scan; move what is
    authenticated; remember where the scan stopped; audit every move and every refusal."""
    outcome = junk.rescue(whitelisted_values(session, principal), scan_state(session, mailbox_account_id), ctx)
    row = session.scalar(select(RescueState).where(RescueState.mailbox_account_id == mailbox_account_id))
    if row is None:
        row = RescueState(mailbox_account_id=mailbox_account_id)
        session.add(row)
    row.folder, row.uidvalidity, row.last_uid, row.highestmodseq = outcome.state.folder, outcome.state.uidvalidity, outcome.state.last_uid, outcome.state.highestmodseq
    row.scanned_at = utcnow()
    for moved in outcome.moved:
        audit(session, None, principal.organisation_id, "rescue_move", moved.sender, moved.message_id, uid=moved.uid, method=moved.method)
    for sender, reason in outcome.kept:
        audit(session, None, principal.organisation_id, "rescue_kept", sender, None, reason=reason)
    session.flush()
    return outcome
