"""The reference service behind a real PgBouncer (transaction pooling) on the test PostgreSQL:
the database sees at most PgBouncer's pool, however many connections the service's pool holds."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from capkit.errors import ConfigError
from capkit.metrics.postgres import PostgresCollector
from capkit.metrics.process import DbTarget, ProcessTreeSampler
from capkit.runs.pgbouncer import start_pgbouncer, write_config
from tests.conftest import ROOT
from tests.service.conftest import IN_CI, PASSWORD, fast_settings, seed_small

POOL = 2  # PgBouncer's server connections: the most the database may see
SERVICE_POOL = 8  # the service's own pool, client connections to PgBouncer
WORKERS = 16
LOAD_S = 4.0
ENDPOINTS = ("/api/analytics/summary", "/api/analytics/trends?days=7", "/api/analytics/users?limit=5")


def _pgbouncer_found() -> bool:
    return bool(shutil.which("pgbouncer")) or Path("/usr/sbin/pgbouncer").exists()


@pytest.fixture(scope="module")
def pgbouncer_installed():
    """PgBouncer from the project's set-up (ops/install-system-deps.sh); never skipped under CI=true."""
    if not _pgbouncer_found():
        subprocess.run([str(ROOT / "ops" / "install-system-deps.sh"), "pgbouncer"], check=False, timeout=600)
    if not _pgbouncer_found():
        if IN_CI:
            pytest.fail("pgbouncer is not installed and CI=true: run ops/install-system-deps.sh pgbouncer as root")
        pytest.skip("pgbouncer not installed (ops/install-system-deps.sh pgbouncer)")


@pytest.fixture
def pgbouncer(pg_url, pgbouncer_installed, tmp_path):
    seed_small(pg_url)
    proc = start_pgbouncer(pg_url, tmp_path / "pgbouncer", pool_size=POOL)
    yield proc
    proc.stop()
    assert not proc.alive()


def test_database_sees_at_most_the_pgbouncer_pool(pg_url, pgbouncer, start_server):
    settings = fast_settings(database_url=pgbouncer.config.url, db_pgbouncer=True, db_pool_size=SERVICE_POOL,
                             db_max_overflow=0, cache_ttl_s=0, response_cache=False,  # every request reaches the DB
                             rate_limit_chat="100000/minute")
    url = start_server(settings)
    token = httpx.post(f"{url}/api/auth/token", json={"username": "loadtest-0000", "password": PASSWORD},
                       timeout=10).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    database = PostgresCollector(pg_url)  # the database itself, not through PgBouncer
    service = ProcessTreeSampler(start_server.procs[url].pid, DbTarget(kind="tcp", port=pgbouncer.config.port))
    seen = {"db": [], "client": []}
    statuses: list[int] = []
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            seen["db"].append(database.sample()["pg_connections"])
            seen["client"].append(service.sample()["db_connections"])
            time.sleep(0.1)

    def user(i: int):
        deadline = time.monotonic() + LOAD_S
        with httpx.Client(base_url=url, headers=headers, timeout=15) as client:
            n = 0
            while time.monotonic() < deadline:
                n += 1
                if n % 3 == 0:  # chat writes: committed transactions (reads end in a rollback)
                    r = client.post("/api/chat/message", json={"message": f"user {i} asks {n}"})
                else:
                    r = client.get(ENDPOINTS[(i + n) % len(ENDPOINTS)])
                statuses.append(r.status_code)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        with ThreadPoolExecutor(WORKERS) as pool:
            list(pool.map(user, range(WORKERS)))
    finally:
        stop.set()
        watcher.join()
        database.close()
    # every request answered: psycopg prepared no statement (a prepared statement lives on one
    # server connection; transaction pooling hands the next transaction another one, and then
    # committed writes fail with "prepared statement _pg3_0 already exists")
    assert len(statuses) > 50 and set(statuses) == {200}, sorted(set(statuses))
    assert max(seen["db"]) <= POOL, seen["db"]
    assert max(seen["db"]) >= 1  # the database did serve through PgBouncer
    assert max(seen["client"]) > POOL, seen["client"]  # the service holds more than the database sees


def test_config_refuses_what_it_cannot_write(tmp_path):
    with pytest.raises(ConfigError, match="PostgreSQL database URL"):
        write_config("sqlite:///x.sqlite", tmp_path)
    with pytest.raises(ConfigError, match="password"):
        write_config("postgresql+psycopg://u:with space@127.0.0.1/db", tmp_path)
    cfg = write_config("postgresql+psycopg://u:secret@127.0.0.1:5433/db", tmp_path / "c", port=6999, pool_size=3)
    ini = cfg.ini.read_text()
    assert "pool_mode = transaction" in ini and "max_db_connections = 3" in ini and "listen_port = 6999" in ini
    assert "db = host=127.0.0.1 port=5433 dbname=db user=u password=secret" in ini
    assert cfg.url == "postgresql+psycopg://u:secret@127.0.0.1:6999/db"
