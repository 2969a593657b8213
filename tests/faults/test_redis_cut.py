"""Redis cut: the service keeps serving from in-process cache and limits, says so, and returns to Redis."""

import shutil
import subprocess
import time

import pytest
import redis

from tests.service.conftest import free_port, login, make_client, sqlite_url  # noqa: F401 (fixtures)


def _start_redis(port: int) -> subprocess.Popen:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed; the Redis fault test needs it")
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis.Redis(port=port, socket_timeout=1)
    for _ in range(100):
        try:
            client.ping()
            return proc
        except redis.ConnectionError:
            time.sleep(0.05)
    proc.kill()
    pytest.fail(f"redis-server on port {port} did not start")


@pytest.fixture
def own_redis():
    """A redis-server of this test's own, which the test may kill and restart (by PID)."""
    port = free_port()
    procs = [_start_redis(port)]
    yield port, procs
    for proc in procs:
        proc.kill()
        proc.wait(5)


def _metric(client, name: str) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in /metrics")


def test_service_degrades_to_in_process_and_returns_to_redis(make_client, own_redis):  # noqa: F811
    port, procs = own_redis
    client = make_client(redis_url=f"redis://127.0.0.1:{port}/0", rate_limit_chat="4/minute", redis_retry_s=0.3)
    headers = login(client)
    assert client.get("/healthz").json()["cache"]["redis"] == "ok"
    assert client.post("/api/chat/message", json={"message": "one"}, headers=headers).status_code == 200

    procs[0].kill()  # cut Redis
    procs[0].wait(5)
    answers = [client.post("/api/chat/message", json={"message": f"m{i}"}, headers=headers).status_code
               for i in range(6)]
    # served while Redis is down, and the limit still holds in-process (4/minute: 4 allowed, then 429)
    assert answers[:4] == [200] * 4 and answers[4:] == [429, 429]
    health = client.get("/healthz").json()
    assert health["cache"]["redis"].startswith("degraded") and health["rate_limit"]["backend"].startswith("memory")
    assert _metric(client, "capkit_redis_degraded") == 1.0
    assert client.get("/api/analytics/summary", headers=headers).status_code == 200  # cache in-process

    procs.append(_start_redis(port))  # Redis comes back on the same port
    deadline = time.time() + 10
    while client.get("/healthz").json()["cache"]["redis"] != "ok":
        assert time.time() < deadline, "the service did not return to Redis"
        time.sleep(0.2)
    assert _metric(client, "capkit_redis_degraded") == 0.0
    assert client.get("/healthz").json()["rate_limit"]["backend"] == "redis"
    # counts are in Redis again (an empty, restarted Redis: the user may send again)
    assert client.post("/api/chat/message", json={"message": "back"}, headers=headers).status_code == 200
    assert redis.Redis(port=port).keys("*")
