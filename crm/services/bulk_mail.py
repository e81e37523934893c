"""Bulk ("mass") and scheduled mail: one template to a list of leads or a saved view's, now
or at a chosen time, through the outbox like every automatic mail (so under the daily limit:
what the limit leaves for today waits for tomorrow, never dropped).

The source FAQ's complaint, "500 a day, but duplicates meant only 300 real mails", is what
the plan prevents: one mail per normalised address, the other leads with it recorded as
skipped ("duplicate_address"), as are those without an address or suppressed. A send has a
batch key (the caller's, or a new one): sending again with the same key queues nothing new
(a retried request never mails anyone twice).
"""

from __future__ import annotations

import re
import secrets as token_source
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from crm.domain.errors import InvalidInput
from crm.domain.principal import Principal
from crm.services import rules, views
from crm.services.organisations import require_admin
from crm.services.templates import get_template
from crm.store.base import utcnow

MAX_RECIPIENTS = 10_000
MAX_AHEAD = timedelta(days=90)
BATCH_KEY = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass
class BulkReport:
    """`kind`: "bulk" (now) or "scheduled"; `counts`: outbox statuses of the mails
    ("queued", "skipped", "duplicate": already queued by this batch key) and the leads
    skipped by reason ("no_address", "duplicate_address")."""

    batch_key: str
    kind: str
    template_id: int
    recipients: int
    send_at: datetime | None
    counts: dict[str, int] = field(default_factory=dict)


def send(
    session: Session,
    principal: Principal,
    *,
    template_id: int,
    lead_ids: Sequence[int] | None = None,
    view_id: int | None = None,
    send_at: datetime | None = None,
    batch_key: str | None = None,
    now: datetime | None = None,
) -> BulkReport:
    """Queue `template_id` for the leads given (the organisation's only), or for a saved
    view's (at most MAX_RECIPIENTS either way), at `send_at` or now. Admins only."""
    require_admin(principal)
    at = now or utcnow()
    if (lead_ids is None) == (view_id is None):
        raise InvalidInput("name the leads or a view (one of the two)", field="lead_ids")
    if batch_key is not None and not BATCH_KEY.match(batch_key):
        raise InvalidInput("batch_key: 1 to 64 letters, digits, _ or -", field="batch_key")
    if send_at is not None:
        if send_at.tzinfo is None:
            raise InvalidInput("send_at needs a time zone (or Z)", field="send_at")
        if send_at > at + MAX_AHEAD:
            raise InvalidInput(f"send_at is at most {MAX_AHEAD.days} days ahead", field="send_at")
    template = get_template(session, principal, template_id)
    conditions = None
    if view_id is not None:
        conditions, _sort = views.stored_query(views.get_view(session, principal, view_id))
        leads, _total = views.query_leads(session, principal, conditions, limit=MAX_RECIPIENTS + 1)
        ids = [lead.id for lead in leads]
    else:
        ids = list(dict.fromkeys(lead_ids or ()))
    if len(ids) > MAX_RECIPIENTS:
        raise InvalidInput(f"at most {MAX_RECIPIENTS:,} leads in one send", code="too_many_recipients")
    key = batch_key or token_source.token_urlsafe(12)
    scheduled = send_at is not None and send_at > at
    planned = rules.plan_template(session, principal, template, conditions, ids, key=f"bulk:{key}", not_before=send_at if scheduled else None)
    kind = "scheduled" if scheduled else "bulk"
    counts = rules.queue_plan(session, principal, planned, kind=kind, source_id=template.id, now=at)
    return BulkReport(key, kind, template.id, len(planned.mails), send_at if scheduled else None, counts)
