"""A real fleet: replicas in cgroups behind HAProxy, one PostgreSQL with a connection limit, one Redis.

The chat rate limit and the response cache hold across replicas (through Redis); a replica lost
mid-run is flagged and the run goes on; bad input is one line, exit 2, nothing left running.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import httpx
import psutil
import pytest

from capkit.config import get_settings
from capkit.runs.fleet import start_fleet
from capkit.schemas import PodLimits, RunStatus, StagePlan
from tests.conftest import assert_one_line_error, run_cli
from tests.fleetparts import require_fleet_parts
from tests.service.conftest import fast_settings

SMALL = {"CAPKIT_SEED_USERS": "10", "CAPKIT_SEED_CONVERSATIONS": "20", "CAPKIT_SEED_TEST_ACCOUNTS": "5"}


def _settings(tmp_path: Path, **overrides):
    return fast_settings(store_url=f"sqlite:///{tmp_path / 'capkit.sqlite'}", runs_dir=str(tmp_path / "runs"),
                         seed_test_accounts=5, **overrides)


def _login(url: str) -> dict:
    return _login_as(url, "loadtest-0000")


def _login_as(url: str, user: str) -> dict:
    r = httpx.post(f"{url}/api/auth/token", json={"username": user, "password": "loadtest-password"})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def _served(url: str, route: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in httpx.get(f"{url}/metrics").text.splitlines()
               if line.startswith("capkit_http_requests_total") and route in line)


def test_rate_limits_cache_and_pgbouncer_are_fleet_wide_and_the_balancer_spreads_requests(tmp_path):
    require_fleet_parts()
    # the chat limit per user, the shared model backend's for the whole fleet
    settings = _settings(tmp_path, rate_limit_chat="6/minute", shared_model_rate_limit="5/minute")
    with start_fleet(settings, replicas=2, workdir=tmp_path / "fleet", limits=PodLimits(cpu_cores=0.5),
                     db_connection_limit=20, shared_model=True, pgbouncer=True, pgbouncer_pool_size=1,
                     say=lambda line: None) as fleet:
        one, two = (svc.url for svc in fleet.replicas)
        auth = _login(fleet.url)  # a token made by one replica is good at the other: one secret, one database
        first = httpx.post(f"{one}/api/chat/message", json={"message": "the same question"}, headers=auth, timeout=30)
        again = httpx.post(f"{two}/api/chat/message", json={"message": "the same question"}, headers=auth, timeout=30)
        assert first.status_code == again.status_code == 200
        assert first.json()["cached"] is False and again.json()["cached"] is True  # replica 2 hit replica 1's answer
        codes = [httpx.post(f"{(one, two)[i % 2]}/api/chat/message", json={"message": f"question {i}"},
                            headers=auth, timeout=30).status_code for i in range(6)]
        # 6/minute for the fleet: 2 above and 4 here pass, whichever replica counts them; the rest are 429
        assert codes == [200] * 4 + [429] * 2, codes
        # 5 answers generated (one was cached): the model backend's 5/minute is spent for every replica
        other = _login_as(fleet.url, "loadtest-0001")
        over = httpx.post(f"{two}/api/chat/message", json={"message": "one more"}, headers=other, timeout=30)
        assert over.status_code == 503, over.text  # the upstream's 429: no fallback model in the fleet
        backend = httpx.get(f"{fleet.model_backend.url}/metrics").text
        assert 'capkit_rate_limit_rejections_total{scope="chat-anonymous"} 1.0' in backend
        for _ in range(20):
            assert httpx.get(f"{fleet.url}/api/auth/validate", headers=auth).status_code == 200
        per_replica = [_served(url, "/api/auth/validate") for url in (one, two)]
        assert sum(per_replica) == 20 and min(per_replica) >= 5, per_replica  # leastconn spreads them
        # the role's CONNECTION LIMIT is the database's cap for the whole fleet; behind PgBouncer both
        # replicas' pools (each wrote conversations above) reach the database through its one connection
        import psycopg

        with psycopg.connect(fleet.database.admin_url.replace("+psycopg", "")) as conn:
            limit = conn.execute("SELECT rolconnlimit FROM pg_roles WHERE rolname = %s", (fleet.name,)).fetchone()[0]
            held = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE usename = %s", (fleet.name,)).fetchone()[0]
        assert limit == 20 and held == 1
        pids = [svc.pid for svc in fleet.replicas] + [fleet.balancer.pid, fleet.model_backend.pid, fleet.pgbouncer.pid]
        groups = [svc.cgroup for svc in fleet.replicas]
        assert all(g is not None and g.cpu_cores == 0.5 for g in groups)
    assert not any(psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE for pid in pids)
    assert not any(path.exists() for g in groups for path in g.paths.values())


def test_a_replica_killed_mid_run_is_flagged_and_the_run_goes_on(tmp_path):
    require_fleet_parts()
    from capkit import analysis as ca
    from capkit.analysis.data.steps import summarize_steps
    from capkit.runs.reference import run_fleet
    from capkit.store import open_store

    settings = _settings(tmp_path)
    killed: list[int] = []

    def kill_one_replica():
        runs = tmp_path / "runs"
        end = time.time() + 60
        while time.time() < end and not list(runs.glob("*/load.jsonl")):
            time.sleep(0.2)
        time.sleep(5)
        serving = [p for p in psutil.Process().children() if "serve" in p.cmdline()]
        victim = max(serving, key=lambda p: p.create_time())
        killed.append(victim.pid)
        os.kill(victim.pid, signal.SIGKILL)

    killer = threading.Thread(target=kill_one_replica, daemon=True)
    killer.start()
    lines: list[str] = []
    result = run_fleet(settings, StagePlan.parse("0x2,4x12", warmup_s=1), replicas=2, db_connection_limit=30,
                       say=lines.append, command="test", think="0.1,0.3")
    killer.join(5)
    assert killed and result.status == RunStatus.COMPLETE, (result.reason, lines)
    assert any("is gone; the run goes on with 1 of 2" in line for line in lines), lines
    store = open_store(settings.store_url, create=False)
    run = ca.read_run(store, result.run_id)
    assert run.meta.spec.fleet.replicas == 2 and run.meta.spec.fleet.balance == "leastconn"
    lost = run.events[run.events["kind"] == "replica_lost"]
    assert len(lost) == 1
    alive = run.samples[(run.samples["source"] == "service") & (run.samples["metric"] == "replicas_alive")]
    assert set(alive["value"]) == {1.0, 2.0}
    lost_at = alive.loc[alive["value"] == 1.0, "ts"].min()
    # nothing measured is lost: requests kept before and after the loss, every sample of the survivor
    req = run.requests[run.requests["step"] == 1]
    assert (req["ts"] < lost_at - 1).any() and (req["ts"] > lost_at + 2).any()
    assert req.loc[req["ts"] > lost_at + 2, "count"].sum() > 0
    rss = run.samples[run.samples["metric"] == "rss_mib"]
    after = set(rss.loc[rss["ts"] > lost_at + 2, "source"])
    assert len(after & {"replica1", "replica2"}) == 1 and "service" in after  # the survivor, and the fleet's sum
    steps = summarize_steps(run.steps, run.requests, run.samples, warmup_s=run.warmup_s)
    flags = steps.set_index("users")["flags"]
    assert "replicas_lost" in flags[4] and "replicas_lost" not in flags[0]


@pytest.mark.parametrize("args, env, needle", [
    (["--replicas", "0"], {}, "--replicas 0"),
    (["--replicas", "1", "--cpu-limit", str(os.cpu_count() + 1)], {}, "this machine's cores"),
    (["--replicas", "2"], {"CAPKIT_HAPROXY_BIN": "/nonexistent/haproxy"}, "is not installed"),
    (["--replicas", "1", "--cpu-limit", "0.5"], {"CAPKIT_CGROUP_ROOT": "/nonexistent"}, "cannot be enforced"),
    (["--pgbouncer"], {}, "give --replicas N"),
])
def test_bad_fleet_input_is_one_line_and_starts_nothing(tmp_path, args, env, needle):
    proc = run_cli("run", *args, "--stages", "0x2,2x2", "--warmup", "1",
                   env={"CAPKIT_STORE_URL": f"sqlite:///{tmp_path / 's.sqlite'}", "CAPKIT_RUNS_DIR": str(tmp_path),
                        **env}, timeout=60)
    assert proc.returncode == 2
    assert_one_line_error(proc, needle)
    assert not _started_by(tmp_path)
    assert not list(Path(tmp_path).glob("*/replica*.log"))


def _started_by(runs_dir: Path) -> list:
    """Processes still running that a run writing into ``runs_dir`` started (they inherit its environment)."""
    out = []
    for p in psutil.process_iter():
        try:
            if p.environ().get("CAPKIT_RUNS_DIR") == str(runs_dir):
                out.append(p)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return out


def test_settings_defaults_enforce_nothing():
    s = get_settings()
    assert s.haproxy_bin == "haproxy" and s.cgroup_root == "/sys/fs/cgroup"


def test_a_single_service_without_writable_cgroups_runs_pinned_and_says_so(tmp_path):
    from capkit.errors import ConfigError
    from capkit.runs.processes import check_limits, limited_cgroup

    group, line = limited_cgroup("capkit-test-x", 0.5, None, root=str(tmp_path), required=False)
    assert group is None and line.startswith("limits not enforced: ") and "runs pinned" in line
    assert limited_cgroup("capkit-test-x", None, None, root=str(tmp_path), required=True) == (None, None)
    with pytest.raises(ConfigError, match="cannot be enforced"):
        limited_cgroup("capkit-test-x", 0.5, None, root=str(tmp_path), required=True)
    with pytest.raises(ConfigError, match="this machine's cores"):
        check_limits(os.cpu_count() + 0.5, None)
