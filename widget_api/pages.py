"""The backend's own server-rendered pages (sign-in, pairing consent, account, lead): the
HTML shell, its strict Content-Security-Policy, the signed-in user from the session cookie,
and the CSRF check every form post passes.

No page runs a script: forms post back and the server redirects (POST → 303 → GET). Every
value is escaped; the policy allows the pages' own stylesheet and nothing else, and no other
site may frame them.
"""

from __future__ import annotations

import html
import secrets
from typing import Annotated
from urllib.parse import quote, urlsplit

from fastapi import Cookie, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from crm.services import auth
from widget_api.deps import RuntimeDep
from widget_api.i18n import pick_language, translate

SESSION_COOKIE = "mw_session"
FORM_COOKIE = "mw_form"  # the CSRF pair of forms shown before signing in (double submit)


class NotSignedIn(Exception):
    """Raised by `SignedInDep`; answered with a redirect to the sign-in page."""

    def __init__(self, next_path: str) -> None:
        self.next_path = next_path


def csp(form_targets: tuple[str, ...] = ()) -> str:
    # form-action also governs where a form's redirect may go: the pairing's 303 to the
    # extension's redirect URI must be allowed by name.
    origins = " ".join(dict.fromkeys(f"{urlsplit(u).scheme}://{urlsplit(u).netloc}" for u in form_targets))
    return f"default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self' {origins}".rstrip() + "; frame-ancestors 'none'; base-uri 'none'"


def t(request: Request, key: str, **values: object) -> str:
    return html.escape(translate(key, language(request), **values))


def language(request: Request) -> str:
    return pick_language(request.query_params.get("lang") or getattr(request.state, "language", None), request.headers.get("accept-language"))


def render(request: Request, title_key: str, body: str, *, status: int = 200, form_targets: tuple[str, ...] = (), cookies: dict[str, str] | None = None) -> HTMLResponse:
    lang = language(request)
    page = (
        f'<!doctype html><html lang="{lang}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<title>{t(request, title_key)}</title><link rel="stylesheet" href="/pages/pages.css"></head>'
        f"<body><main><h1>{t(request, title_key)}</h1>{body}</main></body></html>"
    )
    headers = {"Content-Security-Policy": csp(form_targets), "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "Cache-Control": "no-store"}
    response = HTMLResponse(page, status_code=status, headers=headers)
    for name, value in (cookies or {}).items():
        set_cookie(request, response, name, value)
    return response


def set_cookie(request: Request, response: HTMLResponse | RedirectResponse, name: str, value: str, max_age: int | None = None) -> None:
    # Lax, not Strict: the pairing page is opened from the extension, a top-level navigation
    # from elsewhere, and must see the session. Posts from other sites never carry it.
    response.set_cookie(name, value, max_age=max_age, httponly=True, samesite="lax", secure=request.url.scheme == "https", path="/")


def escape(value: object) -> str:
    return html.escape("" if value is None else str(value))


def hidden(name: str, value: str) -> str:
    return f'<input type="hidden" name="{escape(name)}" value="{escape(value)}">'


def local_path(value: str | None, default: str = "/account") -> str:
    """A `next` that stays on this site (never //other.example or a scheme)."""
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return default


def sign_in_redirect(next_path: str) -> RedirectResponse:
    return RedirectResponse(f"/auth/sign-in?next={quote(next_path, safe='')}", status_code=303)


def form_token(request: Request) -> str:
    """The pre-sign-in CSRF value: the cookie's, or a new one (set by the page)."""
    return request.cookies.get(FORM_COOKIE) or secrets.token_urlsafe(24)


def get_signed_in(request: Request, runtime: RuntimeDep, mw_session: Annotated[str | None, Cookie()] = None) -> auth.SignedIn:
    with runtime.read_sessions() as session:
        who = auth.session_user(session, mw_session)
    if who is None:
        raise NotSignedIn(request.url.path + (f"?{request.url.query}" if request.url.query else ""))
    request.state.language = who.principal.language
    return who


SignedInDep = Annotated[auth.SignedIn, Depends(get_signed_in)]


def require_csrf(who: auth.SignedIn, sent: str | None) -> None:
    from crm.domain.errors import PermissionDenied

    if not sent or not secrets.compare_digest(sent, who.csrf_token):
        raise PermissionDenied("the form is stale or came from another site; reload the page", code="csrf_failed")
