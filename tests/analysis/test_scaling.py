"""The scaling plan against known truth: traffic files, the static rule, the autoscaler's replay of a
step in traffic (exact replica counts, SLO minutes and replica-hours), the Monte-Carlo's breach
probability against a brute-force integral, and the signal chosen from a real run's binding limit."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from capkit.analysis.answer.autoscale import HpaTiming, replay_policy, static_replay
from capkit.analysis.answer.risk import CapacityDistribution, peak_risk, settled_replicas
from capkit.analysis.answer.scaling import Policy, replicas_for, scaling_plan
from capkit.analysis.answer.signal import Signal
from capkit.analysis.answer.traffic import Traffic, example_day, parse_headroom, read_traffic, traffic_for
from capkit.errors import ConfigError, InsufficientDataError
from capkit.schemas import Basis, Interval

# --- traffic -----------------------------------------------------------------------------------------


def _csv(tmp_path, text, name="t.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_users_csv_holds_each_row_until_the_next(tmp_path):
    t = read_traffic(_csv(tmp_path, "time,users\n08:00,10\n08:30,40\n09:00,20\n"))
    assert t.t_s.tolist() == [0, 1800, 3600] and t.users.tolist() == [10, 40, 20]
    assert t.end_s == 5400 and t.peak == 40  # the last row holds for the median gap
    seconds = read_traffic(_csv(tmp_path, "time,users\n0,5\n60,7\n"))
    assert seconds.t_s.tolist() == [0, 60] and seconds.end_s == 120


def test_arrivals_become_users_by_littles_law(tmp_path):
    path = _csv(tmp_path, "time,arrivals_per_s\n0,2\n600,0.5\n")
    t = read_traffic(path, session_minutes=5)
    assert t.users.tolist() == [600.0, 150.0]  # L = λ W: 2/s × 300 s
    with pytest.raises(ConfigError, match="--session-minutes"):
        read_traffic(path)


@pytest.mark.parametrize("text, needle", [
    ("time,load\n0,1\n", "needs the columns time,users .* it has time, load"),
    ("time,users\n0,5\n60,-1\n", "users must be numbers ≥ 0; row 3 has -1"),
    ("time,users\n0,5\n60,\n", "users must be numbers ≥ 0; row 3"),
    ("time,users\n60,5\n0,6\n", "times must increase, row 3 does not"),
    ("time,users\n", "has no rows"),
    ("time,users\nlunch,5\n", "time must be seconds, a clock time"),
])
def test_bad_traffic_is_one_clear_line(tmp_path, text, needle):
    with pytest.raises(ConfigError, match=needle) as err:
        read_traffic(_csv(tmp_path, text))
    assert "\n" not in str(err.value)


def test_headroom_forms():
    assert [parse_headroom(x) for x in ("N+1", "n + 2", "N", 3)] == [1, 2, 0, 3]
    for bad in ("1", "N-1", "N+x", "two", "+1"):
        with pytest.raises(ConfigError, match="not of the form N\\+k"):
            parse_headroom(bad)


def test_the_bundled_day_and_a_peak():
    day = example_day()
    assert day.peak == 400 and day.end_s == 24 * 3600 and len(day.users) == 288
    assert day.users[day.t_s == 3 * 3600][0] < 0.1 * day.peak  # a night
    scaled = traffic_for(peak_users=1000)
    assert scaled.peak == pytest.approx(1000) and np.allclose(scaled.users / day.users, 2.5)
    with pytest.raises(ConfigError, match="not both"):
        traffic_for("x.csv", peak_users=5)


def test_the_static_rule():
    assert replicas_for([100, 250, 0, 50.0001], 50, 1).tolist() == [3, 6, 2, 3]


# --- the replay: a step in traffic with a known answer --------------------------------------------------


def _step_traffic(*rows, end=7200.0):
    t, u = zip(*rows)
    return Traffic(np.array(t, float), np.array(u, float), end, "a step")


def _p95(per_replica):
    """A replica serves p95 100 ms up to 50 users, 1000 ms beyond (its capacity: exactly 50)."""
    return np.where(np.asarray(per_replica) <= 50, 100.0, 1000.0)


LINE = Signal("pods", "load", "load", "known truth", a=0.0, b=1.0)


def _policy(signal=LINE, **timing):
    return Policy(signal, target_users=50, min_replicas=2, max_replicas=10,
                  timing=HpaTiming(**{"sync_s": 15, "pod_start_s": 60, "stabilization_s": 300, "tolerance": 0.0,
                                      **timing}))


def test_a_step_up_is_over_the_threshold_from_the_step_until_new_pods_are_ready():
    # 100 users → 2 replicas; at 3605 s, 300 users (150 a replica: over 500 ms); the sync at 3615 s
    # asks for ⌈300/50⌉ = 6, ready 60 s later at 3675 s: 70 s over the warning threshold
    traffic = _step_traffic((0, 100), (3605, 300))
    r = replay_policy(traffic, _policy(), p95_at=_p95, warning_ms=500, critical_ms=2000)
    assert r.minutes_over_warning == pytest.approx(70 / 60)
    assert r.minutes_over_critical == 0
    assert r.replica_hours == pytest.approx((2 * 3615 + 6 * (7200 - 3615)) / 3600)
    assert r.peak_replicas == 6
    ready = r.timeline.set_index("t_s")["ready"]
    assert ready.loc[:3614].max() == 2 and ready.loc[3675:].min() == 6


def test_a_step_down_waits_for_the_stabilization_window():
    # down to 100 users at 5405 s: the last recommendation of 6 was at 5400 s, so 2 replicas from 5700 s
    traffic = _step_traffic((0, 100), (3605, 300), (5405, 100))
    r = replay_policy(traffic, _policy(), p95_at=_p95, warning_ms=500, critical_ms=2000)
    assert r.replica_hours == pytest.approx((2 * 3615 + 6 * (5700 - 3615) + 2 * (7200 - 5700)) / 3600)
    assert r.minutes_over_warning == pytest.approx(70 / 60)


def test_a_slower_pod_start_and_sync_period_cost_exactly_their_time():
    traffic = _step_traffic((0, 100), (3605, 300))
    r = replay_policy(traffic, _policy(pod_start_s=180, sync_s=30), p95_at=_p95, warning_ms=500, critical_ms=2000)
    assert r.minutes_over_warning == pytest.approx((3630 + 180 - 3605) / 60)


def test_the_tolerance_and_the_metric_in_its_own_units():
    # a metric 2 + 0.5·users (target 27 at 50 users): at 110 users on 2 replicas the HPA sees
    # (2 + 27.5) / 27 = 1.09 — within a 10 % tolerance, nothing moves, and p95 stays over all along
    line = Signal("pods", "slots", "model_slots", "known truth", a=2.0, b=0.5)
    traffic = _step_traffic((0, 100), (3605, 110))
    r = replay_policy(traffic, _policy(line, tolerance=0.1), p95_at=_p95, warning_ms=500, critical_ms=2000)
    assert r.peak_replicas == 2 and r.minutes_over_warning == pytest.approx((7200 - 3605) / 60)
    r0 = replay_policy(traffic, _policy(line), p95_at=_p95, warning_ms=500, critical_ms=2000)
    assert r0.peak_replicas == 3 and r0.minutes_over_warning == pytest.approx((3615 + 60 - 3605) / 60)


def test_the_static_plan_holds_its_replicas_all_day():
    traffic = _step_traffic((0, 100), (3605, 300))
    s = static_replay(traffic, 6, p95_at=_p95, warning_ms=500, critical_ms=2000, replica_cost=0.5)
    assert s.minutes_over_warning == 0 and s.replica_hours == pytest.approx(12) and s.cost == pytest.approx(6)
    under = static_replay(traffic, 5, p95_at=_p95, warning_ms=500, critical_ms=2000)
    assert under.minutes_over_warning == pytest.approx((7200 - 3605) / 60)


def test_a_bad_timing_is_refused():
    from capkit.errors import ParameterError

    with pytest.raises(ParameterError, match="sync_s"):
        HpaTiming(sync_s=0)


# --- the Monte-Carlo ------------------------------------------------------------------------------------

CAP = CapacityDistribution(100.0, 80.0, 125.0, 0.95)


def test_the_capacity_distribution_keeps_the_measured_interval():
    assert CAP.quantile(0.5) == pytest.approx(100)
    assert CAP.quantile(0.025) == pytest.approx(80) and CAP.quantile(0.975) == pytest.approx(125)
    assert float(CAP.cdf(80)) == pytest.approx(0.025)


def test_breach_probability_without_cost_uncertainty_is_the_capacitys_cdf():
    # the HPA settles at ⌈900 / 80⌉ = 12 replicas (75 users each); the peak breaches when C < 75
    policy = Policy(LINE, target_users=80, min_replicas=2, max_replicas=30)
    risk = peak_risk(CAP, policy, 900, headroom=1, static_replicas=11, draws=20_000, seed=3)
    exact = float(CAP.cdf(75))
    assert risk.policy_replicas == (12, 12, 12)
    assert abs(risk.breach_probability - exact) < 3.5 * risk.standard_error
    assert risk.static_breach_probability == pytest.approx(float(CAP.cdf(900 / 11)))


def test_breach_probability_matches_a_brute_force_integral_over_the_costs():
    # the metric's intercept and per-user cost uncertain (correlated): the policy's target, fixed in
    # metric units, holds a different number of users per replica in each draw
    cov = np.array([[0.25, -0.01], [-0.01, 0.0009]])
    line = Signal("pods", "slots", "model_slots", "known truth", a=1.0, b=0.08, cov=cov)
    policy = Policy(line, target_users=80, min_replicas=2, max_replicas=40)
    risk = peak_risk(CAP, policy, 900, headroom=1, static_replicas=11, draws=20_000, seed=11)
    # brute force: the expectation of the capacity's CDF at peak / replicas over a fine (a, b) grid
    sd = np.sqrt(np.diag(cov))
    a, b = np.meshgrid(np.linspace(1 - 6 * sd[0], 1 + 6 * sd[0], 500), np.linspace(0.08 - 6 * sd[1],
                                                                                    0.08 + 6 * sd[1], 500))
    dens = stats.multivariate_normal([1.0, 0.08], cov).pdf(np.dstack([a, b]))
    target = float(line.value(80))
    r = settled_replicas(900, np.where(b > 0, (target - a) / b, np.inf), 2, 40)
    brute = float((CAP.cdf(900 / r) * dens).sum() / dens.sum())
    assert 0.02 < brute < 0.5  # the costs matter here: not a trivial 0 or 1
    assert abs(risk.breach_probability - brute) < 3.5 * risk.standard_error


def test_replicas_for_a_risk_are_the_fewest_that_keep_it():
    policy = Policy(LINE, target_users=80, min_replicas=2, max_replicas=30)
    risk = peak_risk(CAP, policy, 900, headroom=1, static_replicas=11, risk=0.01, draws=1000)
    n = risk.replicas_for_risk - 1  # without the headroom
    assert float(CAP.cdf(900 / n)) <= 0.01 < float(CAP.cdf(900 / (n - 1)))


# --- a real run: the signal from its binding limit ---------------------------------------------------


@pytest.fixture(scope="module")
def cpu_plan(result):
    """The session's synthetic run (tests/analysis/conftest.py): CPU 0.02 + 0.02·N of 1 core binds."""
    day = traffic_for(peak_users=300)
    return scaling_plan(result, day, growth=1.3, headroom=1, replica_cost=0.1, draws=1000)


def test_cpu_binds_so_the_signal_is_cpu_utilization_of_the_request(result, cpu_plan):
    plan = cpu_plan
    assert result.answer.binding.key == "cpu_cores"
    assert plan.policy.signal.kind == "cpu" and "CPU binds" in plan.policy.signal.why
    cap = result.answer.capacity
    assert plan.users_per_replica == math.floor(cap.users.low)
    assert plan.peak_users == pytest.approx(390)
    assert plan.replicas_at_peak == math.ceil(390 / plan.users_per_replica) + 1
    # the target: CPU at 80 % of the planning figure over the request (CPU at the planning figure)
    fit = result.resources.fits["cpu_cores"]
    target_cpu = fit.params[0] + fit.params[1] * 0.8 * plan.users_per_replica
    assert plan.policy.target_value == pytest.approx(100 * target_cpu / plan.pod.cpu_request, rel=0.02)
    assert plan.pod.cpu_request == pytest.approx(fit.predict(plan.users_per_replica)["ci_high"].iloc[0])
    assert plan.policy.max_replicas >= plan.replicas_at_peak
    assert plan.static.replica_hours == pytest.approx(plan.replicas_at_peak * 24)
    assert plan.replay.replica_hours < plan.static.replica_hours
    assert plan.replay.cost == pytest.approx(0.1 * plan.replay.replica_hours)
    doc = plan.to_json()
    for key in ("run_id", "users_per_replica", "headroom", "peak_users", "replicas_at_peak", "replicas_for_risk",
                "signal", "minutes_over_p95_warning", "replica_hours", "manifests"):
        assert key in doc, key
    assert doc["signal"] == "cpu"
    assert [f["limit"] for f in doc["fleet"]] == ["db_connections", "db_cpu_cores"]
    assert doc["fleet"][1]["not_measured"]  # no PostgreSQL collector in a synthetic run: says why


def test_no_measured_capacity_gives_no_replica_count(result):
    from dataclasses import replace

    cap = result.answer.capacity
    far = replace(result.answer, capacity=replace(cap, basis=Basis.EXTRAPOLATED,
                                                  users=Interval(900.0, 700.0, 1200.0)))
    with pytest.raises(InsufficientDataError, match="capacity per replica not measured .*extrapolated"):
        scaling_plan(replace(result, answer=far), example_day())


def test_the_replay_frame_is_exact_segments(cpu_plan):
    tl = cpu_plan.replay.timeline
    assert tl["duration_s"].sum() == pytest.approx(24 * 3600)
    assert (tl["duration_s"] > 0).all() and isinstance(tl, pd.DataFrame)


# --- a pool's signal: read between its measured steps ------------------------------------------------

POOL = Signal("pods", "slots", "model_slots", "known truth", a=0.9, b=0.0665, cap=8.0,
              points=(np.array([10.0, 50.0, 90.0]), np.array([1.0, 4.0, 7.6])))


def test_a_pool_is_read_between_its_steps_and_capped_at_its_size():
    assert POOL.value([30, 50, 70]).tolist() == pytest.approx([2.5, 4.0, 5.8])
    assert float(POOL.value(100)) == 8.0  # 7.6 + 0.0665·10 is past the pool's size
    assert float(POOL.users_at(6.4)) == pytest.approx(50 + 2.4 / 3.6 * 40, abs=1e-6)
    assert float(POOL.users_at(7.9)) == pytest.approx(90 + 0.3 / 0.0665, abs=1e-6)
    assert float(POOL.users_at(9.0)) == math.inf  # a pool never reads more than its size


def test_a_pool_target_stays_below_its_warning_share():
    from capkit.analysis.answer.scaling import pool_target

    target, why = pool_target(POOL, 0.8, 98, 0.8)  # 80 % of 98 = 78.4 users, where the slots read 6.64 of 8
    assert target == pytest.approx(50 + 2.4 / 3.6 * 40, abs=1e-6) and "warning share" in why
    assert pool_target(POOL, 0.5, 98, 0.8)[0] == pytest.approx(49)  # below it: the share itself
    # why: aimed at 90 users (7.6 of 8 slots) the HPA's ratio tops out at 8 / 7.6 < 1.1, inside the
    # tolerance — a step to three times the users never scales out
    traffic = _step_traffic((0, 180), (3605, 540))
    stuck = Policy(POOL, target_users=90, min_replicas=2, max_replicas=20,
                   timing=HpaTiming(sync_s=15, pod_start_s=60, stabilization_s=300, tolerance=0.1))
    r = replay_policy(traffic, stuck, p95_at=lambda u: np.where(np.asarray(u) <= 98, 100.0, 1000.0),
                      warning_ms=500, critical_ms=2000)
    assert r.peak_replicas == 2 and r.minutes_over_warning == pytest.approx((7200 - 3605) / 60)
    aimed = Policy(POOL, target_users=target, min_replicas=2, max_replicas=20, timing=stuck.timing)
    ok = replay_policy(traffic, aimed, p95_at=lambda u: np.where(np.asarray(u) <= 98, 100.0, 1000.0),
                       warning_ms=500, critical_ms=2000)
    # ×1.25 at most per pod start: 3 → 4 (asked at 3615 s) → 5 (3675 s) → 7 (3735 s), ready at 3795 s
    assert ok.peak_replicas == 7 and ok.minutes_over_warning == pytest.approx((3795 - 3605) / 60)
