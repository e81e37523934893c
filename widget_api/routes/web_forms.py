"""Web forms: the admin API (/api/v1/forms) and the public form (/f/{key}): its embeddable
page, with a signed token and a honeypot field, and the submission that creates or updates
the lead and queues the auto-reply.

The public endpoints take no token. They are bounded per client address and per form
(widget_api.rate_limits), by body size, by the token's minimum fill time and age, and a
filled honeypot gets the same "thank you" as a person while nothing is stored. The
"thank you" is one page whatever happened to the lead: the answer never says whether the
address was known.
"""

from __future__ import annotations

import html
import time
from datetime import datetime
from typing import Annotated, Literal
from urllib.parse import parse_qsl

from fastapi import Path, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from crm.domain.errors import InvalidInput
from crm.domain.filters import FieldName
from crm.services import web_forms
from crm.store.automation import WebForm
from widget_api.deps import AdminUser, CurrentUser, RuntimeDep, SessionDep
from widget_api.errors import responses
from widget_api.i18n import pick_language, translate
from widget_api.routing import PrefixRouter
from widget_api.runtime import Runtime
from widget_api.schemas import Id

router = PrefixRouter(tags=["web forms"])
API = "/api/v1/forms"
MAX_BODY = 16 * 1024  # a form of 30 short fields fits many times over
MAX_PARAMS = 60
HONEYPOT = "hp_website"  # no lead field is called that
TOKEN = "_token"
FormKey = Annotated[str, Path(min_length=8, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]


class FormFieldIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    field: FieldName
    label_ja: str = Field(min_length=1, max_length=200)
    label_en: str = Field(min_length=1, max_length=200)
    required: bool = False


class FormUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, min_length=1, max_length=200)
    fields: list[FormFieldIn] | None = Field(default=None, min_length=1, max_length=web_forms.MAX_FIELDS)
    language: Literal["ja", "en"] | None = None
    template_id: Id | None = Field(default=None, description="the auto-reply's template; none: no auto-reply")
    on_duplicate: Literal["inherit", "fill", "replace", "keep"] | None = Field(
        default=None, description="an existing lead with the address: the organisation's setting (inherit, /api/v1/settings/form-duplicates), fill its empty fields, replace its values, or keep it"
    )


class FormIn(FormUpdate):
    name: str = Field(min_length=1, max_length=200)
    fields: list[FormFieldIn] = Field(min_length=1, max_length=web_forms.MAX_FIELDS)
    language: Literal["ja", "en"] = "ja"
    on_duplicate: Literal["inherit", "fill", "replace", "keep"] = "inherit"


class FormRead(BaseModel):
    id: int
    name: str
    key: str
    path: str = Field(description="the public page and submission URL, on this server")
    fields: list[FormFieldIn]
    language: str
    template_id: int | None
    on_duplicate: str
    applied_on_duplicate: str = Field(description="what a submission does to an existing lead now: the form's own policy, or the organisation's it inherits")
    created_at: datetime


def _read(form: WebForm, session: Session) -> FormRead:
    return FormRead(
        id=form.id, name=form.name, key=form.key, path=f"/f/{form.key}", fields=[FormFieldIn(**f) for f in form.fields], language=form.language,
        template_id=form.template_id, on_duplicate=form.on_duplicate, applied_on_duplicate=web_forms.effective_policy(session, form), created_at=form.created_at,
    )


@router.post(API, status_code=status.HTTP_201_CREATED, responses=responses(400, 403, 404))
def create(body: FormIn, session: SessionDep, principal: AdminUser, runtime: RuntimeDep) -> FormRead:
    return _read(web_forms.create_form(session, principal, runtime.secrets, body.model_dump()), session)


@router.get(API, responses=responses())
def list_forms(session: SessionDep, principal: CurrentUser) -> list[FormRead]:
    return [_read(f, session) for f in web_forms.list_forms(session, principal)]


@router.get(API + "/{form_id}", responses=responses(404))
def read(form_id: Id, session: SessionDep, principal: CurrentUser) -> FormRead:
    return _read(web_forms.get_form(session, principal, form_id), session)


@router.patch(API + "/{form_id}", responses=responses(400, 403, 404))
def update(form_id: Id, body: FormUpdate, session: SessionDep, principal: AdminUser) -> FormRead:
    values = body.model_dump(exclude_unset=True)
    for required in ("name", "fields", "language", "on_duplicate"):
        if values.get(required, "") is None:
            values.pop(required)
    return _read(web_forms.update_form(session, principal, form_id, values), session)


@router.delete(API + "/{form_id}", status_code=status.HTTP_204_NO_CONTENT, responses=responses(403, 404))
def delete(form_id: Id, session: SessionDep, principal: AdminUser) -> None:
    web_forms.delete_form(session, principal, form_id)


# ---- the public form ---------------------------------------------------------------------


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _page(language: str, title: str, body: str, status_code: int = 200) -> HTMLResponse:
    page = (
        f'<!doctype html><html lang="{language}"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title></head><body>{body}</body></html>"
    )
    # Embeddable (any site may frame it), but it runs no script and posts only back here.
    headers = {
        "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; base-uri 'none'",
        "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "Cache-Control": "no-store",
    }
    return HTMLResponse(page, status_code=status_code, headers=headers)


def _language(request: Request, form: WebForm) -> str:
    return pick_language(request.query_params.get("lang") or form.language)


@router.get("/f/{key}", include_in_schema=False)
def form_page(key: FormKey, request: Request, session: SessionDep, runtime: RuntimeDep) -> HTMLResponse:
    runtime.rate_limits.take(("ip", _client(request)), "form_page")
    form = web_forms.public_form(session, key)
    lang = _language(request, form)
    token = web_forms.issue_token(form, runtime.secrets, time.time())
    rows = []
    for i, f in enumerate(web_forms.form_fields(form)):
        kind = "email" if f.field == "email" else "tel" if f.field in ("phone", "mobile") else "url" if f.field == "website" else "text"
        control = (
            f'<textarea id="f{i}" name="{html.escape(f.field)}" maxlength="2000"{" required" if f.required else ""}></textarea>'
            if f.field == "description"
            else f'<input id="f{i}" name="{html.escape(f.field)}" type="{kind}" maxlength="320"{" required" if f.required else ""}>'
        )
        rows.append(f'<p><label for="f{i}">{html.escape(f.label(lang))}{" *" if f.required else ""}</label><br>{control}</p>')
    # The honeypot: out of sight and out of the tab order for people; bots fill every field.
    trap = (
        f'<p style="position:absolute;left:-10000px" aria-hidden="true"><label for="hp">{html.escape(translate("form_honeypot", lang))}</label>'
        f'<input id="hp" name="{HONEYPOT}" type="text" tabindex="-1" autocomplete="off"></p>'
    )
    action = html.escape(f"/f/{form.key}?lang={lang}")
    body = (
        f'<form method="post" action="{action}" accept-charset="utf-8"><input type="hidden" name="{TOKEN}" value="{html.escape(token)}">'
        + "".join(rows) + trap + f'<p><button type="submit">{html.escape(translate("form_submit", lang))}</button></p></form>'
    )
    return _page(lang, form.name, body)


async def _form_data(request: Request) -> dict[str, str]:
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/x-www-form-urlencoded":
        raise InvalidInput("a form is sent as application/x-www-form-urlencoded", code="unsupported_media_type")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY:
        raise InvalidInput("the form is too large", code="payload_too_large")
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > MAX_BODY:
            raise InvalidInput("the form is too large", code="payload_too_large")
    try:
        pairs = parse_qsl(data.decode("utf-8"), keep_blank_values=True, max_num_fields=MAX_PARAMS)
    except (UnicodeDecodeError, ValueError):
        raise InvalidInput("the form's body cannot be read", code="bad_form") from None
    out: dict[str, str] = {}
    for name, value in pairs:
        out.setdefault(name[:100], value[:5000])
    return out


@router.post("/f/{key}", include_in_schema=False)
async def submit(key: FormKey, request: Request, session: SessionDep, runtime: RuntimeDep) -> HTMLResponse:
    runtime.rate_limits.take(("ip", _client(request)), "form_submit_ip")
    runtime.rate_limits.take(("form", key), "form_submit")
    data = await _form_data(request)
    return await run_in_threadpool(_submit, session, runtime, key, data, request.query_params.get("lang"))


def _submit(session: SessionDep, runtime: Runtime, key: str, data: dict[str, str], lang: str | None) -> HTMLResponse:
    form = web_forms.public_form(session, key)
    language = pick_language(lang or form.language)
    if not data.get(HONEYPOT):  # filled: a bot, told "thank you" like anyone, and nothing is stored
        web_forms.submit(session, form, runtime.secrets, data, data.get(TOKEN))
    return _page(language, form.name, f"<p>{html.escape(translate('form_thanks', language))}</p>")
