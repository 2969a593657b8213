"""``/api/analytics``: SQL aggregates over the service's data, each cached with a TTL."""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated, Callable

from fastapi import APIRouter, Query, Response
from sqlalchemy import Engine, case, distinct, func, select

from capkit.service.db import conversations, messages, model_calls, users, utcnow
from capkit.service.deps import AdminUser, CurrentUser, StateDep
from capkit.service.responses import json_response

router = APIRouter(prefix="/api/analytics", tags=["analytics"])


def summary(engine: Engine) -> dict:
    """Counts of users, conversations, messages (by role), model calls and recent activity."""
    week_ago = utcnow() - dt.timedelta(days=7)
    with engine.connect() as conn:
        count = lambda t: conn.execute(select(func.count()).select_from(t)).scalar()  # noqa: E731
        by_role = dict(conn.execute(select(messages.c.role, func.count()).group_by(messages.c.role)).all())
        calls, tokens = conn.execute(select(func.count(), func.coalesce(func.sum(model_calls.c.tokens), 0))).one()
        active = conn.execute(select(func.count(distinct(messages.c.user_id)))
                              .where(messages.c.created_at >= week_ago)).scalar()
        n_conv, n_msg = count(conversations), count(messages)
        return {"users": count(users), "conversations": n_conv, "messages": n_msg,
                "messages_by_role": {k: int(v) for k, v in sorted(by_role.items())},
                "model_calls": int(calls), "tokens_generated": int(tokens), "active_users_7d": int(active),
                "avg_messages_per_conversation": round(n_msg / n_conv, 3) if n_conv else 0.0}


def conversation_trends(engine: Engine, days: int) -> dict:
    """Conversations started and messages sent per day over the last ``days`` days."""
    since = (utcnow() - dt.timedelta(days=days)).replace(hour=0, minute=0, second=0, microsecond=0)
    out: dict[str, dict] = {}
    with engine.connect() as conn:
        for key, table in (("conversations", conversations), ("messages", messages)):
            day = func.date(table.c.created_at).label("day")
            rows = conn.execute(select(day, func.count()).where(table.c.created_at >= since)
                                .group_by(day).order_by(day)).all()
            for d, n in rows:
                out.setdefault(str(d), {"day": str(d), "conversations": 0, "messages": 0})[key] = int(n)
    return {"days": days, "since": since.date().isoformat(), "series": [out[k] for k in sorted(out)]}


def model_metrics(engine: Engine) -> dict:
    """Per model: calls, tokens, latency, cache hits, fallbacks and failures."""
    as_int = lambda cond: func.sum(case((cond, 1), else_=0))  # noqa: E731
    c = model_calls.c
    stmt = (select(c.model, func.count(), func.sum(c.tokens), func.avg(c.latency_ms), func.max(c.latency_ms),
                   as_int(c.cached.is_(True)), as_int(c.fallback.is_(True)), as_int(c.ok.is_(False)))
            .group_by(c.model).order_by(c.model))
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
    return {"models": [{"model": m, "calls": int(n), "tokens": int(t or 0), "avg_latency_ms": round(float(a or 0), 3),
                        "max_latency_ms": float(mx or 0), "cached": int(ca or 0), "fallbacks": int(fb or 0),
                        "failures": int(fl or 0)} for m, n, t, a, mx, ca, fb, fl in rows]}


def volume_by_user(engine: Engine, limit: int) -> dict:
    """The ``limit`` users with the most messages, with their conversation counts."""
    stmt = (select(users.c.username, func.count(messages.c.id).label("n"),
                   func.count(distinct(messages.c.conversation_id)))
            .join(messages, messages.c.user_id == users.c.id)
            .group_by(users.c.id, users.c.username).order_by(func.count(messages.c.id).desc(), users.c.username)
            .limit(limit))
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
    return {"users": [{"username": u, "messages": int(n), "conversations": int(c)} for u, n, c in rows]}


async def cached(state, key: str, fn: Callable, *args) -> Response:
    """Answer from the analytics cache, or run ``fn`` (breaker-guarded) and cache it for the TTL.

    The cache holds the JSON document and a hit is sent as it is (no decode and re-encode);
    ``X-Cache`` says which it was."""
    raw = await state.analytics_cache.get(key)
    if raw is not None:
        return json_response(raw, {"X-Cache": "hit"})
    body = json.dumps(await state.run_db(fn, *args), separators=(",", ":"))
    await state.analytics_cache.set(key, body, state.settings.cache_ttl_s)
    return json_response(body, {"X-Cache": "miss"})


# response_model=dict: the OpenAPI schema these routes had when they returned their dicts
@router.get("/summary", response_model=dict)
async def get_summary(state: StateDep, _user: CurrentUser) -> Response:
    return await cached(state, "summary", summary)


@router.get("/trends", response_model=dict)
async def get_trends(state: StateDep, _user: CurrentUser, days: Annotated[int, Query(ge=1, le=365)] = 30) -> Response:
    return await cached(state, f"trends:{days}", conversation_trends, days)


@router.get("/models", response_model=dict)
async def get_model_metrics(state: StateDep, _admin: AdminUser) -> Response:
    return await cached(state, "models", model_metrics)


@router.get("/users", response_model=dict)
async def get_volume_by_user(state: StateDep, _user: CurrentUser,
                             limit: Annotated[int, Query(ge=1, le=1000)] = 20) -> Response:
    return await cached(state, f"users:{limit}", volume_by_user, limit)
