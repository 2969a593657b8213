"""Several load processes: per-second rows of every worker reach the master and merge exactly."""

from __future__ import annotations

from capkit import analysis as ca
from capkit.analysis.steps import endpoint_table, summarize_steps
from tests.load.conftest import assert_close_to_raw, raw_in_step, read_raw_requests, run_reference_load


def test_two_processes_merge_exactly(reference_service, store, tmp_path):
    svc = reference_service()
    result = run_reference_load(store, tmp_path, svc, "0x3,4x5", processes=2,
                                env={"CAPKIT_MIX": "chat=1,auth=1", "CAPKIT_RAW_REQUESTS": "1"})
    assert result.status == "complete", result.reason
    raw_files = sorted(result.raw_dir.glob("requests.raw.*.jsonl"))
    assert len(raw_files) == 2  # one per worker process, each recorded its own share
    raw = read_raw_requests(result.raw_dir)
    data = ca.load_run(store, result.run_id)
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
