"""Every error leaves as HTTP 4xx/5xx with a JSON body {"type", "detail"} in the user's
language. The domain → HTTP table lives here and only here."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from crm.domain import errors as e
from widget_api.i18n import pick_language, translate

log = logging.getLogger("mailwidget")

# Most specific first: the first class the exception is an instance of wins.
STATUS: list[tuple[type[e.DomainError], int]] = [
    (e.MessageNotFound, 404),
    (e.MailboxAuthError, 400),  # the IMAP login failed: the user's input, not our token
    (e.MailboxUnavailable, 502),
    (e.MailboxError, 502),
    (e.NotFound, 404),
    (e.Conflict, 409),
    (e.InvalidInput, 400),
    (e.PermissionDenied, 403),
]
UNAUTHENTICATED = {"invalid_token", "missing_token"}
HTTP_TYPES = {400: "bad_request", 401: "missing_token", 404: "not_found", 405: "method_not_allowed", 413: "payload_too_large", 415: "unsupported_media_type"}


def language_of(request: Request) -> str:
    chosen = getattr(request.state, "language", None) or request.query_params.get("lang")
    return pick_language(chosen, request.headers.get("accept-language"))


def body(request: Request, code: str, detail: str, **extra: object) -> dict[str, object]:
    """`detail` in the user's language when the code has a translation; the server's own
    English detail stays in `reason` for support."""
    lang = language_of(request)
    out: dict[str, object] = {"type": code, "detail": translate(code, lang, default=detail, field=extra.get("field") or ""), "reason": detail}
    out.update({k: v for k, v in extra.items() if v is not None})
    request_id = getattr(request.state, "request_id", None)  # set by widget_api.request_ids
    if request_id:
        out["request_id"] = request_id
    return out


def status_of(exc: e.DomainError) -> int:
    if exc.code in UNAUTHENTICATED:
        return 401
    return next((status for cls, status in STATUS if isinstance(exc, cls)), 400)


def install(app: FastAPI) -> None:
    @app.exception_handler(e.DomainError)
    async def domain_error(request: Request, exc: e.DomainError) -> JSONResponse:
        extra: dict[str, object] = {}
        if isinstance(exc, e.Conflict):
            extra = {"field": exc.field, "existing_id": exc.existing_id, "existing": exc.existing}
        status = status_of(exc)
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        return JSONResponse(body(request, exc.code, exc.detail, **extra), status_code=status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        fields = [
            {"field": ".".join(str(p) for p in err.get("loc", ())[1:]) or "body", "message": str(err.get("msg", ""))[:300], "kind": err.get("type")}
            for err in exc.errors()
        ]
        return JSONResponse(body(request, "validation_error", "request validation failed", errors=fields), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = HTTP_TYPES.get(exc.status_code, "http_error")
        return JSONResponse(body(request, code, str(exc.detail)), status_code=exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(OperationalError)
    async def database_unavailable(request: Request, exc: OperationalError) -> JSONResponse:
        # Locked (SQLite under a long writer), restarting, unreachable: the transaction was
        # rolled back, and the same request can simply be sent again.
        log.warning("database unavailable on %s %s", request.method, request.url.path)
        return JSONResponse(body(request, "database_unavailable", "the database is unavailable"), status_code=503, headers={"Retry-After": "5"})

    # Any other exception: widget_api.request_ids answers 500 (the transaction was rolled
    # back by the session dependency) and logs its type and the request id only.
