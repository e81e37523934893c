"""The concrete objects (engine, sessions, mailbox pool, secret box) are built here and only
here, and handed to endpoints through `Annotated` aliases."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, Query, Request
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from crm.domain.drafts import ReadContext
from crm.domain.errors import PermissionDenied
from crm.domain.principal import Principal
from crm.services import mailboxes, organisations
from crm.services.secrets import SecretBox
from crm.store.db import make_engine, make_session_factory
from mail_adapter.mailbox import Mailbox, MailboxPool, MailboxSettings
from widget_api import metrics
from widget_api.config import Settings
from widget_api.i18n import pick_language


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    pool: MailboxPool
    secrets: SecretBox

    @classmethod
    def build(cls, settings: Settings) -> Runtime:
        engine = make_engine(settings.database_url)
        return cls(settings, engine, make_session_factory(engine), MailboxPool(settings.pool_size, metrics.observe_imap), SecretBox(settings.secret_keys))

    def close(self) -> None:
        self.pool.close_all()
        self.engine.dispose()

    def mailbox(self, session: Session, principal: Principal, mailbox_id: int | None = None) -> Mailbox:
        """The pooled mailbox of the principal's account (their first one by default)."""
        account = mailboxes.get_account(session, principal, mailbox_id)
        return self.pool.get(self.mailbox_settings(account.host, account.port, account.security, account.username, self.secrets.decrypt(account.secret_encrypted), account.auth))

    def mailbox_settings(self, host: str, port: int, security: str, username: str, secret: str, auth: str) -> MailboxSettings:
        return MailboxSettings(host, port, security, username, secret, auth, ca_file=self.settings.imap_ca_file)


def get_runtime(request: Request) -> Runtime:
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


def get_principal(
    request: Request,
    runtime: RuntimeDep,
    authorization: Annotated[str | None, Header()] = None,
    lang: Annotated[str | None, Query(description="ja or en; default: the user's setting")] = None,
) -> Principal:
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise PermissionDenied("an API token is required (Authorization: Bearer …)", code="missing_token")
    with runtime.sessions() as session:
        principal = organisations.authenticate(session, token.strip())
    request.state.language = pick_language(lang or principal.language, None)
    return principal


CurrentUser = Annotated[Principal, Depends(get_principal)]


def get_admin(principal: CurrentUser) -> Principal:
    organisations.require_admin(principal)
    return principal


AdminUser = Annotated[Principal, Depends(get_admin)]


def get_read_context(session: SessionDep, principal: CurrentUser) -> ReadContext:
    return mailboxes.read_context(session, principal)


ReadContextDep = Annotated[ReadContext, Depends(get_read_context)]
