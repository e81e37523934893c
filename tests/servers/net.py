"""Loopback and process helpers shared by the server fixtures."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float = 20.0, what: str = "server", alive: Callable[[], bool] = lambda: True) -> None:
    """Return once 127.0.0.1:port accepts; fail fast if `alive()` says the server died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if not alive():
                raise RuntimeError(f"{what} exited before listening on port {port}") from None
            time.sleep(0.02)
    raise RuntimeError(f"{what} did not start listening on port {port}")


def die_with_parent(signal_name: str = "TERM", user: str | None = None) -> list[str]:
    """An argv prefix: run as `user` (if given), signalled by the kernel when we die.

    A pytest run killed with SIGKILL (a CI timeout, a second Ctrl-C) runs no fixture
    teardown; without the parent-death signal its Dovecot and PostgreSQL would live on,
    orphaned. `setpriv` sets it after switching user (a switch clears it) and then execs,
    so it lands on the server itself, unlike `runuser`, which stays in between.
    """
    switch = [f"--reuid={user}", f"--regid={user}", "--init-groups"] if user else []
    return ["setpriv", *switch, "--pdeathsig", signal_name, "--"]
