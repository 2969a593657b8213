"""Per-user rate limits with the ``limits`` library: in-process, or shared through Redis."""

from __future__ import annotations

import logging
import math
import time

from limits import parse
from limits.aio.storage import MemoryStorage, RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter

log = logging.getLogger(__name__)


class RateLimiter:
    """A moving-window limit such as ``"100/minute"`` per (scope, key).

    With ``redis_url`` the counts live in Redis under ``prefix`` and are shared by every
    worker and replica; otherwise they live in this process. When Redis fails, the ``guard``
    marks it degraded and the limit is enforced in-process until Redis is back (never open).
    """

    def __init__(self, limit: str, *, redis_url: str | None = None, prefix: str = "capkit", guard=None):
        self.limit = limit
        self.item = parse(limit)
        self.guard = guard
        self._memory = MovingWindowRateLimiter(MemoryStorage())
        self._redis = None
        if redis_url:
            uri = redis_url if redis_url.startswith("async+") else f"async+{redis_url}"
            self.storage = RedisStorage(uri, implementation="redispy", key_prefix=f"{prefix}:rl")
            self._redis = MovingWindowRateLimiter(self.storage)
        self.rejections = 0
        self.errors = 0

    @property
    def backend(self) -> str:
        if self._redis is None:
            return "memory"
        return "memory (redis degraded)" if self.guard is not None and self.guard.degraded else "redis"

    async def _window(self, strategy, scope: str, key: str) -> float | None:
        if await strategy.hit(self.item, scope, key):
            return None
        stats = await strategy.get_window_stats(self.item, scope, key)
        return float(max(1, math.ceil(stats.reset_time - time.time())))

    async def hit(self, scope: str, key: str) -> float | None:
        """Count one request; return ``None`` when allowed, else the seconds to wait."""
        wait = None
        if self._redis is not None and (self.guard is None or await self.guard.available()):
            try:
                wait = await self._window(self._redis, scope, key)
            except Exception as exc:  # noqa: BLE001 - Redis down: enforce the limit in-process instead
                self.errors += 1
                if self.guard is not None:
                    self.guard.failed(exc)
                log.warning("rate limiter: redis failed, limiting in-process: %s", exc)
                wait = await self._window(self._memory, scope, key)
        else:
            wait = await self._window(self._memory, scope, key)
        if wait is not None:
            self.rejections += 1
        return wait

    async def reset(self) -> None:
        await self._memory.storage.reset()
        if self._redis is not None:
            await self.storage.reset()
