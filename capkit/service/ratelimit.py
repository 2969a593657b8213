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
    worker and replica; otherwise they live in this process. A storage error lets the
    request through (fail open) and is counted in ``errors``.
    """

    def __init__(self, limit: str, *, redis_url: str | None = None, prefix: str = "capkit"):
        self.limit = limit
        self.item = parse(limit)
        if redis_url:
            uri = redis_url if redis_url.startswith("async+") else f"async+{redis_url}"
            self.storage = RedisStorage(uri, implementation="redispy", key_prefix=f"{prefix}:rl")
            self.backend = "redis"
        else:
            self.storage = MemoryStorage()
            self.backend = "memory"
        self._strategy = MovingWindowRateLimiter(self.storage)
        self.rejections = 0
        self.errors = 0

    async def hit(self, scope: str, key: str) -> float | None:
        """Count one request; return ``None`` when allowed, else the seconds to wait."""
        try:
            if await self._strategy.hit(self.item, scope, key):
                return None
            stats = await self._strategy.get_window_stats(self.item, scope, key)
        except Exception as exc:  # noqa: BLE001 - never fail a request because the limiter store is down
            self.errors += 1
            log.warning("rate limiter storage failed, letting the request through: %s", exc)
            return None
        self.rejections += 1
        return float(max(1, math.ceil(stats.reset_time - time.time())))

    async def reset(self) -> None:
        await self.storage.reset()
