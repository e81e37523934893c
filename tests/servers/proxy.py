"""IMAP-aware TCP proxies for the tests, all served by one asyncio loop in a background thread.

`FaultProxy` cuts a connection at a chosen moment (before a command reaches the server,
after it did, after the server's tagged reply, or after N bytes), to prove that no message
is lost or doubled when a connection drops halfway. `CapabilityFilter` makes a full Dovecot
look like a server without an extension: it drops the capability from every CAPABILITY
list, refuses the extension's commands, and (for UIDPLUS) strips COPYUID/APPENDUID.
Dovecot's own `imap_capability` setting only changes what is advertised; the commands keep
working, so a client that ignored the capability would pass the tests by accident.

Both follow the IMAP framing (lines and `{n}` / `{n+}` literals), so a message body that
happens to contain "UID MOVE" is never taken for a command, and rewriting never touches
literal data.
"""

from __future__ import annotations

import asyncio
import re
import ssl
import threading
from collections.abc import Coroutine
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

WHEN = ("before", "after_forward", "after_reply")
When = Literal["before", "after_forward", "after_reply"]

LINE_LIMIT = 1 << 24  # a UID SEARCH answer over a big folder is one long line
CHUNK = 1 << 16
LITERAL = re.compile(rb"~?\{(\d+)(\+?)\}\r?\n\Z")
TAGGED = re.compile(rb"\A([^\s+*]+) ")
COMMAND = re.compile(rb"\A[^\s+*]+ (?:UID )?([A-Za-z]+)", re.IGNORECASE)
CAPABILITY_LIST = re.compile(rb"(\[CAPABILITY |\A\* CAPABILITY )([^\]\r\n]*)", re.IGNORECASE)
UID_CODES = re.compile(rb"\[(?:COPYUID|APPENDUID) [^\]]*\] ?", re.IGNORECASE)

# Which commands an absent capability takes away (RFC 6851 MOVE, RFC 4315 UIDPLUS).
REFUSED_WITHOUT = {
    b"MOVE": (re.compile(rb"\A\S+ (?:UID )?MOVE ", re.IGNORECASE),),
    b"UIDPLUS": (re.compile(rb"\A\S+ UID EXPUNGE ", re.IGNORECASE),),
}

T = TypeVar("T")
_loop: asyncio.AbstractEventLoop | None = None
_loop_lock = threading.Lock()


def _run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine on the shared proxy loop (started on first use) and wait for it."""
    global _loop
    with _loop_lock:
        if _loop is None:
            _loop = asyncio.new_event_loop()
            threading.Thread(target=_loop.run_forever, name="imap-proxies", daemon=True).start()
    future: Future[T] = asyncio.run_coroutine_threadsafe(coro, _loop)
    return future.result(30)


@dataclass
class _Rule:
    pattern: re.Pattern[bytes] | None  # None: a byte-count rule
    when: str
    times: int | None  # None: every time
    after_bytes: int = 0

    def take(self) -> bool:
        if self.times is None:
            return True
        if self.times <= 0:
            return False
        self.times -= 1
        return True


class _Framing:
    """Splits one direction of an IMAP stream into lines and literal chunks.

    `next()` returns (data, kind) where kind is "start" (a line that begins a command or a
    response), "more" (a line continuing one after a literal) or "literal"; None at EOF.
    A synchronizing literal `{n}` from the client is only read once the server said "+":
    if the server answers the command instead, the client sends no literal at all.
    """

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self.reader = reader
        self.literal = 0
        self.continued = False
        self.tag = b""
        self.go_ahead: asyncio.Future[bool] | None = None

    async def next(self) -> tuple[bytes, str] | None:
        if self.literal:
            data = await self.reader.read(min(self.literal, CHUNK))
            if not data:
                return None
            self.literal -= len(data)
            return data, "literal"
        line = await self.reader.readline()
        if not line:
            return None
        kind = "more" if self.continued else "start"
        if kind == "start":
            tagged = TAGGED.match(line)
            self.tag = tagged[1] if tagged else b""
        literal = LITERAL.search(line)
        self.continued = literal is not None
        self.literal = int(literal[1]) if literal else 0
        return line, kind

    def expect_go_ahead(self) -> None:
        self.go_ahead = asyncio.get_running_loop().create_future()

    async def wait_go_ahead(self) -> None:
        """After a client line ending in a synchronizing literal: wait for "+" or the answer."""
        if self.go_ahead is None:
            return
        if not await self.go_ahead:
            self.literal, self.continued = 0, False
        self.go_ahead = None

    def answer(self, go: bool) -> None:
        if self.go_ahead is not None and not self.go_ahead.done():
            self.go_ahead.set_result(go)


@dataclass(eq=False)
class _Connection:
    client_reader: asyncio.StreamReader
    client: asyncio.StreamWriter
    upstream_reader: asyncio.StreamReader
    upstream: asyncio.StreamWriter
    sent: int = 0
    cut_after_tag: bytes | None = None
    held: list[bytes] = field(default_factory=list)
    closed: bool = False

    def abort(self, *, server_reads_first: bool = False) -> None:
        """The client's side without a goodbye, as a dead NAT or a crashed server looks to it.

        With `server_reads_first` the server's side is closed in order instead (FIN after
        the bytes already sent), so the server surely reads and runs what it was given; a
        reset could make it drop them, and "after forwarding" would mean "before" by luck.
        """
        self.closed = True
        self.client.transport.abort()
        if server_reads_first:
            self.upstream.close()
        else:
            self.upstream.transport.abort()


class ImapProxy:
    """A proxy on a free loopback port in front of (target_host, target_port).

    With `tls_context`, it also listens with implicit TLS on `tls_port` and answers
    STARTTLS itself; the upstream side stays plain either way.
    """

    def __init__(
        self, target_port: int, target_host: str = "127.0.0.1", *, tls_context: ssl.SSLContext | None = None
    ) -> None:
        self.target = (target_host, target_port)
        self.host = "127.0.0.1"
        self.tls_context = tls_context
        self.connections = 0
        self.cuts = 0
        self.commands: list[bytes] = []  # every command line the clients sent, in order
        self.remove_capabilities: frozenset[bytes] = frozenset()
        self._rules: list[_Rule] = []
        self._lock = threading.Lock()
        self._live: set[_Connection] = set()
        self._servers: list[asyncio.Server] = []
        self.port = _run(self._listen(None))
        self.tls_port = _run(self._listen(tls_context)) if tls_context else 0

    async def _listen(self, context: ssl.SSLContext | None) -> int:
        server = await asyncio.start_server(self._serve, self.host, 0, ssl=context, limit=LINE_LIMIT)
        self._servers.append(server)
        return int(server.sockets[0].getsockname()[1])

    def close(self) -> None:
        """Stop listening and drop every live connection."""
        _run(self._close())

    async def _close(self) -> None:
        for server in self._servers:
            server.close()
        for conn in list(self._live):
            conn.abort()
        self._servers.clear()

    def __enter__(self) -> ImapProxy:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- the relay --------------------------------------------------------------------

    async def _serve(self, client_reader: asyncio.StreamReader, client: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            upstream_reader, upstream = await asyncio.open_connection(*self.target, limit=LINE_LIMIT)
        except OSError:
            client.transport.abort()
            return
        conn = _Connection(client_reader, client, upstream_reader, upstream)
        self._live.add(conn)
        from_client = _Framing(client_reader)
        try:
            await asyncio.gather(
                self._client_to_server(conn, from_client),
                self._server_to_client(conn, from_client),
                return_exceptions=True,
            )
        finally:
            self._live.discard(conn)
            if not conn.closed:
                for writer in (client, upstream):
                    writer.close()

    async def _client_to_server(self, conn: _Connection, framing: _Framing) -> None:
        try:
            while (unit := await framing.next()) is not None:
                data, kind = unit
                if kind == "start":
                    self.commands.append(data.rstrip(b"\r\n"))
                    if await self._answered_here(conn, framing, data):
                        continue
                if kind != "literal":
                    if LITERAL.search(data) and not data.rstrip(b"\r\n").endswith(b"+}"):
                        framing.expect_go_ahead()
                    if not await self._forward_line(conn, data):
                        return
                elif not await self._forward_bytes(conn, data):
                    return
                await framing.wait_go_ahead()
        except (OSError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        finally:
            framing.answer(False)
            if not conn.closed:
                conn.upstream.close()

    async def _answered_here(self, conn: _Connection, framing: _Framing, line: bytes) -> bool:
        """Commands the proxy answers itself (STARTTLS, refused extensions); True if it did."""
        tag = framing.tag or b"*"
        if self.tls_context and re.match(rb"\A\S+ STARTTLS\r?\n", line, re.IGNORECASE):
            conn.client.write(tag + b" OK Begin TLS negotiation now.\r\n")
            await conn.client.drain()
            await conn.client.start_tls(self.tls_context)
            return True
        for capability in self.remove_capabilities:
            if any(p.search(line) for p in REFUSED_WITHOUT.get(capability, ())):
                conn.client.write(tag + b" BAD Error in IMAP command: Unknown command.\r\n")
                await conn.client.drain()
                await self._swallow(framing, line)
                return True
        return False

    async def _swallow(self, framing: _Framing, line: bytes) -> None:
        """Drop the rest of a refused command: only non-synchronizing literals still come."""
        while line.rstrip(b"\r\n").endswith(b"+}"):
            while framing.literal:
                if await framing.next() is None:
                    return
            unit = await framing.next()
            if unit is None:
                return
            line = unit[0]
        framing.literal, framing.continued = 0, False

    async def _forward_line(self, conn: _Connection, line: bytes) -> bool:
        rule = self._match(line)
        if rule and rule.when == "before":
            self._cut(conn)
            return False
        if not await self._forward_bytes(conn, line):
            return False
        if rule and rule.when == "after_forward":
            self._cut(conn, server_reads_first=True)
            return False
        if rule and rule.when == "after_reply":
            tagged = TAGGED.match(line)
            conn.cut_after_tag = tagged[1] if tagged else None
        return True

    async def _forward_bytes(self, conn: _Connection, data: bytes) -> bool:
        limit = self._byte_limit(conn, len(data))
        if limit is not None:
            conn.upstream.write(data[:limit])
            self._cut(conn, server_reads_first=True)
            return False
        conn.sent += len(data)
        conn.upstream.write(data)
        await conn.upstream.drain()
        return True

    async def _server_to_client(self, conn: _Connection, from_client: _Framing) -> None:
        framing = _Framing(conn.upstream_reader)
        try:
            while (unit := await framing.next()) is not None:
                data, kind = unit
                if kind == "start":
                    if data.startswith(b"+"):
                        from_client.answer(True)
                    elif framing.tag and framing.tag == from_client.tag:
                        from_client.answer(False)
                    if conn.cut_after_tag is not None and framing.tag == conn.cut_after_tag:
                        self._cut(conn)  # the server did the command; the client never hears it did
                        return
                if kind != "literal" and self.remove_capabilities:
                    data = self._rewrite(data)
                if conn.cut_after_tag is not None:
                    conn.held.append(data)  # nothing of the doomed command's answer gets through
                    continue
                conn.client.write(data)
                await conn.client.drain()
        except (OSError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        finally:
            from_client.answer(False)
            if not conn.closed:
                conn.client.close()

    def _rewrite(self, line: bytes) -> bytes:
        def without(match: re.Match[bytes]) -> bytes:
            kept = [c for c in match[2].split() if c.upper() not in self.remove_capabilities]
            return match[1] + b" ".join(kept)

        line = CAPABILITY_LIST.sub(without, line)
        if b"UIDPLUS" in self.remove_capabilities:
            line = UID_CODES.sub(b"", line)
        return line

    # -- faults -----------------------------------------------------------------------

    def _match(self, line: bytes) -> _Rule | None:
        with self._lock:
            for rule in self._rules:
                if rule.pattern is not None and rule.pattern.search(line) and rule.take():
                    return rule
        return None

    def _byte_limit(self, conn: _Connection, size: int) -> int | None:
        """How many of the next `size` bytes may pass before a byte-count rule cuts, if one does."""
        with self._lock:
            for rule in self._rules:
                if rule.pattern is None and conn.sent + size >= rule.after_bytes and rule.take():
                    return max(rule.after_bytes - conn.sent, 0)
        return None

    def _cut(self, conn: _Connection, *, server_reads_first: bool = False) -> None:
        self.cuts += 1
        conn.abort(server_reads_first=server_reads_first)


class FaultProxy(ImapProxy):
    """Cuts connections on command: `cut_on(rb"UID MOVE", when="after_reply")`."""

    def cut_on(self, pattern: bytes, when: When = "before", times: int | None = 1) -> None:
        """Cut the connection whose client sends a line matching `pattern`.

        before: the server never sees the command; after_forward: the server got it, the
        client hears nothing; after_reply: the server finished it, the client never hears
        the outcome. `times=None` cuts every time, else the next `times` matches only.
        """
        if when not in WHEN:
            raise ValueError(f"when must be one of {WHEN}")
        with self._lock:
            self._rules.append(_Rule(re.compile(pattern), when, times))

    def cut_after_bytes(self, count: int, times: int | None = 1) -> None:
        """Cut a connection once its client has sent `count` bytes (counted per connection)."""
        with self._lock:
            self._rules.append(_Rule(None, "before", times, after_bytes=count))

    def reset(self) -> None:
        """Forget every rule: the next connections pass untouched."""
        with self._lock:
            self._rules.clear()


class CapabilityFilter(ImapProxy):
    """A server without `remove` (e.g. {"MOVE"}): not advertised, and its commands refused."""

    def __init__(self, target_port: int, remove: tuple[str, ...], *, tls_context: ssl.SSLContext | None = None) -> None:
        super().__init__(target_port, tls_context=tls_context)
        self.remove_capabilities = frozenset(c.upper().encode() for c in remove)
