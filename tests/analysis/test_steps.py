"""Step quality flags from records fed through the Ingestor into a real store."""

from __future__ import annotations

from capkit.analysis.steps import summarize_steps
from capkit.records.seconds import SecondAggregator
from capkit.runs.ingest import Ingestor
from capkit.store import open_store

T0 = 1_700_000_000


def _run(tmp_path, *, users_seen: int, gen_cpu: float, fail_every: int = 0, rate=None, dropped: int = 0):
    store = open_store(f"sqlite:///{tmp_path / 's.sqlite'}")
    store.create_run(run_id="r", target="http://x", scenario="t", spec={"plan": {"warmup_s": 1}}, machine={})
    ing = Ingestor(store, "r")
    agg = SecondAggregator()
    records = [{"type": "step", "step": 0, "users": 10, "rate": rate, "planned_s": 6, "started_at": T0}]
    samples = []
    for sec in range(6):
        ts = T0 + sec
        for i in range(20):
            failed = bool(fail_every) and i % fail_every == 0
            agg.record(ts + i / 20, "GET", "a", 10.0 + i, 500 if failed else 200, 10, failed)
        records.append({"type": "tick", "ts": ts, "step": 0, "users": users_seen, "meters": {"dropped": dropped}})
        samples.append({"ts": ts + 0.5, "source": "generator", "metric": "cpu_cores", "value": gen_cpu})
    records += [{"type": "req", **row} for row in agg.flush()]
    ing.feed(records)
    store.add_samples("r", samples)
    ing.finish(T0 + 6, last_complete=True)
    out = summarize_steps(store.steps("r"), store.request_stats("r"), store.samples("r"), warmup_s=1)
    store.engine.dispose()
    return out.iloc[0]


def test_clean_step(tmp_path):
    step = _run(tmp_path, users_seen=10, gen_cpu=0.4)
    assert step["clean"] and step["flags"] == "" and step["rps"] == 20


def test_saturated_generator_is_flagged(tmp_path):
    step = _run(tmp_path, users_seen=10, gen_cpu=0.95)
    assert "generator_saturated" in step["flags"] and not step["clean"]


def test_users_not_reached_is_flagged(tmp_path):
    step = _run(tmp_path, users_seen=6, gen_cpu=0.3)
    assert step["flags"] == "users_not_reached"


def test_errors_are_flagged(tmp_path):
    step = _run(tmp_path, users_seen=10, gen_cpu=0.3, fail_every=4)
    assert step["flags"] == "errors" and step["error_rate"] == 0.25


def test_rate_not_reached_and_dropped_runs(tmp_path):
    step = _run(tmp_path, users_seen=10, gen_cpu=0.3, rate=30.0, dropped=10)
    assert step["rate"] == 30 and step["rps"] == 20 and step["dropped"] == 50  # 5 trimmed seconds
    assert step["flags"] == "rate_not_reached"
    assert _run(tmp_path / "ok", users_seen=10, gen_cpu=0.3, rate=20.0)["clean"]
