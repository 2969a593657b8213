"""Soft limits on /metrics: model slots, the database pool, event-loop lag and body bytes."""

import contextlib
import time

import httpx
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from capkit.service.app import create_app

from .conftest import fast_settings, login


def scrape(get) -> dict:
    """``{(name, labels): value}`` of one /metrics answer (``get`` fetches the path)."""
    r = get("/metrics")
    assert r.status_code == 200
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for f in text_string_to_metric_families(r.text) for s in f.samples}


def model(name="capkit-builtin"):
    return (("model", name),)


def _busy_growth(get, key, hold_s: float) -> tuple[float, float]:
    """Growth of a busy-seconds counter between two scrapes ``hold_s`` apart, divided by the
    longest and by the shortest time the two scrapes can have been apart: (≤ level, ≥ level)."""
    t0 = time.monotonic()
    first = scrape(get)[key]
    t1 = time.monotonic()
    time.sleep(hold_s)
    t2 = time.monotonic()
    second = scrape(get)[key]
    t3 = time.monotonic()
    return (second - first) / (t3 - t0), (second - first) / (t2 - t1)


def test_slots_gauge_counts_open_streams(sqlite_url, start_server):
    base = start_server(fast_settings(database_url=sqlite_url, model_tokens=100, model_token_delay_ms=100,
                                      model_max_concurrent=5, response_cache=False, openai_auth="none"))
    with httpx.Client(base_url=base, timeout=10) as http, contextlib.ExitStack() as streams:
        before = scrape(http.get)
        assert before[("capkit_model_slots", model())] == 5
        assert before[("capkit_model_slots_in_use", model())] == 0
        h = login(http)
        # two /api/chat streams and one /v1 stream; each holds its slot once its headers are in
        for body in ({"message": "one"}, {"message": "two"}):
            r = streams.enter_context(http.stream("POST", "/api/chat/stream", json=body, headers=h))
            assert r.status_code == 200
        r = streams.enter_context(http.stream("POST", "/v1/chat/completions", json={
            "model": "m", "messages": [{"role": "user", "content": "three"}], "stream": True}))
        assert r.status_code == 200
        during = scrape(http.get)
        assert during[("capkit_model_slots_in_use", model())] == 3
        # busy seconds grow by 3 slots × the time between two scrapes: the mean in use, exactly
        busy = _busy_growth(http.get, ("capkit_model_slots_busy_seconds_total", model()), hold_s=0.4)
        assert busy[0] <= 3 and busy[1] >= 3, busy
        assert during[("capkit_model_active", model())] == 3  # the old name stays
        assert during[("capkit_model_slots", model())] == 5
    # the clients went away mid-answer (10 s each): their slots come back without waiting for the end
    deadline = time.monotonic() + 3
    while scrape(lambda path: httpx.get(base + path))[("capkit_model_slots_in_use", model())] != 0:
        assert time.monotonic() < deadline, "slots still held after the clients disconnected"
        time.sleep(0.1)


def test_db_pool_limit_and_checked_out_on_a_sqlite_file(make_client):
    client = make_client(db_pool_size=2, db_max_overflow=3)
    m = scrape(client.get)
    assert m[("capkit_db_pool_limit", ())] == 5 and m[("capkit_db_pool_size", ())] == 2
    assert m[("capkit_db_pool_checked_out", ())] == 0
    engine = client.app.state.service.engine
    with contextlib.ExitStack() as held:
        for n in range(1, 6):
            held.enter_context(engine.connect())
            assert scrape(client.get)[("capkit_db_pool_checked_out", ())] == n
        full = scrape(client.get)
        assert full[("capkit_db_pool_checked_out", ())] == full[("capkit_db_pool_limit", ())]  # in use / size = 1
        busy = _busy_growth(client.get, ("capkit_db_pool_busy_seconds_total", ()), hold_s=0.3)
        assert busy[0] <= 5 and busy[1] >= 5, busy  # 5 connections held the whole time
        assert full[("capkit_db_pool_overflow", ())] == 3
    assert scrape(client.get)[("capkit_db_pool_checked_out", ())] == 0


def test_db_pool_limit_on_postgresql(pg_url, make_client):
    client = make_client(database_url=pg_url, db_pool_size=3, db_max_overflow=1)
    m = scrape(client.get)
    assert m[("capkit_db_pool_limit", ())] == 4 and m[("capkit_db_pool_checked_out", ())] == 0
    with client.app.state.service.engine.connect():
        assert scrape(client.get)[("capkit_db_pool_checked_out", ())] == 1


def test_in_memory_sqlite_has_no_pool_series(make_client):
    client = make_client(database_url="sqlite://")
    names = {name for name, _ in scrape(client.get)}
    assert "capkit_model_slots" in names  # the scrape worked
    assert not names & {"capkit_db_pool_limit", "capkit_db_pool_checked_out", "capkit_db_pool_size",
                        "capkit_db_pool_busy_seconds_total"}


def test_event_loop_lag_sees_a_blocking_route(sqlite_url):
    app = create_app(fast_settings(database_url=sqlite_url))
    block_s, interval_s = 0.3, app.state.metrics.loop_lag.interval_s

    @app.get("/test/block")
    async def block() -> dict:
        time.sleep(block_s)  # the mistake the gauge is there to show: blocking the event loop
        return {}

    with TestClient(app) as client:
        assert app.state.metrics.loop_lag.running
        time.sleep(0.2)
        quiet = scrape(client.get)[("capkit_event_loop_lag_seconds", ())]
        assert 0 <= quiet < 0.1
        client.get("/test/block")
        lag = scrape(client.get)[("capkit_event_loop_lag_seconds", ())]
        # a stall of S seconds makes the 50 ms timer late by S minus the part of its sleep it overlapped
        assert block_s - interval_s <= lag < block_s + 0.2
        after = scrape(client.get)[("capkit_event_loop_lag_seconds", ())]
        assert after < block_s - interval_s  # reset by the previous scrape
    assert not app.state.metrics.loop_lag.running  # cancelled with the lifespan


def test_body_byte_counters(make_client):
    """Exact sums: between two scrapes the service received the two request bodies and sent the
    first scrape's body (counted once it was sent, after its numbers were taken) and two answers."""
    client = make_client()
    h = {**login(client), "Content-Type": "application/json"}
    first = client.get("/metrics")
    before = {s.name: s.value for f in text_string_to_metric_families(first.text) for s in f.samples}
    bodies = [b'{"message": "count my bytes"}',
              b'{"model": "m", "messages": [{"role": "user", "content": "and mine"}], "stream": true}']
    answers = [client.post("/api/chat/message", content=bodies[0], headers=h),
               client.post("/v1/chat/completions", content=bodies[1], headers=h)]
    assert [a.status_code for a in answers] == [200, 200] and len(answers[1].content) > 1000  # 11 SSE events
    after = scrape(client.get)
    received = after[("capkit_http_request_bytes_total", ())] - before["capkit_http_request_bytes_total"]
    sent = after[("capkit_http_response_bytes_total", ())] - before["capkit_http_response_bytes_total"]
    assert received == sum(map(len, bodies))
    assert sent == len(first.content) + sum(len(a.content) for a in answers)
