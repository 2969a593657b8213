"""Redis health shared by the cache and the rate limiter: degrade to in-process, come back on its own.

When a Redis call fails the guard marks Redis *degraded*; callers then use their in-process
fallback. At most every ``retry_s`` seconds one caller pings Redis (with a short timeout);
when it answers, the service returns to Redis.
"""

from __future__ import annotations

import asyncio
import logging
import time

log = logging.getLogger(__name__)


class RedisGuard:
    def __init__(self, client, *, retry_s: float = 2.0, ping_timeout_s: float = 0.5):
        self.client = client
        self.retry_s = retry_s
        self.ping_timeout_s = ping_timeout_s
        self.degraded = False
        self.degraded_since: float | None = None
        self.failures = 0
        self.recoveries = 0
        self._next_try = 0.0

    def failed(self, exc: BaseException) -> None:
        """Record a failed Redis call; the first one switches to the fallback."""
        self.failures += 1
        if not self.degraded:
            log.warning("redis unavailable, serving from in-process fallback: %s", exc)
            self.degraded = True
            self.degraded_since = time.time()
        self._next_try = time.monotonic() + self.retry_s

    async def available(self) -> bool:
        """True when Redis should be used; while degraded, probes it every ``retry_s``."""
        if not self.degraded:
            return True
        if time.monotonic() < self._next_try:
            return False
        self._next_try = time.monotonic() + self.retry_s
        try:
            await asyncio.wait_for(self.client.ping(), self.ping_timeout_s)
        except Exception:  # noqa: BLE001 - still down
            return False
        log.warning("redis is back after %.1f s; leaving the in-process fallback", time.time() - self.degraded_since)
        self.degraded = False
        self.degraded_since = None
        self.recoveries += 1
        return True

    def state(self) -> str:
        return "degraded (in-process fallback)" if self.degraded else "ok"
