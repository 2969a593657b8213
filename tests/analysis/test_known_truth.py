"""Known truth: seeded synthetic runs through the real ingest path; the models must recover it."""

import numpy as np

from capkit import analysis as ca
from capkit.analysis.backtest import backtest
from capkit.analysis.capacity import resource_capacity
from capkit.analysis.compare import compare_runs
from capkit.analysis.diagnostics import regression_diagnostics
from capkit.analysis.regression import fit_resources
from capkit.analysis.resources import resource_frame
from capkit.analysis.usl import usl_from_steps
from capkit.schemas import ResourceLimits, stepped
from capkit.synthetic import SyntheticTruth, write_synthetic_run
from tests.analysis.synth import run, store

SEEDS = 100


def test_intervals_cover_baseline_and_per_user_cost_in_about_95_percent_of_seeds():
    st = store()
    truth = SyntheticTruth(rps_per_user=0.0)  # resources only: keeps 100 runs fast
    plan = stepped([5, 10, 15, 20, 25], idle_s=10, step_s=10, warmup_s=1)
    hits = []
    for seed in range(SEEDS):
        write_synthetic_run(st, f"r{seed}", plan=plan, truth=truth, seed=seed, start=1.7e9 + 1000 * seed)
        r = ca.read_run(st, f"r{seed}")
        fits = fit_resources(resource_frame(r.samples, r.steps, r.warmup_s), ResourceLimits())
        for name, fit in fits.items():
            if isinstance(fit, ca.ResourceFit):
                hits.append(fit.per_user.contains(truth.per_user[name]))
                hits.append(fit.baseline.contains(truth.baseline[name]))
    coverage = float(np.mean(hits))
    assert len(hits) == SEEDS * 8
    assert 0.92 <= coverage <= 0.98, coverage


def _crossings(truth, name):
    grid = np.linspace(1, 200, 400_000)
    p95 = truth.p95_ms(grid)
    return float(grid[np.argmax(p95 >= {"warning": 500, "critical": 2000}[name])])


def test_known_p95_curve_gives_the_threshold_crossings():
    st = store()
    truth = SyntheticTruth(usl=(0.02, 0.0005, 0.9), think_time_s=1.0)
    want = {name: _crossings(truth, name) for name in ("warning", "critical")}
    assert 7 < want["warning"] < 8 and 27 < want["critical"] < 29  # the truth lies inside the measured range
    errors, covered = {"warning": [], "critical": []}, {"warning": [], "critical": []}
    for seed in range(6):
        r, _ = run(st, f"lat{seed}", truth, users=(4, 8, 12, 16, 20, 24, 28), idle_s=10, seed=seed,
                   start=1.7e9 + 1000 * seed)
        steps = resource_capacity(r).steps
        clean = steps[steps["clean"] & (steps["users"] > 0)]
        lat = ca.fit_latency(clean, usl_from_steps(clean, bootstrap=100, seed=seed), seed=seed)
        for name in errors:
            crossing = lat.crossing(name)
            errors[name].append(abs(crossing.estimate - want[name]) / want[name])
            covered[name].append(crossing.contains(want[name]))
    # measured over 10 seeds: warning 7 % mean error, critical 3 %; each interval covers 8 of 10
    assert np.mean(errors["warning"]) < 0.15, errors
    assert np.mean(errors["critical"]) < 0.08, errors
    assert sum(covered["warning"]) + sum(covered["critical"]) >= 8, covered


def test_think_time_is_recovered_by_the_response_time_law():
    st = store()
    truth = SyntheticTruth(usl=(0.02, 0.0005, 0.9), think_time_s=1.0)
    r, _ = run(st, "z", truth, users=(4, 8, 12, 16, 20, 24), idle_s=10, seed=3)
    steps = resource_capacity(r).steps
    clean = steps[steps["clean"] & (steps["users"] > 0)]
    lat = ca.fit_latency(clean, usl_from_steps(clean, bootstrap=50), bootstrap=50)
    assert abs(lat.think_time_s - 1.0) < 0.1
    pred = lat.predict([12, 24])
    assert np.allclose(pred["p95_ms"], truth.p95_ms([12, 24]), rtol=0.15)


def test_backtest_finds_a_known_break_and_trusts_the_straight_lines():
    st = store()
    truth = SyntheticTruth(breaks={"rss_mib": (15, 3.0)})  # memory: +3 MiB per user above 15 users
    r, _ = run(st, "break", truth, users=(5, 10, 15, 20, 25), seed=11)
    bt = backtest(resource_capacity(r), train_share=0.6)
    assert bt.train_users == [5, 10, 15] and bt.test_users == [20, 25]
    summary = bt.summary.set_index("quantity")
    assert summary.loc["Memory", "max_abs_error_pct"] > 10  # 25 users: truth 162.5 MiB, line says 92.5
    assert summary.loc["Memory", "inside_share"] == 0
    for quantity in ("CPU", "DB connections", "Network"):
        assert summary.loc[quantity, "max_abs_error_pct"] < 5, summary


def test_comparison_finds_the_known_difference_only():
    st = store()
    a, _ = run(st, "a", SyntheticTruth(), seed=1)
    slower = SyntheticTruth()
    slower.per_user = dict(slower.per_user, cpu_cores=0.03)  # +50 % CPU per user, the rest equal
    b, _ = run(st, "b", slower, seed=2, start=1.7e9 + 5000)
    table = compare_runs(resource_capacity(a), resource_capacity(b)).set_index("quantity")
    assert table.loc["CPU per user (cores)", "significant"]
    assert 40 < table.loc["CPU per user (cores)", "change_pct"] < 60
    assert table.loc["CPU capacity (users)", "significant"]
    assert not table.loc["Network per user (KB/s)", "significant"]
    assert not table.loc["DB connections per user (connections)", "significant"]


def test_drift_at_constant_load_is_a_leak_suspicion():
    st = store()
    r, _ = run(st, "leak", SyntheticTruth(drift={"rss_mib": 0.2}), seed=4)  # +12 MiB/min within each step
    rep = resource_capacity(r)
    diag = regression_diagnostics(rep.per_second, rep.steps.loc[rep.steps["clean"], "step"]).set_index("resource")
    assert diag.loc["rss_mib", "leak_suspect"]
    assert 10 < diag.loc["rss_mib", "drift_per_min"] < 14
    assert not diag.loc["cpu_cores", "leak_suspect"]


def test_quadratic_cost_is_flagged_non_linear():
    rng = np.random.default_rng(0)
    users = np.repeat([0, 5, 10, 15, 20, 25], 20).astype(float)
    from capkit.analysis.diagnostics import nonlinearity

    coef, p = nonlinearity(users, 0.05 + 0.01 * users + 0.001 * users**2 + rng.normal(0, 0.02, len(users)))
    assert p < 0.01 and abs(coef - 0.001) < 0.0003
    _, p_lin = nonlinearity(users, 0.05 + 0.01 * users + rng.normal(0, 0.02, len(users)))
    assert p_lin > 0.01
