"""pytest fixtures for the real servers, loaded by tests/conftest.py (`pytest_plugins`).

Servers are session-scoped and started on first use: one of each per xdist worker, on
ports the kernel picked, in temporary directories of their own. Users are per test, so a
test never sees another's mail.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.servers.dovecot import Dovecot, ImapUser
from tests.servers.postgres import ExternalPostgres, PostgresCluster, pg_bin, postgres_from_environment
from tests.servers.proxy import FaultProxy
from tests.servers.smtp import SmtpSink, smtp_server


def _serve(**options: object) -> Iterator[Dovecot]:
    with Dovecot(**options) as server:  # type: ignore[arg-type]
        yield server


@pytest.fixture(scope="session")
def dovecot() -> Iterator[Dovecot]:
    """Dovecot with MOVE, UIDPLUS and SPECIAL-USE (a \\Junk folder named Junk)."""
    yield from _serve()


@pytest.fixture(scope="session")
def dovecot_nomove() -> Iterator[Dovecot]:
    """A server without MOVE (RFC 6851): moves are COPY, \\Deleted, UID EXPUNGE."""
    yield from _serve(remove_capabilities=("MOVE",))


@pytest.fixture(scope="session")
def dovecot_nouidplus() -> Iterator[Dovecot]:
    """A server without UIDPLUS (RFC 4315), hence without MOVE either, as such servers are:
    no UID EXPUNGE, no COPYUID/APPENDUID."""
    yield from _serve(remove_capabilities=("MOVE", "UIDPLUS"))


@pytest.fixture(scope="session")
def dovecot_nospecialuse() -> Iterator[Dovecot]:
    """The spam folder is "迷惑メール", without the \\Junk flag."""
    yield from _serve(junk_name="迷惑メール", special_use=False)


@pytest.fixture(scope="session")
def dovecot_dotted() -> Iterator[Dovecot]:
    """Hierarchy delimiter ".": a subfolder is "Customers.Acme" on the server."""
    yield from _serve(separator=".")


@pytest.fixture()
def imap_user(dovecot: Dovecot) -> ImapUser:
    """A fresh user with an empty mailbox on the default Dovecot."""
    return dovecot.add_user()


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster | ExternalPostgres]:
    """The server named by DATABASE_URL if any, else a throwaway cluster."""
    external = postgres_from_environment()
    if external is not None:
        yield external
        external.stop()
        return
    if pg_bin() is None:
        pytest.skip(
            "no PostgreSQL binaries under /usr/lib/postgresql (`make test` installs them via scripts/test-deps.sh)"
        )
    with PostgresCluster() as cluster:
        yield cluster


@pytest.fixture()
def fault_proxy() -> Iterator[Callable[[Dovecot], FaultProxy]]:
    """A factory: `fault_proxy(dovecot)` gives a proxy in front of that server's plain port,
    closed at the end of the test."""
    proxies: list[FaultProxy] = []

    def make(server: Dovecot) -> FaultProxy:
        proxy = FaultProxy(server.port, server.host)
        proxies.append(proxy)
        return proxy

    yield make
    for proxy in proxies:
        proxy.close()


@pytest.fixture()
def smtp_sink() -> Iterator[SmtpSink]:
    """A real SMTP server (aiosmtpd) on a free loopback port, recording what it accepted."""
    with smtp_server() as sink:
        yield sink
