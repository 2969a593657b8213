"""Everything one app instance owns (engine, caches, limiter, models, breaker), built in its lifespan."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Callable

import anyio
from sqlalchemy import Engine, exc, text

from capkit.config import Settings
from capkit.service.breaker import CircuitBreaker
from capkit.service.cache import InProcessCache, RedisCache
from capkit.service.db import init_schema, make_engine
from capkit.service.models import ModelManager, build_manager
from capkit.service.observability import BusyClock, Metrics, watch_pool
from capkit.service.ratelimit import RateLimiter
from capkit.service.redisguard import RedisGuard
from capkit.service.unavailable import Unavailable

# errors meaning "the database cannot be reached or is broken", as opposed to a bad query
_DB_DOWN = (exc.OperationalError, exc.InterfaceError, exc.DisconnectionError, ConnectionError, OSError)


class DatabaseUnavailable(Unavailable):
    """The database failed (counted by the breaker) or its pool is exhausted."""


@dataclass
class ServiceState:
    settings: Settings
    engine: Engine
    breaker: CircuitBreaker
    response_cache: Any
    analytics_cache: Any
    limiter: RateLimiter
    models: ModelManager
    metrics: Metrics
    redis: Any = None
    redis_guard: Any = None
    db_pool_busy: BusyClock | None = None  # connection-seconds checked out (capkit_db_pool_busy_seconds)

    async def run_db(self, fn: Callable, *args, **kwargs):
        """Run blocking ``fn(engine, *args)`` in a worker thread, guarded by the circuit breaker."""
        self.breaker.before()
        try:
            result = await anyio.to_thread.run_sync(functools.partial(fn, self.engine, *args, **kwargs))
        except exc.TimeoutError:
            self.breaker.release()  # pool exhausted: the database is busy, not down
            raise DatabaseUnavailable("database connection pool exhausted", retry_after=1) from None
        except exc.DBAPIError as err:
            if isinstance(err, _DB_DOWN) or err.connection_invalidated:
                self.breaker.failure()
                raise DatabaseUnavailable(f"database unavailable: {err.orig.__class__.__name__}",
                                          retry_after=self.breaker.reset_s) from None
            self.breaker.success()  # the database answered; the query was wrong (a bug)
            raise
        except _DB_DOWN as err:
            self.breaker.failure()
            raise DatabaseUnavailable(f"database unavailable: {err.__class__.__name__}",
                                      retry_after=self.breaker.reset_s) from None
        except BaseException:
            self.breaker.release()
            raise
        self.breaker.success()
        return result

    async def db_ok(self) -> str:
        """``"ok"``, ``"circuit open"`` or ``"unavailable"`` (for ``/healthz``)."""
        try:
            await self.run_db(_ping)
            return "ok"
        except Unavailable as err:
            return "circuit open" if self.breaker.state != "closed" else f"unavailable ({err.detail})"


def _ping(engine: Engine) -> None:
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))


async def build_state(settings: Settings, metrics: Metrics) -> ServiceState:
    """Create the engine, schema, caches, limiter, breaker and model manager for one app."""
    engine = make_engine(settings.database_url, pool_size=settings.db_pool_size,
                         max_overflow=settings.db_max_overflow, pool_timeout=settings.db_pool_timeout_s,
                         pgbouncer=settings.db_pgbouncer)
    pool_busy = watch_pool(engine)  # before the first checkout, so every checkin has its checkout
    try:
        await anyio.to_thread.run_sync(init_schema, engine)
    except exc.SQLAlchemyError:
        pass  # database down at start: the breaker and /healthz will report it
    redis = guard = None
    if settings.redis_url:
        import redis.asyncio as aioredis

        redis = aioredis.from_url(settings.redis_url, socket_timeout=2, socket_connect_timeout=2)
        guard = RedisGuard(redis, retry_s=settings.redis_retry_s)
        response_cache = RedisCache("response", redis, prefix=settings.redis_prefix, guard=guard,
                                    fallback=InProcessCache("response", max_entries=settings.cache_max_entries))
        analytics_cache = RedisCache("analytics", redis, prefix=settings.redis_prefix, guard=guard,
                                     fallback=InProcessCache("analytics", max_entries=settings.cache_max_entries))
    else:
        response_cache = InProcessCache("response", max_entries=settings.cache_max_entries)
        analytics_cache = InProcessCache("analytics", max_entries=settings.cache_max_entries)
    state = ServiceState(
        settings=settings,
        engine=engine,
        db_pool_busy=pool_busy,
        breaker=CircuitBreaker("database", failures=settings.breaker_failures, reset_s=settings.breaker_reset_s),
        response_cache=response_cache,
        analytics_cache=analytics_cache,
        limiter=RateLimiter(settings.rate_limit_chat, redis_url=settings.redis_url, prefix=settings.redis_prefix,
                            guard=guard),
        models=build_manager(settings, metrics),
        metrics=metrics,
        redis=redis,
        redis_guard=guard,
    )
    return state


async def close_state(state: ServiceState) -> None:
    await state.models.aclose()
    if state.redis is not None:
        await state.redis.aclose()
    state.engine.dispose()
