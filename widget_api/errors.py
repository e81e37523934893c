"""Every error leaves as HTTP 4xx/5xx with a JSON body {"type", "detail"} in the user's
language. The domain → HTTP table lives here and only here."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from sqlalchemy.exc import DBAPIError, OperationalError
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
    (e.RateLimited, 429),
]
UNAUTHENTICATED = {"invalid_token", "missing_token"}
CODE_STATUS = {"payload_too_large": 413, "unknown_merge_field": 422, "unsupported_media_type": 415}  # codes more precise than their class
HTTP_TYPES = {400: "bad_request", 401: "missing_token", 404: "not_found", 405: "method_not_allowed", 413: "payload_too_large", 415: "unsupported_media_type"}


def language_of(request: Request) -> str:
    chosen = getattr(request.state, "language", None) or request.query_params.get("lang")
    return pick_language(chosen, request.headers.get("accept-language"))


def body(request: Request, code: str, detail: str, *, message: str | None = None, **extra: object) -> dict[str, object]:
    """`detail` in the user's language when the code (or `message`, a more precise
    catalogue key) has a translation, filled with the extras that are text; the server's own
    English detail stays in `reason` for support."""
    lang = language_of(request)
    values = {k: v for k, v in extra.items() if isinstance(v, str)} | {"field": extra.get("field") or ""}
    out: dict[str, object] = {"type": code, "detail": translate(message or code, lang, default=detail, **values), "reason": detail}
    out.update({k: v for k, v in extra.items() if v is not None})
    request_id = getattr(request.state, "request_id", None)  # set by widget_api.request_ids
    if request_id:
        out["request_id"] = request_id
    return out


def status_of(exc: e.DomainError) -> int:
    if exc.code in UNAUTHENTICATED:
        return 401
    if exc.code in CODE_STATUS:
        return CODE_STATUS[exc.code]
    return next((status for cls, status in STATUS if isinstance(exc, cls)), 400)


class FieldErrorOut(BaseModel):
    field: str
    message: str
    kind: str | None = None


class ErrorOut(BaseModel):
    """The body of every error answer. `type` is a stable code, `detail` says it in the
    user's language, `reason` in the server's English; the rest depends on the error."""

    model_config = ConfigDict(extra="allow")

    type: str
    detail: str
    reason: str | None = None
    request_id: str | None = None
    field: str | None = None
    existing_id: int | None = None
    existing: dict[str, Any] | None = None
    errors: list[FieldErrorOut] | None = None
    scope: str | None = None  # never_log: "user" (the caller's own list) or "org"
    address: str | None = None  # never_log: the mail's address on that list


MEANING = {
    400: "the request makes no sense here, or the mail server refused the login",
    401: "no API token, or one that is invalid or revoked",
    403: "the user may not do this (administrators only)",
    404: "not found in the user's organisation or mailbox",
    409: "a unique rule or the stored state refuses it; nothing was written",
    413: "the upload is too large",
    422: "the request does not match the schema (`errors` says where)",
    429: "too many requests with this token: wait for Retry-After seconds",
    502: "the mail server could not be reached or refused the request",
    503: "the database is unavailable: send the same request again after Retry-After seconds",
}
BEHIND_A_TOKEN = (401, 422, 503)
RETRY_AFTER = "5"  # seconds: a PostgreSQL restart or a long SQLite writer is over by then


def responses(*codes: int, authenticated: bool = True) -> dict[int | str, dict[str, Any]]:
    """The error answers of a router's operations, for its `responses=`: the codes named
    and, behind a token, 401, 422 and 503. One table, so the OpenAPI document and generated
    clients know every error body."""
    wanted = sorted(set(codes) | (set(BEHIND_A_TOKEN) if authenticated else set()))
    return {code: {"model": ErrorOut, "description": MEANING[code]} for code in wanted}


def install(app: FastAPI) -> None:
    @app.exception_handler(e.DomainError)
    async def domain_error(request: Request, exc: e.DomainError) -> JSONResponse:
        extra: dict[str, object] = {}
        message = None
        if isinstance(exc, e.NeverLogged):
            extra, message = {"scope": exc.scope, "address": exc.address}, f"never_log_{exc.scope}"
        elif isinstance(exc, e.Conflict):
            extra = {"field": exc.field, "existing_id": exc.existing_id, "existing": exc.existing}
        elif isinstance(exc, e.InvalidInput):
            extra = {"field": exc.field}
        status = status_of(exc)
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        if isinstance(exc, e.RateLimited):
            headers = {"Retry-After": str(exc.retry_after)}
        return JSONResponse(body(request, exc.code, exc.detail, message=message, **extra), status_code=status, headers=headers)

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

    @app.exception_handler(DBAPIError)
    async def database_unavailable(request: Request, exc: DBAPIError) -> JSONResponse:
        # Locked (SQLite past its busy timeout), restarting (PostgreSQL cut the connection:
        # any DBAPIError SQLAlchemy saw as a disconnect), unreachable: the transaction was
        # rolled back, and the same request can simply be sent again. Anything else (a
        # constraint nobody expected) stays a 500.
        if not (isinstance(exc, OperationalError) or exc.connection_invalidated):
            raise exc
        log.warning("database unavailable on %s %s (%s)", request.method, request.url.path, type(exc.orig).__name__)
        return JSONResponse(body(request, "database_unavailable", "the database is unavailable"), status_code=503, headers={"Retry-After": RETRY_AFTER})

    # Any other exception: widget_api.request_ids answers 500 (the transaction was rolled
    # back by the session dependency) and logs its type and the request id only.
