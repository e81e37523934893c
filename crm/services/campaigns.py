"""Campaigns and their members (見込み客とキャンペーンの関連付け).

Adding leads is set-based (INSERT … SELECT … ON CONFLICT DO NOTHING over the ids), reports each
lead as added / already a member / updated / not found, and is all-or-nothing per request:
re-sending the same request changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Integer, func, insert, literal, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from crm.domain.errors import Conflict, InvalidInput, NotFound
from crm.domain.principal import Principal
from crm.services import timeline
from crm.services.timeline import RecordRef
from crm.store.base import utcnow
from crm.store.campaigns import Campaign, CampaignMember, CampaignStatus, MemberStatusChange
from crm.store.db import among, dialect_insert, id_chunks, is_postgres
from crm.store.models import Lead
from crm.store.timeline import TimelineEntry

# The source CRM's own example statuses: sent (default), responded, not responded.
DEFAULT_STATUSES: tuple[tuple[str, bool, bool], ...] = (("送信済み", True, False), ("反応あり", False, True), ("未反応", False, False))


@dataclass(frozen=True)
class StatusSpec:
    name: str
    is_default: bool = False
    responded: bool = False


def create_campaign(session: Session, principal: Principal, name: str, statuses: Sequence[StatusSpec] = ()) -> Campaign:
    name = name.strip()
    if not name:
        raise InvalidInput("a campaign needs a name")
    specs = list(statuses) or [StatusSpec(n, d, r) for n, d, r in DEFAULT_STATUSES]
    if len({s.name.strip() for s in specs}) != len(specs) or any(not s.name.strip() for s in specs):
        raise InvalidInput("status names must be present and distinct")
    if sum(1 for s in specs if s.is_default) != 1:
        raise InvalidInput("exactly one status must be the default")
    if session.scalar(select(Campaign.id).where(Campaign.organisation_id == principal.organisation_id, Campaign.name == name)):
        raise Conflict(f"a campaign {name!r} already exists", field="name")
    campaign = Campaign(organisation_id=principal.organisation_id, name=name, created_by_id=principal.user_id)
    session.add(campaign)
    session.flush()
    session.add_all(CampaignStatus(campaign_id=campaign.id, name=s.name.strip(), is_default=s.is_default, responded=s.responded, position=i) for i, s in enumerate(specs))
    session.flush()
    return campaign


def get_campaign(session: Session, principal: Principal, campaign_id: int) -> Campaign:
    campaign = session.get(Campaign, campaign_id)
    if campaign is None or campaign.organisation_id != principal.organisation_id:
        raise NotFound(f"no campaign {campaign_id}")
    return campaign


def listing(session: Session, principal: Principal) -> list[dict[str, object]]:
    """Every campaign of the organisation, newest first, with its member count."""
    counts = (
        select(CampaignMember.campaign_id, func.count().label("members"))
        .join(Campaign, Campaign.id == CampaignMember.campaign_id)
        .where(Campaign.organisation_id == principal.organisation_id)
        .group_by(CampaignMember.campaign_id)
        .subquery()
    )
    rows = session.execute(
        select(Campaign.id, Campaign.name, Campaign.created_at, func.coalesce(counts.c.members, 0))
        .outerjoin(counts, counts.c.campaign_id == Campaign.id)
        .where(Campaign.organisation_id == principal.organisation_id)
        .order_by(Campaign.created_at.desc(), Campaign.id.desc())
    )
    return [{"id": i, "name": name, "created_at": created.isoformat(), "members_total": n} for i, name, created, n in rows]


def statuses(session: Session, campaign_id: int) -> list[CampaignStatus]:
    return list(session.scalars(select(CampaignStatus).where(CampaignStatus.campaign_id == campaign_id).order_by(CampaignStatus.position)))


def _status(session: Session, campaign_id: int, name: str | None) -> CampaignStatus:
    for status in statuses(session, campaign_id):
        if (name is None and status.is_default) or status.name == name:
            return status
    raise InvalidInput(f"the campaign has no status {name!r}", code="unknown_status")


def add_leads(
    session: Session, principal: Principal, campaign_id: int, lead_ids: Sequence[int], *, status: str | None = None, update_status: bool = False
) -> dict[int, str]:
    """Add leads with one status. Returns lead id → "added" | "already_member" | "updated"
    (an existing member whose status changed, only with update_status) | "not_found"."""
    campaign = get_campaign(session, principal, campaign_id)
    target = _status(session, campaign.id, status)
    wanted = list(dict.fromkeys(map(int, lead_ids)))
    report: dict[int, str] = {}
    now = literal(utcnow(), CampaignMember.added_at.type)
    members_table = CampaignMember.__table__
    for chunk in id_chunks(session, wanted):
        # One statement adds every lead of the organisation among the ids that is not a member
        # yet and says which it added; ON CONFLICT makes a concurrent identical request harmless.
        # On the table, not the mapped class: the ORM's handling of 100,000 returned rows cost
        # more than the database's work of returning them.
        statement = dialect_insert(session, members_table).from_select(
            ["campaign_id", "lead_id", "status_id", "added_by_id", "added_at"],
            select(literal(campaign.id), Lead.id, literal(target.id), literal(principal.user_id), now).where(Lead.organisation_id == principal.organisation_id, among(session, Lead.id, chunk)),
        )
        added = _insert_members(session, campaign.id, statement.on_conflict_do_nothing().returning(members_table.c.lead_id))
        _joined(session, principal, campaign, target, sorted(added))
        rest = [lead_id for lead_id in chunk if lead_id not in added]
        # What is left is either a member already or no lead of this organisation.
        members = dict(session.execute(select(CampaignMember.lead_id, CampaignMember.status_id).where(CampaignMember.campaign_id == campaign.id, among(session, CampaignMember.lead_id, rest))).all()) if rest else {}
        for lead_id in chunk:
            if lead_id in added:
                report[lead_id] = "added"
            elif lead_id not in members:
                report[lead_id] = "not_found"
            elif update_status and members[lead_id] != target.id:
                report[lead_id] = "updated"
            else:
                report[lead_id] = "already_member"
        changed = [lid for lid in chunk if report[lid] == "updated"]
        if changed:
            for member in session.scalars(select(CampaignMember).where(CampaignMember.campaign_id == campaign.id, CampaignMember.lead_id.in_(changed))):
                _set_status(session, principal, member, target)
    session.flush()
    return report


def _insert_members(session: Session, campaign_id: int, statement: Any) -> set[int]:
    """Runs the bulk add's INSERT … SELECT; once more if a lead it chose was deleted before
    the statement's reference check locked it: the second run's fresh snapshot no longer sees
    that lead, which the report then calls not found. Refused again, it is the campaign (or
    its status) that went away meanwhile. SQLite has one writer at a time, so nothing goes
    away meanwhile, and a savepoint there would copy every index page the insert touches."""
    if not is_postgres(session):
        return set(session.scalars(statement).all())
    for _attempt in range(2):
        try:
            with session.begin_nested():
                return set(session.scalars(statement).all())  # fetched at once, not row by row
        except IntegrityError:
            continue
    raise NotFound(f"no campaign {campaign_id}")


def _set_status(session: Session, principal: Principal, member: CampaignMember, status: CampaignStatus) -> None:
    if member.status_id == status.id:
        return
    session.add(MemberStatusChange(campaign_id=member.campaign_id, lead_id=member.lead_id, from_status_id=member.status_id, to_status_id=status.id, user_id=principal.user_id))
    member.status_id = status.id
    campaign = session.get(Campaign, member.campaign_id)
    name = campaign.name if campaign else ""
    timeline.add_entry(
        session, RecordRef("lead", member.lead_id, principal.organisation_id), "campaign", summary=f"{name}: {status.name}",
        payload={"campaign_id": member.campaign_id, "campaign": name, "status": status.name, "change": "status"}, user_id=principal.user_id,
    )


def _joined(session: Session, principal: Principal, campaign: Campaign, status: CampaignStatus, lead_ids: list[int]) -> None:
    """A timeline entry for each lead that joined: one INSERT … SELECT over the new members
    (no row travels through Python, as for the members themselves)."""
    if not lead_ids:
        return
    now = literal(utcnow(), TimelineEntry.at.type)
    payload = literal({"campaign_id": campaign.id, "campaign": campaign.name, "status": status.name, "change": "added"}, TimelineEntry.payload.type)
    rows = select(
        literal(principal.organisation_id), literal("lead"), CampaignMember.lead_id, literal("campaign"), now, literal(f"{campaign.name}: {status.name}"[:500]),
        payload, literal(principal.user_id, Integer), now,
    ).where(CampaignMember.campaign_id == campaign.id, among(session, CampaignMember.lead_id, lead_ids))
    columns = ["organisation_id", "record_type", "record_id", "kind", "at", "summary", "payload", "user_id", "created_at"]
    session.execute(insert(TimelineEntry).from_select(columns, rows))


def set_member_status(session: Session, principal: Principal, campaign_id: int, lead_id: int, status: str) -> CampaignMember:
    campaign = get_campaign(session, principal, campaign_id)
    member = session.scalar(select(CampaignMember).where(CampaignMember.campaign_id == campaign.id, CampaignMember.lead_id == lead_id))
    if member is None:
        raise NotFound(f"lead {lead_id} is not a member of this campaign")
    _set_status(session, principal, member, _status(session, campaign.id, status))
    session.flush()
    return member


def history(session: Session, principal: Principal, campaign_id: int, lead_id: int) -> list[dict[str, object]]:
    """A member's status changes, oldest first, with the status names. Nothing of the
    campaign is read before it is known to be the organisation's."""
    campaign = get_campaign(session, principal, campaign_id)
    if session.get(CampaignMember, (campaign.id, lead_id)) is None:
        raise NotFound(f"lead {lead_id} is not a member of this campaign")
    names = {s.id: s.name for s in statuses(session, campaign.id)}
    changes = session.scalars(select(MemberStatusChange).where(MemberStatusChange.campaign_id == campaign.id, MemberStatusChange.lead_id == lead_id).order_by(MemberStatusChange.id))
    return [{"from": names.get(h.from_status_id or 0), "to": names.get(h.to_status_id), "user_id": h.user_id, "at": h.changed_at.isoformat()} for h in changes]


def summary(session: Session, principal: Principal, campaign_id: int, *, limit: int = 100, offset: int = 0) -> dict[str, object]:
    """The campaign, its statuses with member counts, and a page of members."""
    campaign = get_campaign(session, principal, campaign_id)
    counts = dict(session.execute(select(CampaignMember.status_id, func.count()).where(CampaignMember.campaign_id == campaign.id).group_by(CampaignMember.status_id)).all())
    status_rows = statuses(session, campaign.id)
    names = {s.id: s.name for s in status_rows}
    members = session.execute(
        select(CampaignMember.lead_id, CampaignMember.status_id, Lead.last_name, Lead.first_name, Lead.company, Lead.email)
        .join(Lead, Lead.id == CampaignMember.lead_id)
        .where(CampaignMember.campaign_id == campaign.id)
        .order_by(CampaignMember.lead_id)  # the primary key's order: a page of a 100,000-member campaign needs no sort
        .limit(limit)
        .offset(offset)
    ).all()
    return {
        "id": campaign.id,
        "name": campaign.name,
        "statuses": [{"name": s.name, "is_default": s.is_default, "responded": s.responded, "members": counts.get(s.id, 0)} for s in status_rows],
        "members_total": sum(counts.values()),
        "responded_total": sum(counts.get(s.id, 0) for s in status_rows if s.responded),
        "members": [
            {"lead_id": m.lead_id, "status": names[m.status_id], "last_name": m.last_name, "first_name": m.first_name, "company": m.company, "email": m.email}
            for m in members
        ],
    }


def of_lead(session: Session, principal: Principal, lead_id: int) -> list[tuple[str, str, datetime]]:
    """The lead's campaigns: (campaign name, member status, added at), oldest first."""
    rows = session.execute(
        select(Campaign.name, CampaignStatus.name, CampaignMember.added_at)
        .join(CampaignMember, CampaignMember.campaign_id == Campaign.id)
        .join(CampaignStatus, CampaignStatus.id == CampaignMember.status_id)
        .where(Campaign.organisation_id == principal.organisation_id, CampaignMember.lead_id == lead_id)
        .order_by(CampaignMember.added_at)
    ).all()
    return [(name, status, added) for name, status, added in rows]
