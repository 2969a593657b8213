"""`capkit run` on the reference service backed by PostgreSQL + Redis stores their samples."""

from __future__ import annotations

import os

import pytest

from capkit import analysis as ca
from capkit.store import open_store
from tests.conftest import run_cli

REDIS_URL = os.environ.get("CAPKIT_TEST_REDIS", "redis://127.0.0.1:6379/0")


def test_postgres_and_redis_samples_are_stored(pg_url, tmp_path):
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError:
        pytest.skip("Redis is not reachable")
    env = {"CAPKIT_STORE_URL": f"sqlite:///{tmp_path / 'capkit.sqlite'}", "CAPKIT_RUNS_DIR": str(tmp_path / "runs"),
           "CAPKIT_DATABASE_URL": pg_url, "CAPKIT_REDIS_URL": REDIS_URL,
           "CAPKIT_REDIS_PREFIX": f"capkit-test-{os.getpid()}", "CAPKIT_SEED_CONVERSATIONS": "200",
           "CAPKIT_MODEL_TOKENS": "8"}
    proc = run_cli("run", "--stages", "0x3,4x4", "--mix", "chat=1,analytics=1", "--think", "0.1,0.3",
                   "--sample-interval", "0.5", env=env, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    store = open_store(env["CAPKIT_STORE_URL"], create=False)
    data = ca.read_run(store)
    store.engine.dispose()
    assert data.meta.spec.sample_interval_s == 0.5
    s = data.samples
    pg = s[s["source"] == "postgres"]
    rd = s[s["source"] == "redis"]
    assert {"pg_connections", "pg_active", "pg_idle", "pg_backend_cpu_cores"} <= set(pg["metric"])
    assert pg.loc[pg["metric"] == "pg_connections", "value"].max() >= 1  # the service's pool
    assert {"redis_used_memory_mib", "redis_connected_clients", "redis_hits_per_s"} <= set(rd["metric"])
    # ~2 samples a second for ~7 s of load
    assert (s[(s["source"] == "service") & (s["metric"] == "rss_mib")].shape[0]) >= 10
