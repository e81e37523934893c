"""pytest fixtures for the real servers. Session-scoped servers (one per xdist worker),
function-scoped users so tests never see each other's mail."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest

from tests.servers.dovecot import Dovecot, ImapUser
from tests.servers.postgres import ExternalPostgres, PostgresCluster
from tests.servers.proxy import FaultProxy


def _serve(**options: object) -> Iterator[Dovecot]:
    server = Dovecot(**options).start()  # type: ignore[arg-type]
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def dovecot() -> Iterator[Dovecot]:
    yield from _serve()


@pytest.fixture(scope="session")
def dovecot_nomove() -> Iterator[Dovecot]:
    yield from _serve(remove_capabilities=("MOVE",))


@pytest.fixture(scope="session")
def dovecot_nouidplus() -> Iterator[Dovecot]:
    yield from _serve(remove_capabilities=("MOVE", "UIDPLUS"))


@pytest.fixture(scope="session")
def dovecot_nospecialuse() -> Iterator[Dovecot]:
    yield from _serve(junk_name="迷惑メール", special_use=False)


@pytest.fixture()
def imap_user(dovecot: Dovecot) -> ImapUser:
    return dovecot.add_user()


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster | ExternalPostgres]:
    url = os.environ.get("DATABASE_URL", "")
    if url.startswith("postgresql"):
        yield ExternalPostgres(url)
        return
    cluster = PostgresCluster().start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture()
def fault_proxy() -> Iterator[Callable[[Dovecot], FaultProxy]]:
    """A factory: `fault_proxy(dovecot)` gives a proxy in front of that server's plain port."""
    proxies: list[FaultProxy] = []

    def make(server: Dovecot) -> FaultProxy:
        proxy = FaultProxy(server.port)
        proxies.append(proxy)
        return proxy

    yield make
    for proxy in proxies:
        proxy.close()
