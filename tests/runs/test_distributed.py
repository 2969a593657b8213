"""Several load processes: per-second rows of every worker reach the master and merge exactly."""

from __future__ import annotations

from capkit import analysis as ca
from capkit.analysis.data.steps import endpoint_table, summarize_steps
from tests.loadrun import PLAIN, assert_close_to_raw, raw_in_step, read_raw_requests, run_reference_load


def test_two_processes_merge_exactly(reference_service, store, tmp_path):
    svc = reference_service()
    result = run_reference_load(store, tmp_path, svc, "0x3,4x5", processes=2,
                                env={"CAPKIT_MIX": "chat=1,auth=1", "CAPKIT_RAW_REQUESTS": "1"})
    assert result.status == "complete", result.reason
    raw_files = sorted(result.raw_dir.glob("requests.raw.*.jsonl"))
    assert len(raw_files) == 2  # one per worker process, each recorded its own share
    raw = read_raw_requests(result.raw_dir)
    data = ca.read_run(store, result.run_id)
    # every request of every worker is in the store, once
    assert int(data.requests["count"].sum()) == len(raw)
    per_worker = [sum(1 for _ in open(p)) for p in raw_files]
    assert min(per_worker) > 0 and sum(per_worker) == len(raw)
    # the step's percentiles are those of all workers' requests together
    steps = summarize_steps(data.steps, data.requests, data.samples, warmup_s=data.warmup_s)
    st = data.steps.set_index("step").loc[1]
    in_step = [r for r in raw_in_step(raw, st, data.warmup_s) if r[1] != "STREAM"]
    assert steps.loc[1, "requests"] == len(in_step)
    for q in (50, 95, 99):
        assert_close_to_raw(steps.loc[1, f"p{q}_ms"], [r[3] for r in in_step], q)
    table = endpoint_table(data.requests, data.steps, warmup_s=data.warmup_s)
    for _, row in table[table["step"] == 1].iterrows():
        values = [r[3] for r in raw_in_step(raw, st, data.warmup_s) if r[2] == row["name"]]
        assert row["requests"] == len(values)
        assert_close_to_raw(row["p95_ms"], values, 95)




def test_master_and_two_workers_share_an_arrival_rate(reference_service, tmp_path):
    import os
    import signal
    import subprocess
    import sys

    from capkit.runs.processes import free_port
    from capkit.store import open_store

    svc = reference_service()
    locustfile = tmp_path / "plain.py"
    locustfile.write_text(PLAIN)
    port = free_port()
    env = {**os.environ, "CAPKIT_STORE_URL": f"sqlite:///{tmp_path / 'capkit.sqlite'}",
           "CAPKIT_RUNS_DIR": str(tmp_path / "runs")}
    cli = [sys.executable, "-m", "capkit"]
    master = subprocess.Popen([*cli, "run", "--target", svc.url, "--locustfile", str(locustfile), "--master",
                               "--expect-workers", "2", "--master-bind-port", str(port), "--stages", "0x3,r20x5@6",
                               "--warmup", "1"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, start_new_session=True)
    worker_env = {**env, "CAPKIT_RAW_REQUESTS": "1", "CAPKIT_RAW_DIR": str(tmp_path / "workers")}
    workers = [subprocess.Popen([*cli, "worker", "--master-host", "127.0.0.1", "--master-port", str(port),
                                 "--locustfile", str(locustfile)], env=worker_env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True) for _ in range(2)]
    try:
        out, _ = master.communicate(timeout=120)
        assert master.returncode == 0, out[-2000:]
        assert [w.wait(timeout=30) for w in workers] == [0, 0]  # the master's end stops them
    finally:
        for proc in (master, *workers):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
    store = open_store(env["CAPKIT_STORE_URL"], create=False)
    data = ca.read_run(store)
    store.engine.dispose()
    raw = read_raw_requests(tmp_path / "workers")
    assert len(list((tmp_path / "workers").glob("requests.raw.*.jsonl"))) == 2
    assert int(data.requests["count"].sum()) == len(raw)  # every worker's request reached the master once
    steps = summarize_steps(data.steps, data.requests, data.samples, warmup_s=data.warmup_s)
    print(f"two workers, target 20/s: achieved {steps.loc[1, 'rps']:.2f}/s")
    assert 19 <= steps.loc[1, "rps"] <= 21.5 and "rate_not_reached" not in steps.loc[1, "flags"]
    st = data.steps.set_index("step").loc[1]
    in_step = raw_in_step(raw, st, data.warmup_s)
    assert steps.loc[1, "requests"] == len(in_step)
    assert_close_to_raw(steps.loc[1, "p95_ms"], [r[3] for r in in_step], 95)
