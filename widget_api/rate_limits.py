"""Per-token rate limits on the expensive endpoints (raw upload, CSV import, mailbox test):
one token must not keep the server's threads, memory or outbound connections busy.

A token bucket per (token, endpoint class), in this process's memory: a burst of up to
`per_minute` requests, then `per_minute` a minute. Several server processes each count on
their own, which bounds one token per process, the thing that stalls a process.
The endpoints take their request through `widget_api.deps.rate_limited`."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

from crm.domain.errors import RateLimited

# Requests a minute per token, by endpoint class (MAILWIDGET_RATE_LIMITS overrides them).
# The public web forms count per client address ("form_page", "form_submit_ip") and per
# form ("form_submit") instead: they have no token.
DEFAULT_LIMITS = {"upload": 30, "import": 5, "mailbox_test": 10, "form_page": 120, "form_submit_ip": 10, "form_submit": 120}
MAX_BUCKETS = 10_000  # past it, full buckets (tokens at rest) are forgotten


class RateLimits:
    def __init__(self, limits: dict[str, int], clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = dict(limits)
        self._clock = clock
        self._buckets: dict[tuple[object, str], tuple[float, float]] = {}  # key -> (tokens, at)
        self._lock = threading.Lock()

    def take(self, key: object, endpoint: str) -> None:
        """One request of `key` on `endpoint`, or RateLimited saying when to try again."""
        per_minute = self.limits.get(endpoint, DEFAULT_LIMITS.get(endpoint, 0))
        if per_minute <= 0:
            return  # 0: no limit for this class
        rate = per_minute / 60.0
        now = self._clock()
        with self._lock:
            tokens, at = self._buckets.get((key, endpoint), (float(per_minute), now))
            tokens = min(float(per_minute), tokens + (now - at) * rate)
            if tokens < 1:
                self._buckets[(key, endpoint)] = (tokens, now)
                raise RateLimited(f"too many {endpoint} requests with this token", retry_after=math.ceil((1 - tokens) / rate))
            self._buckets[(key, endpoint)] = (tokens - 1, now)
            if len(self._buckets) > MAX_BUCKETS:
                self._forget_full(now)

    def _forget_full(self, now: float) -> None:
        for k, (tokens, at) in list(self._buckets.items()):
            limit = self.limits.get(k[1], DEFAULT_LIMITS.get(k[1], 0))
            if tokens + (now - at) * limit / 60.0 >= limit:
                del self._buckets[k]


def parse_limits(text: str) -> dict[str, int]:
    """"upload=30,import=5" → {"upload": 30, "import": 5}, over the defaults."""
    limits = dict(DEFAULT_LIMITS)
    for pair in text.split(","):
        name, sep, value = pair.partition("=")
        if sep and name.strip():
            limits[name.strip()] = int(value)
    return limits
