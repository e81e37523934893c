"""The lead's own page on the backend, where the widget's "Open the lead" goes (unless the
admin names the CRM's page with MAILWIDGET_LEAD_URL): its fields, editable, its stage, the
messages it was captured from, its campaigns and the latest entries of its timeline (paged:
"older"). Signed in by the session cookie; every post carries the session's CSRF token."""

from __future__ import annotations

import re
from datetime import UTC
from typing import Annotated
from urllib.parse import quote
from zoneinfo import ZoneInfo

from fastapi import Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from crm.domain.drafts import LEAD_FIELDS
from crm.domain.errors import Conflict, InvalidInput, PermissionDenied
from crm.domain.leads import LEAD_STATUSES
from crm.services import campaigns, leads, timeline
from crm.store.timeline import TimelineEntry
from widget_api import pages
from widget_api.deps import SessionDep
from widget_api.i18n import translate
from widget_api.pages import SignedInDep, escape, hidden, t
from widget_api.routing import PrefixRouter
from widget_api.schemas import Id, LeadUpdate

router = PrefixRouter(include_in_schema=False)
# A name written in Chinese characters, kana or hangul puts the family name first (山田 太郎);
# one in Latin letters the given name (Taro Yamada), whatever the reader's language.
CJK = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uf900-\ufaff\uac00-\ud7af]")
HISTORY_PAGE = 10  # timeline entries per page of the lead page (the panel shows 5)


def family_first(first: str | None, last: str | None) -> bool:
    return bool(CJK.search(f"{first or ''}{last or ''}"))


def _label(request: Request, name: str) -> str:
    return t(request, f"field_{name}")


def _message(request: Request, exc: Conflict | InvalidInput | PermissionDenied) -> str:
    return translate(exc.code, pages.language(request), default=exc.detail, field=getattr(exc, "field", "") or "")


def _history(request: Request, session: SessionDep, who: pages.auth.SignedIn, lead_id: int, before: str | None) -> str:
    """The newest timeline entries, in the organisation's time zone, and a link to older ones.
    A converted lead's history moved to its contact (crm.services.timeline): shown from there."""
    ref = timeline.person_of_lead(session, who.principal.organisation_id, lead_id)
    entries, older = timeline.page(session, who.principal, ref.type, ref.id, limit=HISTORY_PAGE, before=before)
    zone = ZoneInfo(who.principal.time_zone)
    moved = f"<p class='muted'>{t(request, 'page_history_moved')}</p>" if ref.type == "contact" else ""
    if not entries:
        return moved + f"<p class='muted' id='history'>{t(request, 'page_none')}</p>"

    def row(e: TimelineEntry) -> str:
        at = (e.at if e.at.tzinfo else e.at.replace(tzinfo=UTC)).astimezone(zone)
        return f"<li class='entry entry-{e.kind}'><time datetime='{at.isoformat()}'>{at:%Y-%m-%d %H:%M}</time> {t(request, f'entry_{e.kind}')}" + (f": {escape(e.summary)}" if e.summary else "") + "</li>"

    more = f"<p><a id='older' href='/leads/{lead_id}?before={quote(older)}#history'>{t(request, 'page_older')}</a></p>" if older else ""
    return moved + f"<ol id='history' class='timeline'>{''.join(row(e) for e in entries)}</ol>" + more


def _page(request: Request, session: SessionDep, who: pages.auth.SignedIn, lead_id: int, *, values: dict[str, str | None] | None = None, error: str = "", saved: bool = False, status: int = 200, before: str | None = None) -> HTMLResponse:
    lead = leads.get_lead(session, who.principal, lead_id)
    try:
        history = _history(request, session, who, lead.id, before)
    except InvalidInput as exc:  # a hand-edited "older" link: the page, with the newest entries
        error, status, history = _message(request, exc), 400, _history(request, session, who, lead.id, None)
    shown = values if values is not None else {n: getattr(lead, n) for n in LEAD_FIELDS}
    order = ("last_name", "first_name") if family_first(shown.get("first_name"), shown.get("last_name")) else ("first_name", "last_name")
    names = [*order, *(n for n in LEAD_FIELDS if n not in order)]
    inputs = "".join(
        f'<label for="f-{n}">{_label(request, n)}</label>'
        + (f'<textarea id="f-{n}" name="{n}" rows="3">{escape(shown.get(n))}</textarea>' if n == "description" else f'<input id="f-{n}" name="{n}" value="{escape(shown.get(n))}">')
        for n in names
    )
    sources = "".join(f"<li>{escape(c.message_key.removeprefix('mid:'))} <span class='muted'>{t(request, 'page_captured_by', when=f'{c.created_at:%Y-%m-%d %H:%M}')}</span></li>" for c in leads.captures_of(session, who.principal, lead.id))
    members = "".join(f"<tr><td>{escape(name)}</td><td>{escape(status)}</td><td>{added:%Y-%m-%d}</td></tr>" for name, status, added in campaigns.of_lead(session, who.principal, lead.id))
    none = f"<p class='muted'>{t(request, 'page_none')}</p>"
    if lead.status in LEAD_STATUSES:
        options = "".join(f'<option value="{s}"{" selected" if s == lead.status else ""}>{t(request, f"lead_status_{s}")}</option>' for s in LEAD_STATUSES)
        stage = (
            f'<form method="post" action="/leads/{lead.id}/status">{hidden("csrf", who.csrf_token)}'
            f'<label for="status">{t(request, "page_status")}</label><select id="status" name="status">{options}</select>'
            f'<button type="submit" id="set-status">{t(request, "page_set_status")}</button></form>'
        )
    else:  # converted: the conversion set it, nothing here changes it
        stage = f"<p id='status'>{t(request, 'page_status')}: {t(request, f'lead_status_{lead.status}')}</p>"
    body = (
        (f'<p class="error" role="alert">{escape(error)}</p>' if error else "")
        + (f'<p class="ok" role="status">{t(request, "page_saved")}</p>' if saved else "")
        + f'<form method="post" action="/leads/{lead.id}">{hidden("csrf", who.csrf_token)}{inputs}'
        + f'<button class="primary" type="submit" id="save">{t(request, "page_save")}</button></form>'
        + stage
        + f"<h2>{t(request, 'page_source')}</h2>" + (f"<ul id='sources'>{sources}</ul>" if sources else none)
        + f"<h2>{t(request, 'page_campaigns')}</h2>" + (f"<table id='campaigns'><tbody>{members}</tbody></table>" if members else none)
        + f"<h2>{t(request, 'page_history')}</h2>" + history
    )
    return pages.render(request, "page_lead", body, status=status)


@router.get("/leads/{lead_id}")
def lead_page(lead_id: Id, request: Request, session: SessionDep, who: SignedInDep, saved: bool = False, before: Annotated[str | None, Query(max_length=64)] = None) -> HTMLResponse:
    return _page(request, session, who, lead_id, saved=saved, before=before)


class LeadForm(BaseModel):
    """The page's form as posted: text as typed, validated as a LeadUpdate below."""

    model_config = ConfigDict(extra="ignore")
    csrf: str = Field(default="", max_length=100)
    first_name: str = ""
    last_name: str = ""
    email: str = ""
    company: str = ""
    title: str = ""
    phone: str = ""
    mobile: str = ""
    website: str = ""
    street: str = ""
    city: str = ""
    state: str = ""
    zip_code: str = ""
    country: str = ""
    description: str = ""


@router.post("/leads/{lead_id}", response_model=None)
def save_lead(lead_id: Id, request: Request, session: SessionDep, who: SignedInDep, form: Annotated[LeadForm, Form()]) -> HTMLResponse | RedirectResponse:
    submitted: dict[str, str | None] = form.model_dump(include=set(LEAD_FIELDS))
    try:
        pages.require_csrf(who, form.csrf)
        values = LeadUpdate.model_validate({k: v or None for k, v in submitted.items()}).model_dump()
        with session.begin_nested():
            leads.update_lead(session, who.principal, lead_id, values)
    except ValidationError as exc:
        detail = "; ".join(f"{_label(request, str(e['loc'][0]))}: {e['msg']}" for e in exc.errors())
        return _page(request, session, who, lead_id, values=submitted, error=detail, status=400)
    except (Conflict, InvalidInput, PermissionDenied) as exc:
        return _page(request, session, who, lead_id, values=submitted, error=_message(request, exc), status=400)
    return RedirectResponse(f"/leads/{lead_id}?saved=1", status_code=303)


class StatusForm(BaseModel):
    model_config = ConfigDict(extra="ignore")
    csrf: str = Field(default="", max_length=100)
    status: str = Field(default="", max_length=32)


@router.post("/leads/{lead_id}/status", response_model=None)
def save_status(lead_id: Id, request: Request, session: SessionDep, who: SignedInDep, form: Annotated[StatusForm, Form()]) -> HTMLResponse | RedirectResponse:
    try:
        pages.require_csrf(who, form.csrf)
        with session.begin_nested():
            leads.set_status(session, who.principal, lead_id, form.status)
    except (Conflict, InvalidInput, PermissionDenied) as exc:
        return _page(request, session, who, lead_id, error=_message(request, exc), status=400)
    return RedirectResponse(f"/leads/{lead_id}?saved=1", status_code=303)
