"""A real SMTP server on loopback for the outbox's tests and benchmark: aiosmtpd's
Controller with a handler that records what it accepted (the bytes as received) and can be
told to misbehave at chosen points of the next transactions:

- "temporary": answer 451 to DATA;
- "reject_rcpt": answer 550 to RCPT TO;
- "cut_mid_data": drop the connection when the message arrived, before any reply (for the
  client, the same as a cut during DATA: it never saw a reply);
- "cut_after_250": record the message, answer 250, then drop the connection (the QUIT
  never gets an answer).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

from aiosmtpd.controller import Controller

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
        return "250 2.0.0 queued"


@contextlib.contextmanager
def smtp_server() -> Iterator[SmtpSink]:
    """A started server (always stopped); the sink knows its port."""
    sink = SmtpSink(port=free_port())
    controller = Controller(sink, hostname="127.0.0.1", port=sink.port, decode_data=False)
    controller.start()
    try:
        yield sink
    finally:
        controller.stop()
