"""Where a mail server name leads: every address it resolves to, checked once, and the
connection made to a checked address (never to a name resolved again later, which a DNS
server under an attacker's control could point at the local network in between: DNS
rebinding)."""

from __future__ import annotations

import ipaddress
import socket

from crm.domain.errors import InvalidInput


def is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone id
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped  # ::ffff:10.0.0.1 is 10.0.0.1
    return ip.is_global and not (ip.is_loopback or ip.is_private or ip.is_link_local or ip.is_multicast or ip.is_reserved or ip.is_unspecified)


def resolve(host: str, port: int) -> list[str]:
    """The addresses of host, in the resolver's order, each once. socket.gaierror when the
    name does not resolve (a connection error: the caller reports the server unreachable)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (UnicodeError, ValueError):
        raise socket.gaierror(socket.EAI_NONAME, f"{host!r} is not a host name") from None
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def checked_addresses(host: str, port: int, *, allow_private: bool) -> list[str]:
    """The addresses to connect to for host. Unless private targets are allowed, every one
    must be public: one private address among public ones is enough to reach the local
    network."""
    addresses = resolve(host, port)
    if not allow_private and any(not is_public(a) for a in addresses):
        raise InvalidInput(f"{host} is a loopback, private or reserved address", code="private_address")
    return addresses


def connect(addresses: list[str], port: int, timeout: float | None) -> socket.socket:
    """A TCP connection to the first of `addresses` that answers."""
    error: OSError | None = None
    for address in addresses:
        try:
            return socket.create_connection((address, port), timeout=timeout)
        except OSError as exc:
            error = exc
    raise error or OSError(f"no address to connect to on port {port}")
