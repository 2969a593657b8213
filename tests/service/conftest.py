"""Fixtures for the reference service: seeded SQLite apps, fresh PostgreSQL databases, Redis
prefixes and real uvicorn subprocesses (killed by PID)."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from capkit.config import Settings
from capkit.service.app import create_app
from capkit.service.db import make_engine, seed

PG_ADMIN_URL = os.environ.get("CAPKIT_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("CAPKIT_TEST_REDIS", "redis://127.0.0.1:6379/0")
IN_CI = os.environ.get("CI", "").lower() == "true"
PASSWORD = "loadtest-password"

SMALL_SEED = dict(users=40, conversations=120, messages_per_conversation=6, test_accounts=5)


def fast_settings(**overrides) -> Settings:
    """Settings for tests: a short, cheap model and a small pool of everything."""
    base = dict(model_tokens=8, model_cpu_ms_per_token=0.05, model_token_delay_ms=1.0, seed_on_start=False,
                seed_users=SMALL_SEED["users"], seed_conversations=SMALL_SEED["conversations"],
                seed_messages_per_conversation=SMALL_SEED["messages_per_conversation"],
                seed_test_accounts=SMALL_SEED["test_accounts"])
    base.update(overrides)
    return Settings(**base)


def seed_small(url: str) -> None:
    engine = make_engine(url)
    try:
        seed(engine, **SMALL_SEED)
    finally:
        engine.dispose()


def login(client, username: str = "loadtest-0000", password: str = PASSWORD) -> dict:
    r = client.post("/api/auth/token", json={"username": username, "password": password})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'service.sqlite'}"
    seed_small(url)
    return url


@pytest.fixture
def make_client(sqlite_url):
    """``make_client(**settings)`` → a started TestClient on a seeded SQLite database."""
    clients = []

    def _make(**overrides) -> TestClient:
        overrides.setdefault("database_url", sqlite_url)
        client = TestClient(create_app(fast_settings(**overrides)))
        client.__enter__()
        clients.append(client)
        return client

    yield _make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client) -> TestClient:
    return make_client()


def _server_up(probe) -> bool:
    try:
        probe()
        return True
    except Exception:  # noqa: BLE001
        return False


def _require(name: str, probe) -> None:
    if not _server_up(probe):
        if IN_CI:
            pytest.fail(f"{name} is not reachable and CI=true: these tests must not be skipped")
        pytest.skip(f"{name} is not reachable")


@pytest.fixture(scope="module")
def pg_url():
    """A fresh PostgreSQL database for this test module, dropped afterwards."""
    import psycopg
    from sqlalchemy.engine import make_url

    from capkit.store.admin import create_database, drop_database

    admin = PG_ADMIN_URL.replace("postgresql+psycopg://", "postgresql://")
    _require("PostgreSQL", lambda: psycopg.connect(admin, connect_timeout=2).close())
    url = make_url(PG_ADMIN_URL).set(database=f"capkit_test_{secrets.token_hex(4)}").render_as_string(
        hide_password=False)
    create_database(url)
    try:
        yield url
    finally:
        drop_database(url)


@pytest.fixture
def redis_prefix():
    """A random key prefix on the machine's Redis, with its keys deleted afterwards."""
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
    _require("Redis", client.ping)
    prefix = f"capkit-test-{secrets.token_hex(4)}"
    try:
        yield prefix
    finally:
        for key in client.scan_iter(match=f"{prefix}:*", count=500):
            client.delete(key)
        client.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Servers:
    """``servers(settings, workers=1)`` starts a real uvicorn process and returns its base URL;
    ``servers.stop(url)`` stops one (its process group, by PID); the fixture stops the rest."""

    def __init__(self) -> None:
        self.procs: dict[str, subprocess.Popen] = {}

    def __call__(self, settings: Settings, workers: int = 1) -> str:
        from capkit.service.server import settings_to_env

        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("CAPKIT_")}
        env.update(settings_to_env(settings))
        code = ("from capkit.config import get_settings; from capkit.service.server import serve; "
                f"serve(get_settings(), '127.0.0.1', {port}, workers={workers})")
        proc = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, start_new_session=True)
        url = f"http://127.0.0.1:{port}"
        self.procs[url] = proc
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise AssertionError(f"service exited: {proc.stderr.read().decode()[-2000:]}")
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    return url
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError("service did not become healthy within 20 s")

    def stop(self, url: str) -> None:
        proc = self.procs.pop(url)
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, 15)  # the group holds uvicorn's worker processes too
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
                proc.wait(timeout=5)


@pytest.fixture
def start_server():
    """``start_server(settings, workers=1)`` → base URL of a real uvicorn process (killed by PID);
    ``start_server.stop(url)`` stops it early."""
    servers = Servers()
    yield servers
    for url in list(servers.procs):
        servers.stop(url)
