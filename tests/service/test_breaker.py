import statistics
import time

import pytest

from capkit.service.breaker import CircuitBreaker, CircuitOpen

from .conftest import login, seed_small
from .tcp_proxy import TcpProxy


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_breaker_opens_after_n_failures_then_half_open_probe():
    clock = Clock()
    b = CircuitBreaker("db", failures=3, reset_s=5, clock=clock)
    for _ in range(2):
        b.before()
        b.failure()
    assert b.state == "closed"
    b.before()
    b.failure()
    assert b.state == "open"
    with pytest.raises(CircuitOpen) as err:
        b.before()
    assert err.value.retry_after == 5
    clock.t = 5.0
    assert b.state == "half_open"
    b.before()  # the one probe
    with pytest.raises(CircuitOpen):
        b.before()  # no second probe meanwhile
    b.failure()
    assert b.state == "open"
    clock.t = 10.0
    b.before()
    b.success()
    assert b.state == "closed"
    b.before()


def test_success_resets_the_count():
    b = CircuitBreaker("db", failures=2, reset_s=1)
    b.failure()
    b.success()
    b.failure()
    assert b.state == "closed"


def test_database_down_gives_fast_503_then_recovers(pg_url, make_client):
    seed_small(pg_url)
    proxy = TcpProxy(("127.0.0.1", 5432)).open()
    try:
        url = pg_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
        client = make_client(database_url=url, breaker_failures=3, breaker_reset_s=1.0, cache_ttl_s=0)
        h = login(client)
        assert client.get("/api/analytics/summary", headers=h).status_code == 200

        proxy.close()
        first = [client.get("/api/analytics/summary", headers=h) for _ in range(3)]
        assert [r.status_code for r in first] == [503] * 3  # failures counted, still not 5xx bugs
        timings = []
        for _ in range(5):
            t0 = time.perf_counter()
            r = client.get("/api/analytics/summary", headers=h)
            timings.append(time.perf_counter() - t0)
            assert r.status_code == 503 and "circuit open" in r.json()["detail"] and "retry-after" in r.headers
        assert statistics.median(timings) < 0.05, timings
        health = client.get("/healthz")
        assert health.status_code == 503 and health.json()["db"] == "circuit open"
        assert 'capkit_circuit_breaker_open{name="database"} 1.0' in client.get("/metrics").text

        proxy.open()  # same port
        time.sleep(1.1)
        assert client.get("/api/analytics/summary", headers=h).status_code == 200
        assert client.get("/healthz").json()["breaker"] == "closed"
    finally:
        proxy.close()
