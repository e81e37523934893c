"""A real SMTP server on loopback for the outbox's tests and benchmark: aiosmtpd's
Controller with a handler that records what it accepted (the bytes as received) and can be
told to misbehave at chosen points of the next transactions:

- "temporary": answer 451 to DATA;
- "reject_rcpt": answer 550 to RCPT TO;
- "cut_mid_data": drop the connection when the message arrived, before any reply (for the
  client, the same as a cut during DATA: it never saw a reply);
- "cut_after_250": record the message, answer 250, then drop the connection (the QUIT
  never gets an answer).

`delay`: seconds between recording a message and answering 250 (a slow server: a sender
stopped meanwhile leaves a mail that was received but whose sending it never recorded).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.servers.dovecot import make_certificates
from tests.servers.net import free_port


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes


@dataclass
class SmtpSink:
    """The handler. `faults`: what to do to the next transactions, in order (popped once each)."""

    received: list[Received] = field(default_factory=list)
    faults: list[str] = field(default_factory=list)
    port: int = 0
    client_context: ssl.SSLContext | None = None  # trusts the server's test CA (TLS servers)
    server_names: list[str | None] = field(default_factory=list)  # the SNI of each TLS handshake
    delay: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _next_fault(self, *kinds: str) -> str | None:
        with self._lock:
            if self.faults and self.faults[0] in kinds:
                return self.faults.pop(0)
        return None

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # type: ignore[no-untyped-def]  # noqa: N802
        if self._next_fault("reject_rcpt"):
            return "550 5.1.1 no such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]  # noqa: N802
        fault = self._next_fault("temporary", "cut_mid_data", "cut_after_250")
        if fault == "temporary":
            return "451 4.3.0 try again later"
        if fault == "cut_mid_data":
            server.transport.close()
            return "451 never seen"
        with self._lock:
            self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), bytes(envelope.original_content)))
        if fault == "cut_after_250":
            await server.push("250 2.0.0 queued")
            server.transport.close()
        if self.delay:
            await asyncio.sleep(self.delay)
        return "250 2.0.0 queued"


def _authenticator(users: dict[str, str]):  # type: ignore[no-untyped-def]
    def check(server, session, envelope, mechanism, auth_data):  # type: ignore[no-untyped-def]
        ok = isinstance(auth_data, LoginPassword) and users.get(auth_data.login.decode()) == auth_data.password.decode()
        return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 535 itself

    return check


@contextlib.contextmanager
def smtp_server(security: str = "none", users: dict[str, str] | None = None, directory: Path | None = None) -> Iterator[SmtpSink]:
    """A started server (always stopped); the sink knows its port. `security` "starttls"
    (required before AUTH and MAIL) or "tls" (implicit) needs `directory` for its
    certificates; `users` turns AUTH on (required)."""
    sink = SmtpSink(port=free_port())
    options: dict[str, object] = {"decode_data": False}
    if security != "none":
        assert directory is not None
        ca, cert, key = make_certificates(directory)
        server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server_context.load_cert_chain(cert, key)
        server_context.sni_callback = lambda _sock, name, _context: sink.server_names.append(name)  # type: ignore[assignment,func-returns-value]
        sink.client_context = ssl.create_default_context(cafile=str(ca))
        if security == "starttls":
            options.update(tls_context=server_context, require_starttls=True)
        else:
            options.update(ssl_context=server_context)
    if users is not None:
        # Required only behind STARTTLS: aiosmtpd sees no TLS on an implicit-TLS link and
        # warns against requiring AUTH there; the client logs in anyway when it has a user.
        starttls = security == "starttls"
        options.update(authenticator=_authenticator(users), auth_required=starttls, auth_require_tls=starttls)
    controller = Controller(sink, hostname="127.0.0.1", port=sink.port, **options)
    controller.start()
    try:
        yield sink
    finally:
        controller.stop()
