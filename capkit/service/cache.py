"""TTL caches for responses and analytics: in-process (LRU) or Redis, with hit/miss counts."""

from __future__ import annotations

import logging
import time
from collections import OrderedDict

log = logging.getLogger(__name__)


class CacheStats:
    """Plain counters read by the ``/metrics`` collector."""

    def __init__(self) -> None:
        self.hits = 0
        self.misses = 0
        self.evictions = 0
        self.expirations = 0
        self.errors = 0


class InProcessCache:
    """An LRU dictionary with a TTL per entry and at most ``max_entries`` entries."""

    backend = "memory"

    def __init__(self, name: str, *, max_entries: int = 10_000):
        self.name = name
        self.max_entries = max_entries
        self.stats = CacheStats()
        self._data: OrderedDict[str, tuple[float, str]] = OrderedDict()

    async def get(self, key: str) -> str | None:
        item = self._data.get(key)
        if item is not None and item[0] < time.monotonic():
            del self._data[key]
            self.stats.expirations += 1
            item = None
        if item is None:
            self.stats.misses += 1
            return None
        self._data.move_to_end(key)
        self.stats.hits += 1
        return item[1]

    async def set(self, key: str, value: str, ttl_s: float) -> None:
        if ttl_s <= 0:
            return
        self._data[key] = (time.monotonic() + ttl_s, value)
        self._data.move_to_end(key)
        while len(self._data) > self.max_entries:
            self._data.popitem(last=False)
            self.stats.evictions += 1

    async def ping(self) -> bool:
        return True

    def size(self) -> int:
        return len(self._data)

    async def aclose(self) -> None:
        self._data.clear()


class RedisCache:
    """The same interface on Redis (``SET … PX``), shared by workers and replicas.

    A Redis error switches to the in-process ``fallback`` (the ``guard`` marks Redis degraded
    and probes it until it is back): the cache never fails a request.
    """

    def __init__(self, name: str, client, *, prefix: str, guard, fallback: InProcessCache):
        self.name = name
        self.stats = CacheStats()
        self._client = client
        self._prefix = f"{prefix}:cache:{name}:"
        self.guard = guard
        self.fallback = fallback
        fallback.stats = self.stats  # one set of counters, whichever store answers

    @property
    def backend(self) -> str:
        return "memory (redis degraded)" if self.guard.degraded else "redis"

    async def get(self, key: str) -> str | None:
        if not await self.guard.available():
            return await self.fallback.get(key)
        try:
            value = await self._client.get(self._prefix + key)
        except Exception as exc:  # noqa: BLE001 - any Redis trouble: fall back
            self.stats.errors += 1
            self.guard.failed(exc)
            return await self.fallback.get(key)
        if value is None:
            self.stats.misses += 1
            return None
        self.stats.hits += 1
        return value.decode() if isinstance(value, bytes) else value

    async def set(self, key: str, value: str, ttl_s: float) -> None:
        if ttl_s <= 0:
            return
        if not await self.guard.available():
            await self.fallback.set(key, value, ttl_s)
            return
        try:
            await self._client.set(self._prefix + key, value, px=max(1, int(ttl_s * 1000)))
        except Exception as exc:  # noqa: BLE001
            self.stats.errors += 1
            self.guard.failed(exc)
            await self.fallback.set(key, value, ttl_s)

    async def ping(self) -> bool:
        return await self.guard.available()

    def size(self) -> int:
        return self.fallback.size() if self.guard.degraded else -1  # Redis INFO reports its own size

    async def aclose(self) -> None:
        await self.fallback.aclose()  # the client is owned by the service state
