"""The capacity search against a reference service that breaks under load on purpose
(``CAPKIT_FAIL_ABOVE_IN_FLIGHT``): when its process dies, the search ends with that load as the
finding ("the service failed at N users"), every step measured before is kept and analysed, and
nothing is left running; when it starts failing requests, the search brackets the error limit and
the answer says where the service failed."""

from __future__ import annotations

import json
import math

import psutil

from capkit.store import open_store
from tests.conftest import assert_one_line_error, run_cli
from tests.runs.test_search import LOAD, SLOTS

SEARCH = ("run", "--search", "--step-seconds", "6", *LOAD)


def _env(tmp_path, mode: str) -> dict:
    return {"CAPKIT_STORE_URL": f"sqlite:///{tmp_path / 'capkit.sqlite'}", "CAPKIT_RUNS_DIR": str(tmp_path / "runs"),
            "CAPKIT_DATABASE_URL": f"sqlite:///{tmp_path / 'service.sqlite'}", "CAPKIT_SEED_CONVERSATIONS": "200",
            "CAPKIT_RESPONSE_CACHE": "false", "CAPKIT_RATE_LIMIT_CHAT": "1000/minute", **SLOTS,
            # 8 requests in flight: about 20 chat users (0.2 s answers, 0.75 s think)
            "CAPKIT_FAIL_ABOVE_IN_FLIGHT": "8", "CAPKIT_FAIL_MODE": mode}


def _left_running(tmp_path) -> list[int]:
    """Processes started for this test (they carry its runs folder in their environment)."""
    mine = []
    for p in psutil.process_iter():
        try:
            if p.environ().get("CAPKIT_RUNS_DIR") == str(tmp_path / "runs"):
                mine.append(p.pid)
        except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
    return mine


def _steps(tmp_path):
    store = open_store(f"sqlite:///{tmp_path / 'capkit.sqlite'}", create=False)
    run_id = store.latest_run_id()
    steps, meta = store.steps(run_id), store.get_run(run_id)
    store.engine.dispose()
    return steps, meta


def test_a_service_that_dies_under_load_ends_the_search_with_that_load(tmp_path):
    proc = run_cli(*SEARCH, "--budget", "60s", "--json", str(tmp_path / "a.json"), env=_env(tmp_path, "exit"),
                   timeout=180)
    steps, meta = _steps(tmp_path)
    loads = steps.loc[steps["users"] > 0, "users"].tolist()
    died_at = loads[-1]
    # the ramp up to the crash: from 5 users, ×1.6 per step (×1.6^1.5 while every limit is far off)
    assert loads[0] == 5 and len(loads) >= 2, loads
    assert all(b in (math.ceil(a * 1.6), math.ceil(a * 1.6 ** 1.5)) for a, b in zip(loads, loads[1:])), loads
    assert_one_line_error(proc, "incomplete", f"the service under test exited during the step at {died_at} users")
    assert meta.reason == f"the service under test exited during the step at {died_at} users"
    # every step before the crash was kept whole
    assert steps["complete"].astype(bool).tolist() == [True] * (len(steps) - 1) + [False]
    answer = json.loads((tmp_path / "a.json").read_text())
    assert answer["stop_reason"] == f"the service failed at {died_at} users: its process exited"
    assert answer["failure"] == {"users": died_at, "reason": "its process exited"}
    assert f"the service failed at {died_at} users (its process exited)" in proc.stdout
    errors = next(t for t in answer["thresholds"] if t["metric"] == "Error rate")
    assert errors["basis"] == "measured" and errors["high"] == died_at and errors["low"] == loads[-2]
    assert _left_running(tmp_path) == []


def test_a_service_that_starts_failing_is_bracketed_and_named(tmp_path):
    # the ramp meets the errors at its third step (5, 11, 23 users): 32 s holds a bracket and a bisection
    proc = run_cli(*SEARCH, "--budget", "32s", "--json", str(tmp_path / "a.json"), env=_env(tmp_path, "errors"),
                   timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    answer = json.loads((tmp_path / "a.json").read_text())
    from capkit import analysis as ca
    from capkit.analysis.answer.capacity import resource_capacity
    from capkit.analysis.answer.limits import valid_steps

    steps = valid_steps(resource_capacity(ca.read_run(f"sqlite:///{tmp_path / 'capkit.sqlite'}")).steps)
    failing = steps[steps["error_rate"] > 0.05]
    assert len(failing), steps[["users", "error_rate"]]
    first = failing.iloc[0]
    assert answer["failure"]["users"] == first["users"]
    assert answer["failure"]["reason"] == f"{100 * first['error_rate']:.0f} % of its requests failed"
    errors = next(t for t in answer["thresholds"] if t["metric"] == "Error rate")
    assert errors["basis"] == "measured" and errors["high"] == first["users"]
    assert f"the service failed at {first['users']:,.0f} users" in proc.stdout
    assert _left_running(tmp_path) == []
