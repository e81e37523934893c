"""Automatic mail: templates, workflow rules that mail a template when a lead is created,
and web forms whose submissions create leads (with an auto-reply). The mails themselves go
to the outbox (crm.store.outbox, another branch): no foreign key points there."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from crm.store.base import Base, UTCDateTime, utcnow


class MailTemplate(Base):
    """Subject and bodies with merge fields (`{{lead.last_name}}`, `{{lead.custom.<key>}}`);
    `charset` is how the mail is encoded: "utf-8" or "iso-2022-jp"."""

    __tablename__ = "mail_templates"
    __table_args__ = (UniqueConstraint("organisation_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    language: Mapped[str] = mapped_column(String(2), default="ja")
    subject: Mapped[str] = mapped_column(String(500))
    text_body: Mapped[str] = mapped_column(Text)
    html_body: Mapped[str | None] = mapped_column(Text, nullable=True)
    charset: Mapped[str] = mapped_column(String(16), default="utf-8")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class WorkflowRule(Base):
    """When a lead of one of `sources` is created and matches `conditions` (the view filter
    language, crm.domain.filters; None: every lead), mail it `template_id` after
    `delay_minutes`."""

    __tablename__ = "workflow_rules"
    __table_args__ = (UniqueConstraint("organisation_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    sources: Mapped[list[str]] = mapped_column(JSON, default=list)
    conditions: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    template_id: Mapped[int] = mapped_column(ForeignKey("mail_templates.id", ondelete="RESTRICT"), index=True)
    delay_minutes: Mapped[int] = mapped_column(Integer, default=0)
    paused: Mapped[bool] = mapped_column(Boolean, default=False)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class WebForm(Base):
    """A public form: `key` is its public slug (/f/{key}); `fields` a list of
    {"field": "<lead field>|custom:<key>", "label_ja", "label_en", "required"};
    `secret_encrypted` signs its form tokens (Fernet, like mailbox passwords);
    `on_duplicate`: what a submission does to an existing lead with the address, "inherit"
    (the organisation's `FormDuplicateSettings`) or one of its policies."""

    __tablename__ = "web_forms"

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    key: Mapped[str] = mapped_column(String(64), unique=True)
    fields: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    language: Mapped[str] = mapped_column(String(2), default="ja")
    template_id: Mapped[int | None] = mapped_column(ForeignKey("mail_templates.id", ondelete="SET NULL"), nullable=True, index=True)
    on_duplicate: Mapped[str] = mapped_column(String(8), default="inherit")
    secret_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class FormDuplicateSettings(Base):
    """Per organisation (migration dupes_0001): what a web form submission does to the
    existing lead with its address, "fill" (its empty fields only), "replace" (the submitted
    values win) or "keep" (untouched; the submission is still on its timeline). A missing
    row means "fill". The CSV import and the API's save keep their own rules."""

    __tablename__ = "form_duplicate_settings"

    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), primary_key=True)
    on_duplicate: Mapped[str] = mapped_column(String(8), default="fill")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
