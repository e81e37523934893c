"""The last heartbeat of each background loop of this process, for `/ready`.

A loop beats when it starts and after every pass that completed; a loop whose thread died,
hangs, or fails every pass stops beating and `/ready` turns 503 once its beat is older than
`max_age(interval)`. In memory, so it sees the loops of its own process only (the ones
`mailwidget serve` starts beside the API); a shared record belongs to the job queue."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

GRACE = 120.0  # seconds a pass may overrun its interval (many mailboxes, a slow server)


@dataclass(frozen=True)
class Beat:
    at: float  # time.monotonic() of the last beat
    interval: float  # seconds between passes

    @property
    def max_age(self) -> float:
        return 2 * self.interval + GRACE


_beats: dict[str, Beat] = {}
_lock = threading.Lock()


def beat(loop: str, interval: float) -> None:
    with _lock:
        _beats[loop] = Beat(time.monotonic(), interval)


def forget(loop: str) -> None:
    """A loop that stopped on purpose (shutdown) is no longer expected to beat."""
    with _lock:
        _beats.pop(loop, None)


def status() -> dict[str, dict[str, object]]:
    """Per loop: whether it beat recently enough, the beat's age and the age allowed."""
    now = time.monotonic()
    with _lock:
        beats = dict(_beats)
    return {
        loop: {"ok": now - b.at <= b.max_age, "age_s": round(now - b.at, 1), "max_age_s": round(b.max_age, 1)}
        for loop, b in sorted(beats.items())
    }
