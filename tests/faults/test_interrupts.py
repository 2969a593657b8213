"""Load processes killed and the orchestrator interrupted: completed steps kept, run marked
incomplete with the reason, nothing left running, and the report still works on what was kept."""

import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

from capkit.store import open_store
from tests.conftest import ROOT, run_cli

STAGES = "0x5,4x5,8x120"  # the last step is cut short by the fault


def _start_plan(tmp_path):
    env = {**os.environ, "CAPKIT_STORE_URL": f"sqlite:///{tmp_path / 'store.sqlite'}",
           "CAPKIT_RUNS_DIR": str(tmp_path / "runs"), "CAPKIT_REPORTS_DIR": str(tmp_path / "reports"),
           "CAPKIT_DATABASE_URL": f"sqlite:///{tmp_path / 'svc.sqlite'}"}
    # Ctrl-C as at a terminal: a shell starts background jobs with SIGINT ignored and children inherit
    # that (a suite run with `&` then failed here, the plan never seeing the signal)
    return subprocess.Popen([sys.executable, "-m", "capkit", "plan", "--stages", STAGES, "--no-report"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _wait_for_third_step(tmp_path, proc, timeout=90):
    end = time.time() + timeout
    while time.time() < end:
        assert proc.poll() is None, proc.communicate()
        if (tmp_path / "store.sqlite").exists():
            try:
                steps = open_store(f"sqlite:///{tmp_path / 'store.sqlite'}", create=False).steps(
                    open_store(f"sqlite:///{tmp_path / 'store.sqlite'}", create=False).latest_run_id() or "")
            except Exception:  # noqa: BLE001 - the store is being created
                steps = None
            if steps is not None and len(steps) >= 3:
                time.sleep(3)  # well inside the third step
                return
        time.sleep(0.5)
    pytest.fail("the plan did not reach its third step")


def _tree(pid):
    try:
        return [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _end_tree(proc) -> None:
    """A plan that did not end: end it and everything it started (service, Locust), by PID."""
    if proc.poll() is not None:
        return
    for p in reversed(_tree(proc.pid)):
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    proc.wait(timeout=10)


def _check_kept(tmp_path, reason_part, *, report_too: bool):
    store = open_store(f"sqlite:///{tmp_path / 'store.sqlite'}", create=False)
    run = store.list_runs().iloc[0]
    assert run["status"] == "incomplete" and reason_part in run["reason"], run["reason"]
    steps = store.steps(run["run_id"])
    assert steps["complete"].astype(bool).tolist()[:2] == [True, True]  # every completed step is kept
    assert not bool(steps["complete"].iloc[2])
    assert store.count("request_stats", run["run_id"]) > 0
    store.engine.dispose()
    if not report_too:
        return
    report = run_cli("report", run["run_id"], env={"CAPKIT_STORE_URL": f"sqlite:///{tmp_path / 'store.sqlite'}",
                                                   "CAPKIT_REPORTS_DIR": str(tmp_path / "reports")})
    assert report.returncode == 0, report.stderr
    assert (tmp_path / "reports" / run["run_id"] / "index.html").exists()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_orchestrator_interrupted(tmp_path, sig):
    proc = _start_plan(tmp_path)
    try:
        _wait_for_third_step(tmp_path, proc)
        tree = _tree(proc.pid)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        _end_tree(proc)
    assert proc.returncode == 130 and "interrupted" in err
    time.sleep(0.5)
    assert [p.pid for p in tree if p.is_running() and p.status() != psutil.STATUS_ZOMBIE] == []
    _check_kept(tmp_path, "interrupted", report_too=sig == signal.SIGINT)


def test_load_generator_killed(tmp_path):
    proc = _start_plan(tmp_path)
    try:
        _wait_for_third_step(tmp_path, proc)
        tree = _tree(proc.pid)
        locust = [p for p in tree[1:] if "locust" in " ".join(p.cmdline())]
        assert locust, "no Locust process under capkit plan"
        for p in locust:
            p.kill()  # SIGKILL: the load process dies without a word
        out, err = proc.communicate(timeout=90)
    finally:
        _end_tree(proc)
    assert proc.returncode == 2 and "incomplete" in err and "Traceback" not in err
    assert "Baseline Metrics" in out  # what was kept is still analysed
    time.sleep(0.5)
    assert [p.pid for p in tree if p.is_running() and p.status() != psutil.STATUS_ZOMBIE] == []
    _check_kept(tmp_path, "load generator exited", report_too=False)  # plan analysed it above
