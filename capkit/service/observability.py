"""Prometheus metrics on a per-app registry, the request-timing middleware and ``/metrics``.

Soft limits are exported as pairs an analysis can divide like CPU use: ``capkit_model_slots_in_use``
over ``capkit_model_slots``, ``capkit_db_pool_checked_out`` over ``capkit_db_pool_limit``. Each
pool also counts its busy time (``capkit_model_slots_busy_seconds_total``,
``capkit_db_pool_busy_seconds_total``: seconds in use summed over its slots or connections), whose
rate between two scrapes is the exact time-averaged number in use — a gauge read once per scrape is
one point of a level that changes every few milliseconds. Next to
them the event loop's lag (``capkit_event_loop_lag_seconds``) and the service's own HTTP body bytes
(``capkit_http_request_bytes_total``, ``capkit_http_response_bytes_total``).
"""

from __future__ import annotations

import threading
import time

from fastapi import APIRouter, Request, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from starlette.routing import Match

from capkit.service.looplag import LoopLagMonitor

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2, 5, 10, 30)


class Metrics:
    """Every metric the service exports, registered on its own :class:`CollectorRegistry`."""

    def __init__(self) -> None:
        self.registry = r = CollectorRegistry(auto_describe=True)
        # process_cpu_seconds_total, process_resident_memory_bytes, …: what `capkit run --prometheus`
        # maps by default, so the reference service can be measured like any other target
        ProcessCollector(registry=r)
        self.requests = Counter("capkit_http_requests", "HTTP requests by route and status",
                                ["method", "route", "status"], registry=r)
        self.latency = Histogram("capkit_http_request_duration_seconds", "HTTP request latency (whole body)",
                                 ["method", "route"], buckets=LATENCY_BUCKETS, registry=r)
        # a plain count read at scrape time: the middleware runs on the event loop, and two locked
        # Gauge updates per request cost more than the count is worth
        self.in_flight_now = 0
        self.in_flight = Gauge("capkit_http_requests_in_flight", "HTTP requests being served", registry=r)
        self.in_flight.set_function(lambda: self.in_flight_now)
        # body bytes, plain counts for the same reason (exported by _TrafficCollector)
        self.request_bytes = 0
        self.response_bytes = 0
        self.loop_lag = LoopLagMonitor()
        self.loop_lag_gauge = Gauge("capkit_event_loop_lag_seconds",
                                    "worst event-loop wake-up delay since the previous scrape (reset by the scrape)",
                                    registry=r)
        self.loop_lag_gauge.set_function(self.loop_lag.take_max)
        r.register(_TrafficCollector(self))
        self.model_queue_wait = Histogram("capkit_model_queue_wait_seconds", "wait for a generation slot",
                                          ["model"], buckets=LATENCY_BUCKETS, registry=r)
        self.model_requests = Counter("capkit_model_requests", "model admissions by outcome (ok/skipped/failed)",
                                      ["model", "outcome"], registry=r)
        self.model_fallbacks = Counter("capkit_model_fallbacks", "requests served by a fallback model",
                                       ["primary", "served_by"], registry=r)
        self.model_tokens = Counter("capkit_model_tokens", "tokens generated", ["model"], registry=r)
        self.ws_connections = Gauge("capkit_websocket_connections", "open WebSocket connections", registry=r)
        self.ws_messages = Counter("capkit_websocket_messages", "chat messages received over WebSocket", registry=r)
        self.rate_limited = Counter("capkit_rate_limit_rejections", "requests refused with 429", ["scope"], registry=r)
        self._collector: _StateCollector | None = None

    def attach(self, state) -> None:
        """Export the live gauges of ``state`` (pool, caches, models, breaker) at scrape time."""
        if self._collector is None:
            self._collector = _StateCollector(state)
            self.registry.register(self._collector)
        self._collector.state = state  # a restarted lifespan replaces the state, not the collector


class _TrafficCollector:
    def __init__(self, metrics: Metrics):
        self.metrics = metrics

    def describe(self):
        return []

    def collect(self):
        m = self.metrics
        yield CounterMetricFamily("capkit_http_request_bytes", "HTTP request body bytes received",
                                  value=m.request_bytes)
        yield CounterMetricFamily("capkit_http_response_bytes", "HTTP response body bytes sent",
                                  value=m.response_bytes)


class BusyClock:
    """Seconds in use, summed over a pool's members: the time integral of how many are in use.

    ``add(+1)`` when one is taken and ``add(-1)`` when it comes back (from any thread);
    ``seconds()`` is the integral up to now, a counter whose rate is the mean number in use.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._level = 0
        self._total = 0.0
        self._since = time.monotonic()

    def add(self, delta: int) -> None:
        with self._lock:
            now = time.monotonic()
            self._total += self._level * (now - self._since)
            self._since, self._level = now, self._level + delta

    def seconds(self) -> float:
        with self._lock:
            return self._total + self._level * (time.monotonic() - self._since)

    @property
    def level(self) -> int:
        """How many are in use now."""
        return self._level


def watch_pool(engine) -> BusyClock | None:
    """A :class:`BusyClock` fed by ``engine``'s checkouts and checkins; None for a pool without
    limits (see :func:`pool_limits`), which exports no pool series."""
    if pool_limits(engine.pool) is None:
        return None
    from sqlalchemy import event

    clock = BusyClock()
    event.listen(engine, "checkout", lambda *_: clock.add(1))
    event.listen(engine, "checkin", lambda *_: clock.add(-1))
    return clock


def pool_limits(pool) -> tuple[int, int, int, int | None] | None:
    """``(size, checked_out, overflow, limit)`` of a SQLAlchemy ``QueuePool``, else None.

    ``limit`` is pool_size + max_overflow, the most connections the pool hands out before a
    checkout waits; None for an unbounded pool (max_overflow -1). A StaticPool (in-memory
    SQLite: one shared connection) or a NullPool has no such numbers: None, so no series is
    exported rather than one that would read as a limit.
    """
    if not hasattr(pool, "checkedout"):
        return None
    max_overflow = getattr(pool, "_max_overflow", -1)  # SQLAlchemy has no public accessor for it
    limit = pool.size() + max_overflow if max_overflow >= 0 else None
    return pool.size(), pool.checkedout(), max(0, pool.overflow()), limit


class _StateCollector:
    def __init__(self, state):
        self.state = state

    def describe(self):
        return []

    def collect(self):
        s = self.state
        size = GaugeMetricFamily("capkit_db_pool_size", "configured pool size")
        out = GaugeMetricFamily("capkit_db_pool_checked_out", "connections in use")
        over = GaugeMetricFamily("capkit_db_pool_overflow", "connections beyond the pool size")
        limit = GaugeMetricFamily("capkit_db_pool_limit",
                                  "most connections the pool hands out (pool_size + max_overflow)")
        pool = pool_limits(s.engine.pool)
        if pool is not None:
            for family, value in zip((size, out, over, limit), pool):
                if value is not None:
                    family.add_metric([], value)
        yield from (size, out, over, limit)
        if getattr(s, "db_pool_busy", None) is not None:
            busy = CounterMetricFamily("capkit_db_pool_busy_seconds",
                                       "connection-seconds checked out (its rate: mean connections in use)")
            busy.add_metric([], s.db_pool_busy.seconds())
            yield busy
        guard = getattr(s, "redis_guard", None)
        degraded = GaugeMetricFamily("capkit_redis_degraded",
                                     "1 while Redis is down and caches/limits run in-process")
        degraded.add_metric([], 1.0 if guard is not None and guard.degraded else 0.0)
        yield degraded
        hits = CounterMetricFamily("capkit_cache_hits", "cache hits", labels=["cache"])
        misses = CounterMetricFamily("capkit_cache_misses", "cache misses", labels=["cache"])
        evictions = CounterMetricFamily("capkit_cache_evictions", "entries evicted for space", labels=["cache"])
        errors = CounterMetricFamily("capkit_cache_errors", "cache backend errors", labels=["cache"])
        for cache in (s.response_cache, s.analytics_cache):
            hits.add_metric([cache.name], cache.stats.hits)
            misses.add_metric([cache.name], cache.stats.misses)
            evictions.add_metric([cache.name], cache.stats.evictions)
            errors.add_metric([cache.name], cache.stats.errors)
        yield from (hits, misses, evictions, errors)
        depth = GaugeMetricFamily("capkit_model_queue_depth", "requests waiting for a model", labels=["model"])
        active = GaugeMetricFamily("capkit_model_active", "generations running (same as capkit_model_slots_in_use)",
                                   labels=["model"])
        in_use = GaugeMetricFamily("capkit_model_slots_in_use", "generation slots in use (generations running)",
                                   labels=["model"])
        slots = GaugeMetricFamily("capkit_model_slots", "generation slots (CAPKIT_MODEL_MAX_CONCURRENT)",
                                  labels=["model"])
        healthy = GaugeMetricFamily("capkit_model_healthy", "1 when the backend is healthy", labels=["model"])
        busy = CounterMetricFamily("capkit_model_slots_busy_seconds",
                                   "slot-seconds in use (its rate: mean slots in use)", labels=["model"])
        for slot in s.models.slots:
            busy.add_metric([slot.name], slot.busy.seconds())
            depth.add_metric([slot.name], slot.waiting)
            active.add_metric([slot.name], slot.active)
            in_use.add_metric([slot.name], slot.active)
            slots.add_metric([slot.name], slot.max_concurrent)
            healthy.add_metric([slot.name], 1 if slot.healthy else 0)
        yield from (depth, active, in_use, slots, healthy, busy)
        state = GaugeMetricFamily("capkit_circuit_breaker_open", "1 when open, 0.5 half-open, 0 closed",
                                  labels=["name"])
        state.add_metric([s.breaker.name], {"closed": 0, "half_open": 0.5, "open": 1}[s.breaker.state])
        yield state


def _route_of(app, scope) -> str:
    route = scope.get("route")
    if route is not None and hasattr(route, "path"):
        return route.path
    for candidate in app.routes:
        match, _ = candidate.matches(scope)
        if match == Match.FULL:
            return getattr(candidate, "path", "other")
    return "unmatched"  # unknown paths share one label: no cardinality blow-up


class MetricsMiddleware:
    """Pure ASGI middleware: counts, times (until the last body byte), tracks in-flight and sums
    the body bytes received and sent (HTTP only: headers and WebSocket frames are not counted)."""

    def __init__(self, app, metrics: Metrics):
        self.app = app
        self.metrics = metrics
        self._series: dict[tuple[str, str, str], tuple] = {}  # labelled children, looked up once

    def _observe(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, str(status))
        series = self._series.get(key)
        if series is None:
            m = self.metrics
            series = self._series[key] = (m.latency.labels(method, route), m.requests.labels(*key))
        series[0].observe(seconds)
        series[1].inc()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        m = self.metrics
        status = 500

        async def _send(message):
            nonlocal status
            if message["type"] == "http.response.body":
                m.response_bytes += len(message.get("body", b""))
            elif message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        async def _receive():
            message = await receive()
            if message["type"] == "http.request":
                m.request_bytes += len(message.get("body", b""))
            return message

        m.in_flight_now += 1
        t0 = time.perf_counter()
        try:
            await self.app(scope, _receive, _send)
        finally:
            m.in_flight_now -= 1
            route = _route_of(scope["app"], scope) if "app" in scope else "unmatched"
            self._observe(scope.get("method", "GET"), route, status, time.perf_counter() - t0)


class BodySizeLimit:
    """Answer 413 at once to a request whose declared ``Content-Length`` exceeds ``max_bytes``."""

    def __init__(self, app, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            declared = next((v for k, v in scope.get("headers") or () if k == b"content-length"), None)
            if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
                body = f'{{"detail": "request body of {int(declared)} bytes exceeds the limit of {self.max_bytes}"}}'
                await send({"type": "http.response.start", "status": 413,
                            "headers": [(b"content-type", b"application/json")]})
                await send({"type": "http.response.body", "body": body.encode()})
                return
        await self.app(scope, receive, send)


router = APIRouter(tags=["observability"])


@router.get("/metrics", include_in_schema=False)
async def metrics_endpoint(request: Request) -> Response:
    metrics: Metrics = request.app.state.metrics
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)
