"""Redis as the service's cache and rate-limit store: memory, evictions, hit ratio, clients."""

from __future__ import annotations

import time

from capkit.errors import ConfigError, redact_url

MIB = 1024 * 1024


class RedisCollector:
    """Samples Redis ``INFO``.

    Each sample gives ``redis_used_memory_mib``, ``redis_connected_clients`` and, from the
    second sample on, ``redis_evicted_per_s``, ``redis_hits_per_s``, ``redis_misses_per_s`` and
    ``redis_hit_ratio`` over the interval (absent when there were no lookups).
    """

    source = "redis"

    def __init__(self, url: str):
        import redis

        self.safe_url = redact_url(url)
        self._client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        try:
            self._client.ping()
        except redis.RedisError as exc:
            raise ConfigError(f"cannot monitor Redis at {self.safe_url}: {exc}") from None
        self._prev: tuple[float, dict] | None = None

    def sample(self) -> dict[str, float]:
        try:
            info = self._client.info()
        except Exception:  # noqa: BLE001 - a missed sample must not end the run
            return {}
        now = time.monotonic()
        out = {"redis_used_memory_mib": info.get("used_memory", 0) / MIB,
               "redis_connected_clients": float(info.get("connected_clients", 0))}
        counters = {k: float(info.get(k, 0)) for k in ("evicted_keys", "keyspace_hits", "keyspace_misses")}
        if self._prev is not None and now > self._prev[0]:
            dt = now - self._prev[0]
            d = {k: max(v - self._prev[1][k], 0.0) for k, v in counters.items()}
            out["redis_evicted_per_s"] = d["evicted_keys"] / dt
            out["redis_hits_per_s"] = d["keyspace_hits"] / dt
            out["redis_misses_per_s"] = d["keyspace_misses"] / dt
            lookups = d["keyspace_hits"] + d["keyspace_misses"]
            if lookups:
                out["redis_hit_ratio"] = d["keyspace_hits"] / lookups
        self._prev = (now, counters)
        return out

    def close(self) -> None:
        self._client.close()
