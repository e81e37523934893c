"""Every request gets an id: the client's X-Request-ID when it is a plain token, else a new
one. It goes back in the X-Request-ID response header and in every error body, so a user's
report and the server's log line meet.

The same middleware is where an exception no handler took becomes the 500 answer: its log
line names the exception's type and the request id only, never its text or traceback (they
can hold user data, SQL parameters, a secret), and nothing re-raises it to the server,
which would log the traceback after all.
"""

from __future__ import annotations

import logging
import re
import uuid

from fastapi.responses import JSONResponse
from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from widget_api.errors import body
from widget_api.logs import REQUEST_ID

HEADER = "X-Request-ID"
_PLAIN = re.compile(r"[A-Za-z0-9._:-]{1,64}")
log = logging.getLogger("mailwidget")


def request_id_of(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            text = value.decode("latin-1")
            if _PLAIN.fullmatch(text):
                return text
    return uuid.uuid4().hex


class RequestIds:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_of(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                MutableHeaders(scope=message)[HEADER] = request_id
            await send(message)

        token = REQUEST_ID.set(request_id)  # every log line of this request carries it
        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:  # noqa: BLE001 - the last handler: every exception becomes a 500 here
            route = getattr(scope.get("route"), "path", "?")  # the template, not the URL: no user data
            log.error("unexpected %s in request %s (%s %s)", type(exc).__name__, request_id, scope.get("method"), route)
            if started:
                return  # the answer is under way: the client sees a cut response
            request = Request(scope)
            await JSONResponse(body(request, "internal_error", "internal error"), status_code=500)(scope, receive, send_with_id)
        finally:
            REQUEST_ID.reset(token)
