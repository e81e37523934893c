"""A TCP proxy in front of a server that can cut the connection at a chosen moment:
when the client sends a command matching a pattern, before forwarding it, after forwarding
it, or after the server's tagged reply to it. Used to prove that no message is lost or
doubled when a connection drops halfway."""

from __future__ import annotations

import re
import socket
import threading
from dataclasses import dataclass

from tests.servers.net import free_port

WHEN = ("before", "after_forward", "after_reply")


@dataclass
class _Rule:
    pattern: re.Pattern[bytes]
    when: str
    times: int | None  # None: every time


class FaultProxy:
    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self.host = "127.0.0.1"
        self.connections = 0
        self.cuts = 0
        self._rules: list[_Rule] = []
        self._lock = threading.Lock()
        self._server = socket.create_server(("127.0.0.1", self.port))
        self._stopping = False
        threading.Thread(target=self._accept, daemon=True).start()

    def cut_on(self, pattern: bytes, when: str = "before", times: int | None = 1) -> None:
        """Cut the connection whose client sends a line matching `pattern` (`times` times)."""
        if when not in WHEN:
            raise ValueError(f"when must be one of {WHEN}")
        with self._lock:
            self._rules.append(_Rule(re.compile(pattern), when, times))

    def reset(self) -> None:
        with self._lock:
            self._rules.clear()

    def close(self) -> None:
        self._stopping = True
        self._server.close()

    # -- plumbing ---------------------------------------------------------------------

    def _match(self, line: bytes) -> _Rule | None:
        with self._lock:
            for rule in self._rules:
                if rule.pattern.search(line) and (rule.times is None or rule.times > 0):
                    if rule.times is not None:
                        rule.times -= 1
                    return rule
        return None

    def _accept(self) -> None:
        while not self._stopping:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            self.connections += 1
            try:
                upstream = socket.create_connection(self.target, timeout=10)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            state = {"cut_after_tag": None}
            threading.Thread(target=self._client_to_server, args=(client, upstream, state), daemon=True).start()
            threading.Thread(target=self._server_to_client, args=(client, upstream, state), daemon=True).start()

    def _cut(self, client: socket.socket, upstream: socket.socket) -> None:
        self.cuts += 1
        for sock in (client, upstream):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def _client_to_server(self, client: socket.socket, upstream: socket.socket, state: dict[str, bytes | None]) -> None:
        buffer = b""
        try:
            while True:
                data = client.recv(65536)
                if not data:
                    break
                buffer += data
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    line += b"\n"
                    rule = self._match(line)
                    if rule and rule.when == "before":
                        self._cut(client, upstream)
                        return
                    upstream.sendall(line)
                    if rule and rule.when == "after_forward":
                        self._cut(client, upstream)
                        return
                    if rule and rule.when == "after_reply":
                        state["cut_after_tag"] = line.split(b" ", 1)[0]
                if buffer and len(buffer) > 65536:  # a literal without a newline yet
                    upstream.sendall(buffer)
                    buffer = b""
            if buffer:
                upstream.sendall(buffer)
        except OSError:
            pass
        finally:
            for sock in (client, upstream):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def _server_to_client(self, client: socket.socket, upstream: socket.socket, state: dict[str, bytes | None]) -> None:
        pending = b""
        try:
            while True:
                data = upstream.recv(65536)
                if not data:
                    break
                tag = state.get("cut_after_tag")
                if tag:
                    pending += data
                    if re.search(rb"(^|\r\n)" + re.escape(tag) + rb" (OK|NO|BAD)", pending):
                        # The server did the command; the client never hears it did.
                        self._cut(client, upstream)
                        return
                    if len(pending) > 1 << 20:
                        pending = pending[-4096:]
                    continue
                client.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (client, upstream):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
