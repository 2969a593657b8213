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


def _three_steps(tmp_path, drain_s: int, build_s: int = 0, seed: int = 0):
    """60 users for 20 s, then 40 users for 20 s whose first ``drain_s`` seconds still carry the
    heavier step's backlog (latency 4× and decaying), then 50 users whose queue takes ``build_s``
    seconds to build up (latency rising from a third of its level)."""
    import numpy as np

    from capkit.analysis.data.steps import with_settling

    rng = np.random.default_rng(seed)
    store = open_store(f"sqlite:///{tmp_path / 's.sqlite'}")
    store.create_run(run_id="r", target="http://x", scenario="t", spec={"plan": {"warmup_s": 2}}, machine={})
    ing = Ingestor(store, "r")
    agg = SecondAggregator()
    records = []
    for step, users in enumerate((60, 40, 50)):
        start = T0 + 20 * step
        records.append({"type": "step", "step": step, "users": users, "planned_s": 20, "started_at": start})
        for sec in range(20):
            base = {60: 400.0, 40: 100.0, 50: 150.0}[users]
            backlog = 4 * base * (1 - sec / drain_s) if step == 1 and sec < drain_s else 0.0
            building = (1 - 2 / 3 * (1 - sec / build_s)) if step == 2 and sec < build_s else 1.0
            for i in range(30):
                agg.record(start + sec + i / 30, "GET", "a", float(base * building * rng.lognormal(0, 0.3) + backlog),
                           200, 10, False)
            records.append({"type": "tick", "ts": start + sec, "step": step, "users": users, "meters": {}})
        records += [{"type": "req", **row} for row in agg.flush()]
    ing.feed(records)
    ing.finish(T0 + 60, last_complete=True)
    requests = store.request_stats("r")
    steps = with_settling(store.steps("r"), requests, 2.0)  # as read_run hands every reader the steps
    out = summarize_steps(steps, requests, store.samples("r"), warmup_s=2.0).set_index("users")
    store.engine.dispose()
    return out


def test_a_step_after_a_heavier_one_counts_from_when_the_backlog_has_drained(tmp_path):
    steps = _three_steps(tmp_path, drain_s=8)
    # the backlog lasts 8 s from the step's start; the warm-up trims 2 of them, the settling the rest
    assert 5 <= steps.loc[40, "settle_s"] <= 8, steps["settle_s"]
    assert steps.loc[40, "seconds"] == 20 - 2 - steps.loc[40, "settle_s"]
    assert steps.loc[40, "p95_ms"] < 100 * 1.8  # the backlog's 4× latency is not in the step's p95
    assert steps.loc[60, "settle_s"] == 0 and steps.loc[50, "settle_s"] == 0  # steady from their warm-up on


def test_a_step_whose_queue_builds_up_counts_from_when_it_has(tmp_path):
    steps = _three_steps(tmp_path, drain_s=0, build_s=9)
    assert 2 <= steps.loc[50, "settle_s"] <= 9, steps["settle_s"]  # within 20 % of its level from ~6 s on
    assert steps.loc[50, "p50_ms"] > 150 * 0.85  # the first, lighter seconds do not pull it down


def test_steady_steps_keep_their_warm_up_alone(tmp_path):
    for seed in range(5):
        steps = _three_steps(tmp_path / str(seed), drain_s=0, seed=seed)
        assert steps["settle_s"].max() <= 1, steps["settle_s"]
