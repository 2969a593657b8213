"""Collectors against real servers: PostgreSQL, Redis, a Prometheus endpoint (killed by PID)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx
import pytest
from sqlalchemy import create_engine, text

from capkit.errors import ConfigError
from capkit.metrics import MetricMap, PostgresCollector, PrometheusCollector, RedisCollector, parse_mappings
from capkit.runs.processes import free_port
from tests.conftest import IN_CI

REDIS_URL = os.environ.get("CAPKIT_TEST_REDIS", "redis://127.0.0.1:6379/0")


def test_postgres_connections_by_state_and_backend_cpu(pg_url):
    engine = create_engine(pg_url, pool_size=3)
    collector = PostgresCollector(pg_url)
    try:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as a, engine.connect() as b:
            a.execute(text("SELECT 1"))  # autocommit: left idle
            b.execute(text("SELECT 1"))  # left idle in transaction
            first = collector.sample()
            b.execute(text("SELECT count(*) FROM generate_series(1, 3000000)"))  # some backend CPU
            time.sleep(0.2)
            second = collector.sample()
        assert first["pg_connections"] == 2  # the collector's own connection is not counted
        assert first["pg_idle"] == 1 and first["pg_idle_in_transaction"] == 1
        assert second["pg_backend_cpu_cores"] > 0
    finally:
        collector.close()
        engine.dispose()


def test_postgres_that_does_not_answer_is_one_line():
    with pytest.raises(ConfigError, match="cannot monitor PostgreSQL at .*:\\*\\*\\*@"):
        PostgresCollector("postgresql+psycopg://u:secret@127.0.0.1:1/x")


def test_redis_memory_hits_and_clients():
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError:
        if IN_CI:
            pytest.fail("Redis is not reachable and CI=true")
        pytest.skip("Redis is not reachable")
    key = f"capkit-test-{os.getpid()}"
    collector = RedisCollector(REDIS_URL)
    try:
        client.set(key, "x")
        first = collector.sample()
        for _ in range(20):
            client.get(key)
            client.get(key + "-missing")
        second = collector.sample()
    finally:
        client.delete(key)
        collector.close()
        client.close()
    assert first["redis_used_memory_mib"] > 0 and first["redis_connected_clients"] >= 2
    assert second["redis_hits_per_s"] > 0 and second["redis_misses_per_s"] > 0
    assert 0 < second["redis_hit_ratio"] < 1


@pytest.fixture
def exporter():
    """A Prometheus client's default exporter (process_* metrics) in its own process."""
    port = free_port()
    code = ("import time; from prometheus_client import start_http_server; "
            f"start_http_server({port}, addr='127.0.0.1'); time.sleep(120)")
    proc = subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        for _ in range(100):
            try:
                httpx.get(url, timeout=0.5)
                break
            except httpx.HTTPError:
                time.sleep(0.05)
        yield url, proc.pid
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


def test_prometheus_default_mapping_measures_process_metrics(exporter):
    url, _pid = exporter
    collector = PrometheusCollector(url, source="service")
    try:
        first = collector.sample()
        time.sleep(0.3)
        second = collector.sample()
    finally:
        collector.close()
    assert "cpu_cores" not in first and second["cpu_cores"] >= 0  # a rate needs two scrapes
    assert 5 < second["rss_mib"] < 500 and second["fds"] >= 3


def test_prometheus_mapping_syntax():
    assert MetricMap.parse("rss_mib=process_resident_memory_bytes:/1048576") == MetricMap(
        "rss_mib", "process_resident_memory_bytes", "/", 1048576.0)
    assert MetricMap.parse("x=y:*2").factor == 2 and MetricMap.parse("x=y:rate").op == "rate"
    assert len(parse_mappings(None)) == 3
    for bad in ("cpu", "=y", "x=", "x=y:/0", "x=y:log", "x=y:/a"):
        with pytest.raises(ConfigError, match="is not NAME=SERIES"):
            MetricMap.parse(bad)


def test_prometheus_url_that_does_not_answer_or_lacks_the_series(exporter):
    url, _ = exporter
    with pytest.raises(ConfigError, match="cannot scrape"):
        PrometheusCollector(f"http://127.0.0.1:{free_port()}/metrics")
    with pytest.raises(ConfigError, match="exposes none of nope_total"):
        PrometheusCollector(url, [MetricMap.parse("x=nope_total")])
