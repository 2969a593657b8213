"""Master and workers under faults, with real Locust processes: a worker killed mid-step, the
master killed, a worker with other locustfiles. Nothing hangs and nothing is left running."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import psutil

from capkit import analysis as ca
from capkit.analysis.data.steps import summarize_steps
from capkit.runs.processes import free_port
from capkit.store import open_store
from tests.conftest import assert_one_line_error
from tests.loadrun import PLAIN, reference_service  # noqa: F401 (fixture)

CLI = [sys.executable, "-m", "capkit"]


def _env(tmp_path, **extra):
    return {**os.environ, "CAPKIT_STORE_URL": f"sqlite:///{tmp_path / 'capkit.sqlite'}",
            "CAPKIT_RUNS_DIR": str(tmp_path / "runs"), **extra}


def _master(tmp_path, target, locustfile, port, workers, stages, **env):
    return subprocess.Popen([*CLI, "run", "--target", target, "--locustfile", str(locustfile), "--master",
                             "--expect-workers", str(workers), "--master-bind-port", str(port), "--stages", stages,
                             "--warmup", "0"], env=_env(tmp_path, **env), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)


def _worker(tmp_path, locustfile, port, **env):
    return subprocess.Popen([*CLI, "worker", "--master-host", "127.0.0.1", "--master-port", str(port),
                             "--locustfile", str(locustfile)], env=_env(tmp_path, **env), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def _tree(proc) -> list[psutil.Process]:
    try:
        return [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _locust_of(proc, timeout=30) -> psutil.Process:
    """The Locust child of a `capkit run`/`capkit worker` process (its own process group)."""
    end = time.time() + timeout
    while time.time() < end:
        for child in _tree(proc)[1:]:
            if "locust" in " ".join(child.cmdline()):
                return child
        time.sleep(0.2)
    raise AssertionError("no Locust child started")


def _cleanup(procs, extra=()):
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
    for p in extra:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def _wait_step(tmp_path, step: int, timeout=60):
    end = time.time() + timeout
    while time.time() < end:
        for load in (tmp_path / "runs").glob("*/load.jsonl"):
            if any(json.loads(ln).get("step") == step and json.loads(ln)["type"] == "step"
                   for ln in load.read_text().splitlines() if ln.strip()):
                return load
        time.sleep(0.2)
    raise AssertionError(f"step {step} did not begin")


def _plain(tmp_path, name="plain.py", extra=""):
    folder = tmp_path / name.replace(".py", "") if extra else tmp_path
    folder.mkdir(exist_ok=True)
    path = folder / "plain.py"
    path.write_text(PLAIN + extra)
    return path


def test_worker_killed_mid_step_is_flagged_and_the_run_goes_on(reference_service, tmp_path):  # noqa: F811
    svc = reference_service()
    locustfile = _plain(tmp_path)
    port = free_port()
    master = _master(tmp_path, svc.url, locustfile, port, 2, "0x1,4x8,4x3")
    workers = [_worker(tmp_path, locustfile, port) for _ in range(2)]
    try:
        load = _wait_step(tmp_path, 1)
        victim = _locust_of(workers[0])
        killed_at = time.time()
        victim.kill()
        out, _ = master.communicate(timeout=90)
        assert master.returncode == 0, out[-1500:]  # the other worker carried the step
        assert workers[1].wait(30) == 0
        assert workers[0].wait(30) != 0
    finally:
        _cleanup([master, *workers])
    ticks = [json.loads(ln) for ln in load.read_text().splitlines() if '"tick"' in ln]
    dropped = next(t["ts"] for t in ticks if t["meters"].get("workers") == 1)
    noticed = dropped + 1 - killed_at  # a tick covers the second before it is written
    print(f"worker killed: the master counted 1 worker {noticed:.1f} s later")
    assert noticed <= 8
    store = open_store(f"sqlite:///{tmp_path / 'capkit.sqlite'}", create=False)
    data = ca.read_run(store)
    store.engine.dispose()
    steps = summarize_steps(data.steps, data.requests, data.samples, warmup_s=0).set_index("step")
    assert steps.loc[1, "workers_lost"] == 1 and "workers_lost" in steps.loc[1, "flags"]
    assert not steps.loc[1, "clean"]  # left out of the fits
    assert steps.loc[0, "workers_lost"] == 0 and "workers_lost" not in steps.loc[0, "flags"]
    assert steps.loc[2, "workers_lost"] == 1  # it ran short of its workers too


def test_master_killed_workers_leave_by_themselves(reference_service, tmp_path):  # noqa: F811
    svc = reference_service()
    locustfile = _plain(tmp_path)
    port = free_port()
    master = _master(tmp_path, svc.url, locustfile, port, 1, "0x2,2x60")
    worker = _worker(tmp_path, locustfile, port, CAPKIT_MASTER_TIMEOUT_S="3")
    leftovers = []
    try:
        _wait_step(tmp_path, 1)
        worker_tree = _tree(worker)
        master_locust = _locust_of(master)
        leftovers = [master_locust]
        os.killpg(master_locust.pid, signal.SIGKILL)  # the master machine is gone
        master.kill()
        killed_at = time.time()
        _, err = worker.communicate(timeout=30)
        took = time.time() - killed_at
    finally:
        _cleanup([master, worker], leftovers)
    print(f"master killed: the worker left after {took:.1f} s")
    assert took <= 8
    assert_one_line_error(subprocess.CompletedProcess(worker.args, worker.returncode, "", err),
                          f"the master at 127.0.0.1:{port} stopped answering", "no heartbeat for 3 s")
    time.sleep(0.5)
    assert not [p for p in worker_tree if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


def test_worker_with_other_locustfiles_is_refused(reference_service, tmp_path):  # noqa: F811
    svc = reference_service()
    locustfile = _plain(tmp_path)
    other = _plain(tmp_path, "other.py", extra="\n# edited on the load machine\n")
    port = free_port()
    master = _master(tmp_path, svc.url, locustfile, port, 1, "0x1,2x3")
    bad = _worker(tmp_path, other, port)
    good = None
    try:
        _, err = bad.communicate(timeout=30)
        assert_one_line_error(subprocess.CompletedProcess(bad.args, bad.returncode, "", err),
                              "refused by the master", "locustfiles plain.py, plugin.py differ")
        good = _worker(tmp_path, locustfile, port)
        out, _ = master.communicate(timeout=60)
        assert master.returncode == 0, out[-1500:]
        assert good.wait(30) == 0
    finally:
        _cleanup([p for p in (master, bad, good) if p is not None])
    log = next((tmp_path / "runs").glob("*/locust.log")).read_text()
    assert "refused: locustfiles plain.py, plugin.py differ" in log


def test_last_worker_lost_ends_the_run_incomplete(reference_service, tmp_path):  # noqa: F811
    svc = reference_service()
    locustfile = _plain(tmp_path)
    port = free_port()
    master = _master(tmp_path, svc.url, locustfile, port, 1, "0x1,2x60")
    worker = _worker(tmp_path, locustfile, port)
    try:
        _wait_step(tmp_path, 1)
        _locust_of(worker).kill()
        killed_at = time.time()
        out, _ = master.communicate(timeout=60)  # not the 60 s left in the plan, nor Locust's wait for ever
        took = time.time() - killed_at
    finally:
        _cleanup([master, worker])
    print(f"last worker killed: the run ended {took:.1f} s later")
    assert took <= 15
    assert master.returncode == 2 and "all 1 worker(s) lost before the plan's end" in out, out[-1500:]
    store = open_store(f"sqlite:///{tmp_path / 'capkit.sqlite'}", create=False)
    run = store.list_runs().iloc[0]
    steps = store.steps(run["run_id"])
    store.engine.dispose()
    assert run["status"] == "incomplete" and "worker(s) lost" in run["reason"]
    assert steps["complete"].astype(bool).tolist() == [True, False]
