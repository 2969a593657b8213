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
    """The same interface on Redis (``SET … EX``); shared by workers and replicas.

    A Redis error counts as a miss (and in ``stats.errors``): the cache never fails a request.
    """

    backend = "redis"

    def __init__(self, name: str, client, *, prefix: str):
        self.name = name
        self.stats = CacheStats()
        self._client = client
        self._prefix = f"{prefix}:cache:{name}:"

    async def get(self, key: str) -> str | None:
        try:
            value = await self._client.get(self._prefix + key)
        except Exception as exc:  # noqa: BLE001 - any Redis trouble is a miss
            self.stats.errors += 1
            log.warning("cache %s: redis get failed: %s", self.name, exc)
            value = None
        if value is None:
            self.stats.misses += 1
            return None
        self.stats.hits += 1
        return value.decode() if isinstance(value, bytes) else value

    async def set(self, key: str, value: str, ttl_s: float) -> None:
        if ttl_s <= 0:
            return
        try:
            await self._client.set(self._prefix + key, value, px=max(1, int(ttl_s * 1000)))
        except Exception as exc:  # noqa: BLE001
            self.stats.errors += 1
            log.warning("cache %s: redis set failed: %s", self.name, exc)

    async def ping(self) -> bool:
        try:
            return bool(await self._client.ping())
        except Exception:  # noqa: BLE001
            return False

    def size(self) -> int:
        return -1  # unknown without a scan; Redis INFO reports it

    async def aclose(self) -> None:
        pass  # the client is owned by the service state
