"""What the fleet and limits tests need of the machine: writable cgroups, HAProxy, PostgreSQL,
Redis. Missing, a test skips — except under CI=true, where it fails (CI must run them)."""

from __future__ import annotations

import pytest

from tests.conftest import IN_CI, PG_BASE, _pg_available

REDIS_URL = "redis://127.0.0.1:6379/0"


def require(ok: bool, what: str) -> None:
    if ok:
        return
    if IN_CI:
        pytest.fail(f"{what}; CI must run this test")
    pytest.skip(what)


def cgroups_writable(root: str = "/sys/fs/cgroup") -> bool:
    from capkit.metrics.cgroups import Cgroup, CgroupError

    try:
        Cgroup.create("capkit-test-probe", cpu_cores=0.5, memory_mib=64, root=root).remove()
        return True
    except CgroupError:
        return False


def redis_available(url: str = REDIS_URL) -> bool:
    import redis

    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=2)
        client.ping()
        client.close()
        return True
    except redis.RedisError:
        return False


def require_cgroups() -> None:
    require(cgroups_writable(), "cgroups are not writable here (root and cgroup v1/v2 controllers needed)")


def require_fleet_parts() -> None:
    """PostgreSQL, Redis, HAProxy and cgroups, or skip (fail under CI)."""
    import shutil

    require_cgroups()
    require(shutil.which("haproxy") is not None, "haproxy is not installed (ops/install-system-deps.sh haproxy)")
    require(_pg_available(), f"PostgreSQL at {PG_BASE} is not reachable")
    require(redis_available(), f"Redis at {REDIS_URL} is not reachable")
