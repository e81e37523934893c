"""Guards around a request that connects to a host the user named (the mailbox connect and
test): the target must be a public address unless the admin allows private ones, and an
organisation runs only a few such tests at once. Without them the endpoint is a scanner of
the server's own network and a way to hold every worker thread on hosts that never answer."""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from crm.domain.errors import InvalidInput, RateLimited


def is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone id
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped  # ::ffff:10.0.0.1 is 10.0.0.1
    return ip.is_global and not (ip.is_loopback or ip.is_private or ip.is_link_local or ip.is_multicast or ip.is_reserved or ip.is_unspecified)


def check_target(host: str, port: int) -> None:
    """Every address the name resolves to is checked: one private address among public ones
    is enough to reach the local network."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, ValueError):
        return  # unresolvable: the connection itself fails with a clear 502
    if any(not is_public(str(info[4][0])) for info in infos):
        raise InvalidInput(f"{host} is a loopback, private or reserved address", code="private_address")


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
