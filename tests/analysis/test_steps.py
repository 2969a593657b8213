"""Step quality flags from records fed through the Ingestor into a real store."""

from __future__ import annotations

from capkit.analysis.data.steps import summarize_steps
from capkit.records.seconds import SecondAggregator
from capkit.runs.ingest import Ingestor
from capkit.store import open_store

T0 = 1_700_000_000


def _run(tmp_path, *, users_seen: int, gen_cpu: float, fail_every: int = 0, rate=None, dropped: int = 0,
         limited_every: int = 0, generator_seconds=range(6), cpu_seconds=()):
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
            limited = bool(limited_every) and i % limited_every == 0
            status = 500 if failed else 429 if limited else 200
            agg.record(ts + i / 20, "GET", "a", 10.0 + i, status, 10, failed or limited)
        records.append({"type": "tick", "ts": ts, "step": 0, "users": users_seen, "meters": {"dropped": dropped}})
        if sec in generator_seconds:
            samples.append({"ts": ts + 0.5, "source": "generator", "metric": "cpu_cores", "value": gen_cpu})
        if sec in cpu_seconds:
            samples.append({"ts": ts + 0.5, "source": "service", "metric": "cpu_cores", "value": 0.2})
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


def test_a_rate_limited_step_is_flagged_and_429s_are_not_throughput(tmp_path):
    """429s are the rate limiter's answer: they stay out of the served req/s the USL fits, and a
    step where more than 10 % were rate-limited is left out of the fits."""
    step = _run(tmp_path, users_seen=10, gen_cpu=0.3, limited_every=4)
    assert step["rate_limited_share"] == 0.25 and step["error_rate"] == 0.0  # not failures either
    assert step["rps"] == 15  # 20 requests a second, 5 of them 429
    assert step["flags"] == "rate_limited" and not step["clean"]


def test_a_step_the_generator_was_not_sampled_in_is_flagged(tmp_path):
    """Without generator samples a step cannot pass the saturation check: flagged, when the run's
    generator was sampled elsewhere (here: in a second step)."""
    store = open_store(f"sqlite:///{tmp_path / 's.sqlite'}")
    store.create_run(run_id="r", target="http://x", scenario="t", spec={"plan": {"warmup_s": 1}}, machine={})
    ing, agg = Ingestor(store, "r"), SecondAggregator()
    records, samples = [], []
    for step, start in ((0, T0), (1, T0 + 6)):
        records.append({"type": "step", "step": step, "users": 10, "rate": None, "planned_s": 6, "started_at": start})
        for sec in range(6):
            for i in range(20):
                agg.record(start + sec + i / 20, "GET", "a", 10.0, 200, 10, False)
            records.append({"type": "tick", "ts": start + sec, "step": step, "users": 10, "meters": {}})
            if step == 1:
                samples.append({"ts": start + sec + 0.5, "source": "generator", "metric": "cpu_cores", "value": 0.3})
    records += [{"type": "req", **row} for row in agg.flush()]
    ing.feed(records)
    store.add_samples("r", samples)
    ing.finish(T0 + 12, last_complete=True)
    out = summarize_steps(store.steps("r"), store.request_stats("r"), store.samples("r"), warmup_s=1)
    store.engine.dispose()
    assert out["flags"].tolist() == ["generator_not_measured", ""]


def test_a_step_with_too_few_resource_samples_is_flagged(tmp_path):
    step = _run(tmp_path, users_seen=10, gen_cpu=0.3, cpu_seconds=(2,))  # 1 of 5 trimmed seconds
    assert step["flags"] == "resources_missing"
    assert _run(tmp_path / "ok", users_seen=10, gen_cpu=0.3, cpu_seconds=range(6))["clean"]
