"""The truth protocol's own logic (benchmarks/truth.py), on synthetic steps with a known crossing:
no load is run here."""

import json
import math

import numpy as np
import pandas as pd
import pytest

from benchmarks import truth


def test_the_grid_is_the_five_factors_of_the_answer():
    assert truth.grid_loads(80) == [60, 70, 80, 90, 100]
    assert truth.grid_loads(81.4) == [61, 71, 81, 92, 102]


def test_a_small_answer_makes_no_grid_and_says_so():
    assert truth.grid_loads(4) == [3, 4, 5]  # 3.5 rounds to 4, 4.5 to 4
    with pytest.raises(ValueError, match="distinct loads"):
        truth.grid_loads(1.5)
    for bad in (None, 0, -3, math.nan):
        with pytest.raises(ValueError, match="no grid"):
            truth.grid_loads(bad)


def test_two_passes_ascending_then_descending_each_load_twice():
    order = truth.interleaved([60, 70, 80, 90, 100])
    assert order == [(1, 60), (1, 70), (1, 80), (1, 90), (1, 100), (2, 100), (2, 90), (2, 80), (2, 70), (2, 60)]
    # every load's two steps are symmetric about the run's middle: a linear drift cancels in its mean
    for u in (60, 70, 80, 90, 100):
        times = [i for i, (_, load) in enumerate(order) if load == u]
        assert sum(times) / 2 == pytest.approx((len(order) - 1) / 2)
    assert truth.stage_plan(order, 30) == "0x10,60x30,70x30,80x30,90x30,100x30,100x30,90x30,80x30,70x30,60x30"


def synthetic(crossing: float, slope: float, sigma: float, seed: int, drift: float = 0.0):
    """Ten steps of the grid around ``crossing``: log p95 linear in users with normal noise and a
    drift linear in time."""
    rng = np.random.default_rng(seed)
    order = truth.interleaved(truth.grid_loads(crossing))
    users = np.array([u for _, u in order], float)
    t = np.arange(len(order)) - (len(order) - 1) / 2
    logp = math.log(500) + slope * (users - crossing) + drift * t + rng.normal(0, sigma, len(users))
    return users, np.exp(logp)


def test_the_fit_finds_a_known_crossing_and_its_range_covers_it():
    hits, errors = 0, []
    for seed in range(200):
        users, p95 = synthetic(80, slope=0.03, sigma=0.12, seed=seed)
        c = truth.fit_crossing(users, p95)
        assert c.users is not None and c.low < c.users < c.high and c.n == 10
        hits += c.low <= 80 <= c.high
        errors.append(abs(c.users - 80) / 80)
    assert 0.90 <= hits / 200 <= 0.99  # a 95 % range
    assert np.median(errors) < 0.03


def test_the_fit_exact_on_noiseless_steps():
    users = np.array([60, 70, 80, 90, 100, 100, 90, 80, 70, 60], float)
    p95 = np.exp(math.log(500) + 0.02 * (users - 77))
    c = truth.fit_crossing(users, p95)
    assert c.users == pytest.approx(77)
    assert c.low == pytest.approx(77, abs=1e-6) and c.high == pytest.approx(77, abs=1e-6)


def test_a_drift_linear_in_time_leaves_the_crossing_alone():
    users, p95 = synthetic(80, slope=0.03, sigma=0.0, seed=0, drift=0.05)
    assert truth.fit_crossing(users, p95).users == pytest.approx(80, abs=1e-6)
    steps = pd.DataFrame({"users": users, "p95_ms": p95, "pass": [1] * 5 + [2] * 5})
    # the second pass ran later: its p95 higher at every load by the same factor
    assert math.exp(truth.drift(steps)) > 1.1


def test_no_crossing_within_the_grid_is_said_not_numbered():
    users = np.array([60, 70, 80, 90, 100] * 2, float)
    low = truth.fit_crossing(users, 100 + users)  # 160–200 ms: the crossing is above the grid
    assert low.users is None and low.low is None and "above the grid" in low.reason
    high = truth.fit_crossing(users, 900 + users)
    assert high.users is None and "below the grid" in high.reason
    flat = truth.fit_crossing(users, 1000 - users)
    assert flat.users is None and "does not rise" in flat.reason
    few = truth.fit_crossing([80, 80, 80], [400, 500, 600])
    assert few.users is None and "no fit" in few.reason


def test_a_slope_not_told_from_zero_gives_an_open_range():
    rng = np.random.default_rng(3)
    users = np.array([60, 70, 80, 90, 100] * 2, float)
    p95 = np.exp(math.log(500) + 0.001 * (users - 80) + rng.normal(0, 0.5, 10))
    c = truth.fit_crossing(users, p95)
    if c.users is not None:  # a crossing within the grid: its range is open on at least one side
        assert c.low is None or c.high is None


def test_usable_steps_drop_what_does_not_describe_the_service():
    steps = pd.DataFrame({"step": range(5), "users": [0, 60, 70, 80, 90], "complete": [True, True, True, False, True],
                          "requests": [0, 100, 100, 100, 100], "p95_ms": [np.nan, 300, 400, 500, 600],
                          "flags": ["", "", "generator_saturated", "", "errors"]})
    assert truth.usable_steps(steps)["users"].tolist() == [60, 90]  # an overloaded step (errors) counts


def test_the_judgement_and_the_summary():
    c = truth.Crossing(80.0, 75.0, 86.0, None, 0.03, 3.8, 10)
    j = truth.judge({"users": 86.0, "low": 82.0, "high": 90.0}, c)
    assert j["error_pct"] == pytest.approx(7.5) and j["within_10"] and not j["range_holds"]
    none = truth.judge({"users": 86.0, "low": 82.0, "high": 90.0}, truth.Crossing(None, None, None, "x", 0, 0, 10))
    assert none["error_pct"] is None and not none["within_15"]
    s = truth.summary([{"repeat": 1, **j}, {"repeat": 2, **none},
                       {"repeat": 3, **truth.judge({"users": 70, "low": 60, "high": 85}, c)}])
    assert (s["repeats"], s["judged"], s["within_10"], s["within_15"], s["range_holds"]) == (3, 2, 1, 2, 1)


def test_the_markdown_shows_each_repeat_and_failures():
    c = truth.Crossing(80.0, 75.0, 86.0, None, 0.03, 3.8, 10)
    ok = {"repeat": 1, "answer": {"users": 84.0, "low": 78.0, "high": 90.0, "basis": "measured"},
          "capacity": {"limit": "Response time (p95)", "users": 84.0}, "crossing": truth.asdict(c), "drift": 0.1,
          "steps": [{"users": 60, "p95_ms": 300.0, "usable": True}, {"users": 70, "p95_ms": 400.0, "usable": False}],
          **truth.judge({"users": 84.0, "low": 78.0, "high": 90.0}, c)}
    failed = {"repeat": 2, "error": "RuntimeError: capkit plan exited 1", "error_pct": None, "within_10": False,
              "within_15": False, "range_holds": False}
    results = {"datasette": {"command": "python -m benchmarks.truth --service datasette", "machine": "x", "date": "d",
                             "step_seconds": 30.0, "warmup": 5.0, "repeats": [ok, failed],
                             "summary": truth.summary([ok, failed])}}
    md = truth.to_markdown(json.loads(json.dumps(results)))
    assert "84.0 (78.0–90.0)" in md and "80.0 (75.0–86.0)" in md and "+5.0 %" in md
    assert "60→300 70→400✗" in md and "failed: RuntimeError" in md and "within 10 %: 1" in md


def test_the_binding_pool_is_judged_where_the_grid_fills_it():
    # 8 slots, 95 % = 7.6: pass 1 reaches it between 80 and 90 users, pass 2 between 70 and 80
    steps = pd.DataFrame({"pass": [1, 1, 1, 1, 2, 2, 2, 2], "users": [60, 70, 80, 90, 90, 80, 70, 60],
                          "model_slots": [5.0, 6.4, 7.2, 7.9, 7.95, 7.8, 7.0, 5.4]})
    pool = truth.pool_crossing(steps, 8.0)
    # mean by load: 70 → 6.7, 80 → 7.5, 90 → 7.925: 80 + (7.6 − 7.5) / 0.425 × 10
    assert pool.users == pytest.approx(80 + 0.1 / 0.425 * 10)
    assert pool.low == pytest.approx(70 + 0.6 / 0.8 * 10) and pool.high == pytest.approx(80 + 0.4 / 0.7 * 10)
    assert truth.judge({"users": 79.0, "low": 75.0, "high": 85.0}, pool)["range_holds"]
    full = truth.pool_crossing(steps.assign(model_slots=7.9), 8.0)  # full at the lowest load: not bracketed
    assert full.users is None and "does not bracket" in full.reason
    assert truth.pool_crossing(steps, None).users is None
    s = truth.summary([{"repeat": 1, **truth.judge({"users": 84, "low": 80, "high": 88}, pool),
                        "pool": {f"pool_{k}": v for k, v in truth.judge({"users": 79.0, "low": 75.0, "high": 85.0},
                                                                         pool).items()}}])
    assert (s["pool_judged"], s["pool_within_10"], s["pool_range_holds"]) == (1, 1, 1)
