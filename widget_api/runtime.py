"""The concrete objects (engine, sessions, mailbox pool, secret box), built once per
process and handed to endpoints by widget_api.deps. Apart from deps.py so that a command
line command gets them without importing FastAPI (widget_api.cli starts in a fraction of
a second)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, Row
from sqlalchemy.orm import Session, sessionmaker

from crm.domain.principal import Principal
from crm.services import mailboxes
from crm.services.secrets import SecretBox
from crm.store.db import make_engine, make_session_factory, read_only_engine
from crm.store.models import MailboxAccount
from mail_adapter.mailbox import Mailbox, MailboxPool, MailboxSettings
from mail_adapter.opened_cache import OpenedCache
from widget_api import metrics
from widget_api.config import Settings
from widget_api.connection_tests import ConnectionTests
from widget_api.import_worker import ImportWorker
from widget_api.rate_limits import RateLimits


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    pool: MailboxPool
    secrets: SecretBox
    connection_tests: ConnectionTests = field(init=False)
    rate_limits: RateLimits = field(init=False)
    import_worker: ImportWorker = field(init=False)
    # Drafts already read, by mailbox id, folder, UIDVALIDITY, UID and read context.
    drafts: OpenedCache = field(init=False)
    _read_sessions: tuple[Engine, sessionmaker[Session], Engine] | None = field(init=False, default=None, repr=False)
    # Stored secret (its ciphertext) → the settings built from it: a Fernet decrypt per
    # request is a third of a millisecond for nothing. Keyed by the ciphertext, an account
    # whose password changed can never get the old one.
    _settings_of: dict[tuple[str, int, str, str, str, bytes], MailboxSettings] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.connection_tests = ConnectionTests(self.settings.connection_tests_per_org, allow_private=self.settings.allow_private_hosts)
        self.rate_limits = RateLimits(self.settings.rate_limits)
        self.drafts = OpenedCache(max_bytes=int(self.settings.draft_cache_mb * 2**20))
        self.import_worker = ImportWorker(self, self.settings.import_workers, lease=self.settings.import_lease, in_subprocess=self.settings.import_in_subprocess)

    @classmethod
    def build(cls, settings: Settings) -> Runtime:
        engine = make_engine(settings.database_url, busy_timeout=settings.sqlite_busy_timeout)
        return cls(settings, engine, make_session_factory(engine), MailboxPool(settings.pool_size, metrics.observe_imap), SecretBox(settings.secret_keys))

    @property
    def read_sessions(self) -> sessionmaker[Session]:
        """Sessions for reading only: on SQLite they never wait behind a writer (an import
        batch, a save); a write through one is refused (crm.store.db). Built for the current
        engine (tests swap it after build)."""
        return self._read_only()[1]

    def read_connection(self) -> Connection:
        """A plain connection for reading only, as a read session's (deferred BEGIN on
        SQLite, writes refused): for reads on every request that need no ORM (the draft's
        token check and lookups, crm.store.db.connection_of). Closing it rolls back."""
        return self._read_only()[2].connect()

    def _read_only(self) -> tuple[Engine, sessionmaker[Session], Engine]:
        if self._read_sessions is None or self._read_sessions[0] is not self.engine:
            self._read_sessions = (self.engine, make_session_factory(self.engine, read_only=True), read_only_engine(self.engine))
        return self._read_sessions

    def close(self) -> None:
        self.import_worker.stop()
        self.pool.close_all()
        self.engine.dispose()

    def mailbox(self, session: Session, principal: Principal, mailbox_id: int | None = None) -> Mailbox:
        """The pooled mailbox of the principal's account (their first one by default)."""
        return self.pool.get(self.account_settings(session, principal, mailbox_id))

    def account_settings(self, session: Session, principal: Principal, mailbox_id: int | None = None) -> MailboxSettings:
        return self.settings_of(mailboxes.get_account(session, principal, mailbox_id))

    def settings_of(self, account: MailboxAccount | Row[Any]) -> MailboxSettings:
        """`account`: the ORM object or a row of its columns (crm.services.mailboxes.account_and_context)."""
        key = (account.host, account.port, account.security, account.username, account.auth, bytes(account.secret_encrypted))
        found = self._settings_of.get(key)
        if found is None:
            found = self.mailbox_settings(account.host, account.port, account.security, account.username, self.secrets.decrypt(account.secret_encrypted), account.auth)
            if len(self._settings_of) >= max(self.settings.pool_size, 1):
                self._settings_of.clear()  # bounded: rebuilt on the next requests
            self._settings_of[key] = found
        return found

    def mailbox_settings(self, host: str, port: int, security: str, username: str, secret: str, auth: str) -> MailboxSettings:
        return MailboxSettings(
            host, port, security, username, secret, auth, ca_file=self.settings.imap_ca_file, connect_timeout=self.settings.connect_timeout, allow_private=self.settings.allow_private_hosts
        )
