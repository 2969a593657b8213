"""The app factory: ``create_app(settings)`` builds the FastAPI app; its lifespan owns the resources."""

from __future__ import annotations

import os
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse

from capkit.config import Settings
from capkit.service import analytics, auth, chat, observability, openai, ws
from capkit.service.agent import ConversationNotFound
from capkit.service.observability import BodySizeLimit, Metrics, MetricsMiddleware
from capkit.service.state import build_state, close_state
from capkit.service.unavailable import Unavailable


def serve_routes(app: FastAPI, router: APIRouter) -> None:
    """Serve ``router``'s routes (prefix, tags and dependencies already applied) from the app's own
    route list. ``include_router`` in FastAPI ≥ 0.137 keeps the router as a nested node that every
    request resolves twice: 74 k of the 505 k instructions of a validate request (callgrind,
    in-process), where bare FastAPI needs 333 k for its endpoint."""
    app.router.routes.extend(router.routes)


def create_app(settings: Settings) -> FastAPI:
    """Build the reference service for ``settings`` (nothing is connected until the lifespan starts).

    Use it inside ``with TestClient(app)`` or under uvicorn: the engine, caches, limiter and
    model backends live from startup to shutdown.
    """
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        state = await build_state(settings, metrics)
        metrics.attach(state)
        app.state.service = state
        metrics.loop_lag.start()
        try:
            yield
        finally:
            await metrics.loop_lag.stop()
            await close_state(state)

    # FastAPI's native OpenTelemetry hooks are off: the service exports Prometheus (/metrics), and
    # the hooks' per-request provider check, with nothing configured to receive them, cost 152 →
    # 138 µs per validate request in-process
    app = FastAPI(title="capkit reference service", version="1", lifespan=lifespan,
                  telemetry={"tracing": False, "metrics": False, "logs": False})
    app.state.settings = settings
    app.state.metrics = metrics
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    if settings.fail_above_in_flight:  # inside the metrics middleware: its in-flight count includes this request
        app.add_middleware(Breakdown, metrics=metrics, above=settings.fail_above_in_flight, mode=settings.fail_mode)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    if settings.leak_bytes_per_request:
        app.state.leaked = []
        app.add_middleware(Leak, kept=app.state.leaked, size=settings.leak_bytes_per_request)
    for module in (auth, chat, analytics, ws, openai, observability):
        serve_routes(app, module.router)

    @app.exception_handler(Unavailable)
    async def _unavailable(_request: Request, err: Unavailable) -> JSONResponse:
        return JSONResponse({"detail": err.detail}, status_code=503, headers={"Retry-After": str(err.retry_after)})

    @app.exception_handler(ConversationNotFound)
    async def _not_found(_request: Request, err: ConversationNotFound) -> JSONResponse:
        return JSONResponse({"detail": str(err)}, status_code=404)

    @app.get("/healthz", tags=["health"])
    async def healthz(request: Request) -> JSONResponse:
        state = request.app.state.service
        db = await state.db_ok()
        cache_ok = await state.response_cache.ping()
        body = {"status": "ok" if db == "ok" else "degraded", "db": db,
                "cache": {"backend": state.response_cache.backend, "ok": cache_ok,
                          "redis": state.redis_guard.state() if state.redis_guard else "not configured"},
                "model": state.models.health(), "breaker": state.breaker.state,
                "rate_limit": {"backend": state.limiter.backend, "limit": state.limiter.limit}}
        return JSONResponse(body, status_code=200 if db == "ok" else 503)

    return app


OVERLOADED = b'{"detail": "overloaded on purpose (CAPKIT_FAIL_ABOVE_IN_FLIGHT)"}'


class Breakdown:
    """Fails under load on purpose (``CAPKIT_FAIL_ABOVE_IN_FLIGHT``, ``CAPKIT_FAIL_MODE``): with more
    than ``above`` requests in flight, answer 503 (``errors``) or end the process at once (``exit``,
    exit code 3, no clean-up — like an OOM kill). A known breakdown for the search's fault tests."""

    def __init__(self, app, *, metrics: Metrics, above: int, mode: str):
        self.app, self.metrics, self.above, self.mode = app, metrics, above, mode

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and self.metrics.in_flight_now > self.above:
            if self.mode == "exit":
                os._exit(3)
            await send({"type": "http.response.start", "status": 503,
                        "headers": [(b"content-type", b"application/json")]})
            await send({"type": "http.response.body", "body": OVERLOADED})
            return
        await self.app(scope, receive, send)


class Leak:
    """Keeps ``size`` bytes per request for ever (``CAPKIT_LEAK_BYTES_PER_REQUEST``): a known leak
    for the soak tests. The bytes are written, so they are resident, not lazily mapped zeros."""

    def __init__(self, app, *, kept: list, size: int):
        self.app, self.kept, self.size = app, kept, size

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            self.kept.append(b"\x01" * self.size)
        await self.app(scope, receive, send)
