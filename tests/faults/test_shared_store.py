"""Several `capkit run` processes writing one results store at once (SQLite and PostgreSQL):
every run gets its own id, completes, and holds exactly the rows of its own raw files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from capkit import analysis as ca
from capkit.runs.orchestrator import new_run_id
from capkit.store import open_store
from tests.loadrun import PLAIN, reference_service  # noqa: F401 (fixture)

RUNS = 4
STAGES = "0x1,2x4"


def _expected(raw_dir) -> dict:
    """What the store must hold for one run, counted from its raw files alone."""
    records = [json.loads(line) for line in (raw_dir / "load.jsonl").read_text().splitlines() if line.strip()]
    first_step = min(int(r["started_at"]) for r in records if r["type"] == "step")
    reqs = [r for r in records if r["type"] == "req" and r["ts"] >= first_step]
    meters = sum(len(r.get("meters") or {}) for r in records if r["type"] == "tick")
    samples = sum(1 for line in (raw_dir / "resources.jsonl").read_text().splitlines() if line.strip())
    return {"request_rows": len(reqs), "requests": sum(r["count"] for r in reqs),
            "steps": sum(1 for r in records if r["type"] == "step"), "samples": samples + meters}


def _run_at_once(store_url: str, target: str, tmp_path) -> tuple[list[str], float]:
    locustfile = tmp_path / "plain.py"
    locustfile.write_text(PLAIN)
    env = {**os.environ, "CAPKIT_STORE_URL": store_url, "CAPKIT_RUNS_DIR": str(tmp_path / "runs")}
    cmd = [sys.executable, "-m", "capkit", "run", "--target", target, "--locustfile", str(locustfile),
           "--stages", STAGES, "--warmup", "0"]
    t0 = time.time()
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              start_new_session=True) for _ in range(RUNS)]
    outs = []
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=120)
            outs.append((proc.returncode, out, err))
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
    elapsed = time.time() - t0
    for code, out, err in outs:
        assert code == 0 and "locked" not in err, (code, err, out[-500:])
    ids = [line.split()[1].rstrip(":") for _, out, _ in outs for line in out.splitlines()
           if line.startswith("run ") and ": complete" in line]
    return ids, elapsed


def _check_store(store_url: str, ids: list[str], tmp_path, elapsed: float) -> None:
    assert len(ids) == RUNS and len(set(ids)) == RUNS, ids  # every run its own id
    store = open_store(store_url, create=False)
    try:
        totals = {"request_stats": 0, "resource_samples": 0, "steps": 0}
        for run_id in ids:
            want = _expected(tmp_path / "runs" / run_id)
            got = {"request_rows": store.count("request_stats", run_id), "steps": store.count("steps", run_id),
                   "samples": store.count("resource_samples", run_id)}
            # what a report reads: only this run's rows, every one of them
            data = ca.read_run(store, run_id)
            assert set(data.requests["run_id"]) == {run_id}
            got["requests"] = int(data.requests["count"].sum())
            assert got == want, (run_id, got, want)
            assert store.get_run(run_id).status == "complete"
            totals["request_stats"] += got["request_rows"]
            totals["resource_samples"] += got["samples"]
            totals["steps"] += got["steps"]
        for table, total in totals.items():  # no row that belongs to no run's raw files
            with store.engine.connect() as conn:
                from sqlalchemy import text

                assert conn.execute(text(f"SELECT count(*) FROM {table}")).scalar() == total
        print(f"{RUNS} concurrent runs on {store.engine.dialect.name}: {elapsed:.1f} s, "
              f"{totals['request_stats']} request rows, {totals['resource_samples']} samples, all matching")
    finally:
        store.engine.dispose()


def test_run_ids_distinct_within_one_second():
    ids = [new_run_id() for _ in range(20000)]  # 4 random bytes collide here 1 time in 20 (birthday bound)
    assert len(set(ids)) == len(ids)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_concurrent_runs_share_a_store(backend, reference_service, tmp_path, request):  # noqa: F811
    store_url = (f"sqlite:///{tmp_path / 'shared.sqlite'}" if backend == "sqlite"
                 else request.getfixturevalue("pg_url"))
    svc = reference_service()
    ids, elapsed = _run_at_once(store_url, svc.url, tmp_path)
    _check_store(store_url, ids, tmp_path, elapsed)
