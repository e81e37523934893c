"""The concrete objects (engine, sessions, mailbox pool, secret box: widget_api.runtime)
handed to endpoints through `Annotated` aliases."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Header, Query, Request
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from crm.domain.drafts import ReadContext
from crm.domain.errors import PermissionDenied
from crm.domain.principal import Principal
from crm.services import mailboxes, organisations
from widget_api.i18n import pick_language
from widget_api.runtime import Runtime


async def get_runtime(request: Request) -> Runtime:
    # async: FastAPI runs a sync dependency in the thread pool, a hop that costs more than
    # this attribute read
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def get_session(runtime: RuntimeDep) -> Iterator[Session]:
    """The request owns the transaction: commit when the endpoint returned, roll back when it
    raised. Services only flush."""
    with runtime.sessions() as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


# scope="function": commit before the response is sent, so a failed commit is never
# reported to the client as a success.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]


async def get_read_session(runtime: RuntimeDep) -> AsyncIterator[Session]:
    """A session of an endpoint that only reads: it never waits behind a writer (a running
    import's batch, a save) and any write through it is refused (crm.store.db).

    async: a sync generator dependency costs two thread-pool hops (enter and exit). Making a
    Session does no I/O (it connects on its first statement), so it is made here; only its
    close, which rolls back and returns a connection to the pool, goes to the thread pool,
    and only when a statement was run."""
    session = runtime.read_sessions()
    try:
        yield session
    finally:
        if session.in_transaction():
            await run_in_threadpool(session.close)
        else:
            session.close()


ReadSessionDep = Annotated[Session, Depends(get_read_session)]


@dataclass(frozen=True)
class Credentials:
    """The bearer token of a request (and the language it asked for), not yet checked."""

    token: str = field(repr=False)
    lang: str | None = None


async def get_credentials(
    authorization: Annotated[str | None, Header()] = None,
    lang: Annotated[str | None, Query(description="ja or en; default: the user's setting")] = None,
) -> Credentials:
    # async: no database, so no thread-pool hop for it
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise PermissionDenied("an API token is required (Authorization: Bearer …)", code="missing_token")
    return Credentials(token.strip(), lang)


CredentialsDep = Annotated[Credentials, Depends(get_credentials)]


def principal_of(request: Request, runtime: Runtime, credentials: Credentials, session: Session | None = None) -> Principal:
    """The principal of the credentials (PermissionDenied for a bad token), looked up in the
    caller's thread: an endpoint that runs all its work in one thread-pool call (the draft)
    authenticates there instead of in a hop of its own, and may pass its own read-only
    `session` so that the lookup costs no session (pool checkout, BEGIN, ROLLBACK) of its own."""
    if session is None:
        with runtime.read_sessions() as own:
            principal = organisations.authenticate(own, credentials.token)
    else:
        principal = organisations.authenticate(session, credentials.token)
    return speaking(request, credentials, principal)


def speaking(request: Request, credentials: Credentials, principal: Principal) -> Principal:
    """The principal, its request's answers now in the language asked for (else the user's)."""
    request.state.language = pick_language(credentials.lang or principal.language, None)
    return principal


def get_principal(request: Request, runtime: RuntimeDep, credentials: CredentialsDep) -> Principal:
    return principal_of(request, runtime, credentials)


CurrentUser = Annotated[Principal, Depends(get_principal)]


def get_admin(principal: CurrentUser) -> Principal:
    organisations.require_admin(principal)
    return principal


AdminUser = Annotated[Principal, Depends(get_admin)]


def rate_limited(endpoint: str) -> Callable[..., Principal]:
    """The authenticated principal, after one request of its token's bucket for `endpoint`
    was taken (widget_api.rate_limits): a missing token is still 401 and never counted."""

    def dependency(principal: CurrentUser, runtime: RuntimeDep) -> Principal:
        runtime.rate_limits.take(principal.token_id if principal.token_id is not None else ("user", principal.user_id), endpoint)
        return principal

    return dependency


UploadUser = Annotated[Principal, Depends(rate_limited("upload"))]
ImportUser = Annotated[Principal, Depends(rate_limited("import"))]
MailboxTestUser = Annotated[Principal, Depends(rate_limited("mailbox_test"))]


def get_read_context(session: SessionDep, principal: CurrentUser) -> ReadContext:
    return mailboxes.read_context(session, principal)


ReadContextDep = Annotated[ReadContext, Depends(get_read_context)]
