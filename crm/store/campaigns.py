"""Campaigns with their own member statuses, the leads that are members, the history of each
member's status, what a converted lead became (account, contact, deal), and how conversion
finds the existing account of a lead's company."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, ForeignKeyConstraint, Index, Integer, Numeric, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from crm.store.base import Base, UTCDateTime, utcnow


class Campaign(Base):
    __tablename__ = "campaigns"
    __table_args__ = (UniqueConstraint("organisation_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class CampaignStatus(Base):
    """One of a campaign's member statuses (送信済み / 反応あり …): one is the default, and each
    says whether a member in it has responded."""

    __tablename__ = "campaign_statuses"
    # (campaign_id, id) is what a member's status refers to: a status of that very campaign.
    __table_args__ = (UniqueConstraint("campaign_id", "name"), UniqueConstraint("campaign_id", "id"))

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    responded: Mapped[bool] = mapped_column(Boolean, default=False)
    position: Mapped[int] = mapped_column(Integer, default=0)


# On PostgreSQL these two references of campaign_members are checked by statement-level
# triggers (migration crm_0004) rather than declared: a declared foreign key costs one
# trigger call per added member, which was most of a 100,000-lead bulk add. SQLite keeps
# them declared. The schema comparison (tests, autogenerate) knows.
TRIGGER_CHECKED_ON_POSTGRES = frozenset({"fk_campaign_members_lead_id_leads", "fk_campaign_members_campaign_id_campaign_statuses"})


class CampaignMember(Base):
    """A lead in a campaign, keyed by (campaign, lead).

    Shaped for bulk adds of 100,000 leads: the status is referenced together with the
    campaign, which is one check instead of two and also guarantees the status is one of
    this campaign's; the natural key makes a surrogate id and its index unnecessary."""

    __tablename__ = "campaign_members"
    __table_args__ = (
        # Deleting a campaign deletes its statuses and, through them, its members. The product
        # offers no deletion of a single status, so no member loses its status otherwise.
        ForeignKeyConstraint(["campaign_id", "status_id"], ["campaign_statuses.campaign_id", "campaign_statuses.id"], ondelete="CASCADE"),
    )

    campaign_id: Mapped[int] = mapped_column(primary_key=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"), primary_key=True, index=True)
    status_id: Mapped[int] = mapped_column(Integer)
    # Who added the member: audit data, kept as the user's id without a foreign key, so it
    # costs bulk adds no per-row check and outlives the user.
    added_by_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    added_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class MemberStatusChange(Base):
    __tablename__ = "campaign_member_history"
    __table_args__ = (
        ForeignKeyConstraint(["campaign_id", "lead_id"], ["campaign_members.campaign_id", "campaign_members.lead_id"], ondelete="CASCADE"),
        Index("ix_campaign_member_history_member", "campaign_id", "lead_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(Integer)
    lead_id: Mapped[int] = mapped_column(Integer)
    from_status_id: Mapped[int | None] = mapped_column(ForeignKey("campaign_statuses.id", ondelete="SET NULL"), nullable=True)
    to_status_id: Mapped[int] = mapped_column(ForeignKey("campaign_statuses.id", ondelete="CASCADE"))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Deal(Base):
    __tablename__ = "deals"

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), index=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id", ondelete="SET NULL"), nullable=True)
    name: Mapped[str] = mapped_column(String(255))
    amount: Mapped[float | None] = mapped_column(Numeric(14, 2), nullable=True)
    stage: Mapped[str] = mapped_column(String(32), default="qualification")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class LeadConversion(Base):
    """What a lead became. One row per lead: the unique constraint refuses converting twice
    even when two requests race."""

    __tablename__ = "lead_conversions"

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"))
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"), unique=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    deal_id: Mapped[int | None] = mapped_column(ForeignKey("deals.id", ondelete="SET NULL"), nullable=True)
    converted_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    converted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ConversionSettings(Base):
    """Per organisation: what makes an existing account "the same company" as a lead being
    converted. A missing row means the default: the normalised company name or the email
    domain. The company key is the value of one custom lead field (e.g. a corporate number),
    copied onto the accounts that conversion makes."""

    __tablename__ = "conversion_settings"

    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), primary_key=True)
    match_company_name: Mapped[bool] = mapped_column(Boolean, default=True)
    match_email_domain: Mapped[bool] = mapped_column(Boolean, default=True)
    company_key_field: Mapped[str | None] = mapped_column(String(64), nullable=True)
