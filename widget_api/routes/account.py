"""Signing in on the backend, pairing the widget (authorization code + PKCE, see
crm/services/auth.py), and the user's tokens: on a page (/account) and in the API."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated
from urllib.parse import urlencode

from fastapi import Form, Query, Request, status
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse
from pydantic import BaseModel, ConfigDict, Field

from crm.domain.errors import DomainError, InvalidInput, PermissionDenied
from crm.services import auth, organisations
from widget_api import pages
from widget_api.deps import CurrentUser, ReadSessionDep, RuntimeDep, SessionDep
from widget_api.errors import responses
from widget_api.pages import SignedInDep, escape, hidden, t
from widget_api.routing import PrefixRouter
from widget_api.schemas import Id

router = PrefixRouter(include_in_schema=True, tags=["account"])
STYLESHEET = Path(__file__).resolve().parents[1] / "static" / "pages" / "pages.css"


class TokenIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    grant_type: str = Field(default="authorization_code", max_length=40)
    code: str = Field(min_length=1, max_length=200)
    code_verifier: str = Field(min_length=1, max_length=200)
    redirect_uri: str = Field(min_length=1, max_length=1000)


class TokenOut(BaseModel):
    access_token: str
    token_type: str = "Bearer"
    scope: str


class TokenRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    user_id: int
    name: str
    scope: str
    created_at: datetime
    revoked_at: datetime | None


@router.get("/pages/pages.css", include_in_schema=False)
def stylesheet() -> FileResponse:
    return FileResponse(STYLESHEET, media_type="text/css", headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"})


# -------------------------------------------------------------------------- sign-in


def _sign_in_page(request: Request, next_path: str, error: str = "", status_code: int = 200) -> HTMLResponse:
    token = pages.form_token(request)
    body = (
        (f'<p class="error" role="alert">{escape(error)}</p>' if error else "")
        + '<form method="post" action="/auth/sign-in">'
        + f'<label for="email">{t(request, "page_email")}</label><input id="email" name="email" type="email" autocomplete="username" required>'
        + f'<label for="password">{t(request, "page_password")}</label><input id="password" name="password" type="password" autocomplete="current-password" required>'
        + hidden("form_token", token) + hidden("next", next_path)
        + f'<button class="primary" type="submit">{t(request, "page_sign_in")}</button></form>'
    )
    return pages.render(request, "page_sign_in", body, status=status_code, cookies={pages.FORM_COOKIE: token})


@router.get("/auth/sign-in", include_in_schema=False)
def sign_in_form(request: Request, next: Annotated[str | None, Query(max_length=2000)] = None) -> HTMLResponse:
    return _sign_in_page(request, pages.local_path(next))


@router.post("/auth/sign-in", include_in_schema=False, response_model=None)
def sign_in(
    request: Request,
    session: SessionDep,
    email: Annotated[str, Form(max_length=320)],
    password: Annotated[str, Form(max_length=1024)],
    form_token: Annotated[str, Form(max_length=100)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/account",
) -> HTMLResponse | RedirectResponse:
    next_path = pages.local_path(next)
    cookie = request.cookies.get(pages.FORM_COOKIE)
    if not cookie or not form_token or cookie != form_token:
        return _sign_in_page(request, next_path, t(request, "csrf_failed"), status.HTTP_400_BAD_REQUEST)
    try:
        user = auth.check_password(session, email, password)
    except PermissionDenied as exc:
        return _sign_in_page(request, next_path, t(request, exc.code), status.HTTP_400_BAD_REQUEST)
    response = RedirectResponse(next_path, status_code=303)
    pages.set_cookie(request, response, pages.SESSION_COOKIE, auth.start_session(session, user), max_age=int(auth.SESSION_LIFETIME.total_seconds()))
    response.delete_cookie(pages.FORM_COOKIE, path="/")
    return response


@router.post("/auth/sign-out", include_in_schema=False)
def sign_out(request: Request, session: SessionDep, who: SignedInDep, csrf: Annotated[str, Form(max_length=100)] = "") -> RedirectResponse:
    pages.require_csrf(who, csrf)
    auth.end_session(session, request.cookies.get(pages.SESSION_COOKIE))
    response = RedirectResponse("/auth/sign-in", status_code=303)
    response.delete_cookie(pages.SESSION_COOKIE, path="/")
    return response


# -------------------------------------------------------------------------- pairing


def _pairing_error(request: Request, exc: DomainError) -> HTMLResponse:
    # Never redirect with an unchecked redirect_uri: the error stays on this page.
    return pages.render(request, "page_pair_title", f'<p class="error" role="alert">{t(request, exc.code)}</p>', status=400)


@router.get("/auth/widget", include_in_schema=False)
def pairing_consent(
    request: Request,
    runtime: RuntimeDep,
    who: SignedInDep,
    redirect_uri: Annotated[str, Query(max_length=1000)],
    code_challenge: Annotated[str, Query(max_length=200)],
    code_challenge_method: Annotated[str, Query(max_length=10)] = "S256",
    state: Annotated[str, Query(max_length=200)] = "",
    client_name: Annotated[str, Query(max_length=100)] = "Thunderbird",
) -> HTMLResponse:
    """Asks the signed-in user whether this widget may act for them."""
    try:
        auth.check_redirect_uri(redirect_uri, runtime.settings.redirect_uris)
        if code_challenge_method != "S256" or not auth.CHALLENGE.fullmatch(code_challenge):
            raise InvalidInput("bad code challenge", code="bad_challenge")
    except DomainError as exc:
        return _pairing_error(request, exc)
    fields = "".join(hidden(k, v) for k, v in (("redirect_uri", redirect_uri), ("code_challenge", code_challenge), ("code_challenge_method", code_challenge_method), ("state", state), ("client_name", client_name), ("csrf", who.csrf_token)))
    body = (
        f"<p>{t(request, 'page_pair_question', client=client_name, email=who.principal.email)}</p>"
        f'<p class="muted">{t(request, "page_pair_scope")}</p>'
        f'<form method="post" action="/auth/widget">{fields}'
        f'<button class="primary" type="submit" name="decision" value="allow" id="allow">{t(request, "page_allow")}</button> '
        f'<button type="submit" name="decision" value="deny" id="deny">{t(request, "page_deny")}</button></form>'
    )
    return pages.render(request, "page_pair_title", body, form_targets=runtime.settings.redirect_uris)


@router.post("/auth/widget", include_in_schema=False, response_model=None)
def pairing_decision(
    request: Request,
    session: SessionDep,
    runtime: RuntimeDep,
    who: SignedInDep,
    redirect_uri: Annotated[str, Form(max_length=1000)],
    code_challenge: Annotated[str, Form(max_length=200)],
    decision: Annotated[str, Form(max_length=10)],
    csrf: Annotated[str, Form(max_length=100)] = "",
    code_challenge_method: Annotated[str, Form(max_length=10)] = "S256",
    state: Annotated[str, Form(max_length=200)] = "",
    client_name: Annotated[str, Form(max_length=100)] = "Thunderbird",
) -> HTMLResponse | RedirectResponse:
    try:
        pages.require_csrf(who, csrf)
        auth.check_redirect_uri(redirect_uri, runtime.settings.redirect_uris)
        if decision != "allow":
            params = {"error": "access_denied", "state": state}
        else:
            code = auth.issue_code(session, who.principal, code_challenge=code_challenge, method=code_challenge_method, redirect_uri=redirect_uri, client_name=client_name)
            params = {"code": code, "state": state}
    except DomainError as exc:
        return _pairing_error(request, exc)
    return RedirectResponse(f"{redirect_uri}{'&' if '?' in redirect_uri else '?'}{urlencode(params)}", status_code=303)


# No token yet: the code is the credential.
@router.post("/auth/token", tags=["account"], responses=responses(400, 422, 503, authenticated=False))
def exchange(body: TokenIn, session: SessionDep) -> TokenOut:
    """The widget's side of pairing: a code and its PKCE verifier for a "widget" token."""
    if body.grant_type != "authorization_code":
        raise InvalidInput("grant_type must be authorization_code", code="invalid_grant")
    result = auth.exchange_code(session, code=body.code, code_verifier=body.code_verifier, redirect_uri=body.redirect_uri)
    session.commit()  # a refusal is written too: the code is spent, a replayed code's token revoked
    if result is None:
        raise InvalidInput("the code is invalid, expired, already used or not yours", code="invalid_grant")
    return TokenOut(access_token=result[0], scope=result[1].scope)


# -------------------------------------------------------------------------- tokens


@router.get("/account", include_in_schema=False)
def account(request: Request, session: SessionDep, who: SignedInDep) -> HTMLResponse:
    rows = organisations.list_tokens(session, who.principal)
    table = "".join(
        f"<tr><td>{escape(r.name)}</td><td>{escape(r.scope)}</td><td>{r.created_at:%Y-%m-%d %H:%M}</td><td>"
        + (t(request, "page_revoked") if r.revoked_at else f'<form method="post" action="/account/tokens/{r.id}/revoke">{hidden("csrf", who.csrf_token)}<button type="submit" id="revoke-{r.id}">{t(request, "page_revoke")}</button></form>')
        + "</td></tr>"
        for r in rows
    )
    body = (
        f"<p>{escape(who.principal.email)}</p><h2>{t(request, 'page_tokens')}</h2>"
        f"<table><thead><tr><th>{t(request, 'page_token_name')}</th><th>{t(request, 'page_scope')}</th><th>{t(request, 'page_created')}</th><th></th></tr></thead><tbody>{table}</tbody></table>"
        f'<form method="post" action="/auth/sign-out">{hidden("csrf", who.csrf_token)}<button type="submit">{t(request, "page_sign_out")}</button></form>'
    )
    return pages.render(request, "page_account", body)


@router.post("/account/tokens/{token_id}/revoke", include_in_schema=False)
def revoke_from_page(token_id: Id, session: SessionDep, who: SignedInDep, csrf: Annotated[str, Form(max_length=100)] = "") -> RedirectResponse:
    pages.require_csrf(who, csrf)
    organisations.revoke_token(session, who.principal, token_id)
    return RedirectResponse("/account", status_code=303)


@router.get("/api/v1/tokens", responses=responses(403))
def list_tokens(session: ReadSessionDep, principal: CurrentUser, organisation: bool = False) -> list[TokenRead]:
    """The caller's tokens; `organisation=true`: every token of the organisation (admin)."""
    return [TokenRead.model_validate(r) for r in organisations.list_tokens(session, principal, whole_organisation=organisation)]


@router.delete("/api/v1/tokens/{token_id}", status_code=status.HTTP_204_NO_CONTENT, responses=responses(403, 404))
def revoke(token_id: Id, session: SessionDep, principal: CurrentUser) -> None:
    organisations.revoke_token(session, principal, token_id)
