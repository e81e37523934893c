"""Guards around a request that connects to a host the user named (the mailbox connect and
test): the target must be a public address unless the admin allows private ones, and an
organisation runs only a few such tests at once. Without them the endpoint is a scanner of
the server's own network and a way to hold every worker thread on hosts that never answer."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from crm.domain.errors import RateLimited
from mail_adapter.addresses import checked_addresses


def check_target(host: str, port: int) -> None:
    """Refused at once when host resolves to any private address (the connection checks again,
    on the addresses it connects to: mail_adapter.addresses)."""
    try:
        checked_addresses(host, port, allow_private=False)
    except socket.gaierror:
        return  # unresolvable: the connection itself fails with a clear 502


class ConnectionTests:
    def __init__(self, per_org: int, *, allow_private: bool) -> None:
        self.per_org = per_org
        self.allow_private = allow_private
        self._running: dict[int, int] = {}
        self._lock = threading.Lock()

    @contextmanager
    def slot(self, organisation_id: int, host: str, port: int) -> Iterator[None]:
        """Hold one of the organisation's test slots while connecting to host:port."""
        if not self.allow_private:
            check_target(host, port)
        with self._lock:
            if self._running.get(organisation_id, 0) >= self.per_org:
                raise RateLimited("too many mailbox tests at once; try again shortly", retry_after=5, code="too_many_connection_tests")
            self._running[organisation_id] = self._running.get(organisation_id, 0) + 1
        try:
            yield
        finally:
            with self._lock:
                self._running[organisation_id] -= 1
                if not self._running[organisation_id]:
                    del self._running[organisation_id]
