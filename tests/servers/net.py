"""Loopback and process helpers shared by the server fixtures."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

OWNER = ".owner"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(
    port: int, timeout: float = 20.0, what: str = "server", alive: Callable[[], bool] = lambda: True
) -> None:
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


def scratch_dir(prefix: str) -> Path:
    """A new temporary directory for a server, after deleting those of dead test runs.

    A killed run takes its servers along (see `die_with_parent`) but not their files;
    each directory names the process that made it, so the next run can tell.
    """
    for old in Path(tempfile.gettempdir()).glob(f"{prefix}*"):
        try:
            owner = int((old / OWNER).read_text())
        except (OSError, ValueError):
            continue  # not ours, or being made right now
        if not _alive(owner):
            shutil.rmtree(old, ignore_errors=True)
    directory = Path(tempfile.mkdtemp(prefix=prefix))
    (directory / OWNER).write_text(str(os.getpid()))
    return directory


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
