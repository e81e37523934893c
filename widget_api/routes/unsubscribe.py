"""The one-click unsubscribe link every automatic mail carries (List-Unsubscribe, RFC 8058).

No token, no sign-in: the link's own token (random, 192 bits, one per mail) is the
credential, and all it can do is stop automatic mail to the address it was sent to.
- POST /u/{token} with the body `List-Unsubscribe=One-Click`: what mail providers send when
  the recipient clicks "unsubscribe" in their mail client; answered at once.
- GET /u/{token}: a page (JA/EN) with one button posting that same body. A GET changes
  nothing, since link scanners and previews fetch every URL of a mail.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Form, Path, Request
from fastapi.responses import HTMLResponse

from crm.domain.errors import InvalidInput, NotFound
from crm.services import outbox
from widget_api import pages
from widget_api.deps import SessionDep
from widget_api.errors import responses
from widget_api.routing import PrefixRouter

router = PrefixRouter(tags=["unsubscribe"], responses=responses(400, 404, 422, 503, authenticated=False))

Token = Annotated[str, Path(min_length=16, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
ONE_CLICK = "One-Click"


@router.get("/u/{token}", include_in_schema=False)
def confirm_page(token: Token, request: Request, session: SessionDep) -> HTMLResponse:
    try:
        row = outbox.find_by_token(session, token)
    except NotFound as exc:  # a person clicked it: a page, not a JSON body
        return pages.render(request, "unsubscribe_title", f'<p class="error" role="alert">{pages.t(request, exc.code)}</p>', status=404)
    body = (
        f"<p>{pages.t(request, 'unsubscribe_question', address=row.to_address)}</p>"
        f'<form method="post" action="/u/{token}"><input type="hidden" name="List-Unsubscribe" value="{ONE_CLICK}">'
        f'<button class="primary" type="submit">{pages.t(request, "unsubscribe_button")}</button></form>'
    )
    return pages.render(request, "unsubscribe_title", body)


@router.post("/u/{token}", response_class=HTMLResponse, include_in_schema=False)  # a page of its own, like sign-in
def one_click(token: Token, request: Request, session: SessionDep, list_unsubscribe: Annotated[str, Form(alias="List-Unsubscribe", max_length=32)]) -> HTMLResponse:
    """RFC 8058 one-click unsubscribe: the address is added to the organisation's suppression
    list and no automatic mail (rules, form replies, bulk) is sent to it again; mails still
    queued for it are skipped."""
    if list_unsubscribe != ONE_CLICK:
        raise InvalidInput("the body must be List-Unsubscribe=One-Click (RFC 8058)", code="not_one_click")
    row = outbox.unsubscribe(session, token)
    return pages.render(request, "unsubscribe_title", f"<p>{pages.t(request, 'unsubscribe_done', address=row.to_address)}</p>")
