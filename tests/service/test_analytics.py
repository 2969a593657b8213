import datetime as dt

import pytest
from sqlalchemy import text

from capkit.service.db import make_engine, utcnow

from .conftest import login, seed_small


@pytest.fixture(params=["sqlite", "postgresql"])
def db_client(request, make_client, sqlite_url):
    if request.param == "sqlite":
        url = sqlite_url
    else:
        url = request.getfixturevalue("pg_url")
        seed_small(url)
    client = make_client(database_url=url)
    engine = make_engine(url)
    yield client, engine
    engine.dispose()


def scalar(engine, sql, **params):
    with engine.connect() as conn:
        return conn.execute(text(sql), params).scalar()


def test_summary_equals_direct_sql(db_client):
    client, engine = db_client
    body = client.get("/api/analytics/summary", headers=login(client)).json()
    assert body["users"] == scalar(engine, "SELECT COUNT(*) FROM users") == 46
    assert body["conversations"] == scalar(engine, "SELECT COUNT(*) FROM conversations") == 120
    assert body["messages"] == scalar(engine, "SELECT COUNT(*) FROM messages") == 720
    assistant = scalar(engine, "SELECT COUNT(*) FROM messages WHERE role='assistant'")
    assert body["messages_by_role"]["assistant"] == assistant
    assert body["model_calls"] == scalar(engine, "SELECT COUNT(*) FROM model_calls")
    assert body["tokens_generated"] == scalar(engine, "SELECT SUM(tokens) FROM model_calls")
    week_ago = utcnow() - dt.timedelta(days=7)
    assert body["active_users_7d"] == scalar(
        engine, "SELECT COUNT(DISTINCT user_id) FROM messages WHERE created_at >= :t", t=week_ago)


def test_trends_models_and_users_equal_direct_sql(db_client):
    client, engine = db_client
    h = login(client)
    admin = login(client, "loadtest-admin")
    trends = client.get("/api/analytics/trends?days=365", headers=h).json()
    assert sum(d["messages"] for d in trends["series"]) == scalar(engine, "SELECT COUNT(*) FROM messages")
    assert sum(d["conversations"] for d in trends["series"]) == 120
    models = client.get("/api/analytics/models", headers=admin).json()["models"]
    for m in models:
        assert m["calls"] == scalar(engine, "SELECT COUNT(*) FROM model_calls WHERE model = :m", m=m["model"])
        assert m["failures"] == scalar(engine, "SELECT COUNT(*) FROM model_calls WHERE model = :m AND NOT ok",
                                       m=m["model"])
    top = client.get("/api/analytics/users?limit=3", headers=h).json()["users"]
    assert len(top) == 3
    for row in top:
        assert row["messages"] == scalar(engine, "SELECT COUNT(*) FROM messages m JOIN users u ON u.id = m.user_id "
                                                 "WHERE u.username = :u", u=row["username"])
    assert top[0]["messages"] >= top[1]["messages"] >= top[2]["messages"]


def test_cached_with_hits_and_misses_counted(client):
    h = login(client)
    first = client.get("/api/analytics/summary", headers=h)
    second = client.get("/api/analytics/summary", headers=h)
    assert first.headers["x-cache"] == "miss" and second.headers["x-cache"] == "hit"
    assert first.json() == second.json() and first.json()["users"] > 0
    assert first.headers["content-type"] == second.headers["content-type"] == "application/json"
    metrics = client.get("/metrics").text
    assert 'capkit_cache_hits_total{cache="analytics"} 1.0' in metrics
    assert 'capkit_cache_misses_total{cache="analytics"} 1.0' in metrics


def test_analytics_cache_in_redis(make_client, redis_prefix):
    client = make_client(redis_url="redis://127.0.0.1:6379/0", redis_prefix=redis_prefix)
    h = login(client)
    assert client.get("/api/analytics/trends?days=7", headers=h).headers["x-cache"] == "miss"
    assert client.get("/api/analytics/trends?days=7", headers=h).headers["x-cache"] == "hit"
    assert client.get("/healthz").json()["cache"] == {"backend": "redis", "ok": True, "redis": "ok"}


def test_analytics_bad_input(client):
    h = login(client)
    assert client.get("/api/analytics/trends?days=0", headers=h).status_code == 422
    assert client.get("/api/analytics/trends?days=abc", headers=h).status_code == 422
    assert client.get("/api/analytics/users?limit=100000", headers=h).status_code == 422
    assert client.get("/api/analytics/summary").status_code == 401
