"""The per-resource regression against known truth (seeded synthetic data)."""

import math

import numpy as np
import pytest

from capkit.analysis.answer.capacity import baseline_table
from capkit.analysis.fits.regression import binding_constraint, fit_resource_regression
from capkit.errors import InsufficientDataError
from capkit.schemas import NotMeasured


def _synthetic(seed, baseline=0.05, per_user=0.02, noise=0.02, levels=(0, 5, 10, 15, 20, 25), per_step=20):
    rng = np.random.default_rng(seed)
    users = np.repeat(levels, per_step).astype(float)
    return users, baseline + per_user * users + rng.normal(0, noise, len(users))


def test_fit_recovers_baseline_and_per_user_cost_within_interval():
    users, values = _synthetic(1)
    fit = fit_resource_regression(users, values, resource="cpu_cores", limit=1.0)
    assert fit.baseline.contains(0.05) and fit.per_user.contains(0.02)
    assert fit.significant and fit.steps == 6 and fit.samples == 120
    # true capacity: (1 - 0.05) / 0.02 = 47.5 users, inside the planning range
    assert fit.capacity.contains(47.5)
    assert fit.capacity.low < fit.capacity.estimate < fit.capacity.high


def test_confidence_intervals_cover_the_truth_about_95_percent_of_seeds():
    hits = 0
    seeds = range(300)
    for seed in seeds:
        users, values = _synthetic(seed)
        fit = fit_resource_regression(users, values, resource="cpu_cores", limit=1.0)
        hits += fit.per_user.contains(0.02)
    coverage = hits / len(seeds)
    assert 0.90 <= coverage <= 0.99, coverage


def test_capacity_is_where_the_bound_meets_the_limit():
    users, values = _synthetic(3)
    fit = fit_resource_regression(users, values, resource="cpu_cores", limit=1.0)
    at = fit.predict([fit.capacity.low, fit.capacity.estimate, fit.capacity.high])
    assert at["pi_high"].iloc[0] == pytest.approx(1.0, abs=1e-6)
    assert at["mean"].iloc[1] == pytest.approx(1.0, abs=1e-6)
    assert at["pi_low"].iloc[2] == pytest.approx(1.0, abs=1e-6)


def test_flat_resource_has_no_capacity():
    users, values = _synthetic(4, per_user=0.0)
    fit = fit_resource_regression(users, values, resource="rss_mib", limit=1024)
    assert isinstance(fit.capacity, NotMeasured) and "no significant per-user cost" in str(fit.capacity)


def test_a_constant_resource_fits_without_warnings_and_has_no_r2():
    """A resource that never moves (SQLite's one DB connection, a fixed thread count): R² is 0/0."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit = fit_resource_regression([0, 0, 10, 10, 20, 20], [3.0] * 6, resource="threads", limit=100)
    assert math.isnan(fit.r2) and fit.per_user.estimate == pytest.approx(0, abs=1e-12)
    assert fit.baseline.estimate == pytest.approx(3.0)


def test_too_few_levels_is_a_clear_error():
    with pytest.raises(InsufficientDataError, match="at least 3 clean steps"):
        fit_resource_regression([5, 5, 5, 5, 5, 5], [1, 2, 3, 4, 5, 6], resource="cpu_cores", limit=1)


def test_baseline_table_and_binding_constraint():
    u, cpu = _synthetic(5)
    u2, conns = _synthetic(6, baseline=2, per_user=1.0, noise=0.5)
    fits = {"cpu_cores": fit_resource_regression(u, cpu, resource="cpu_cores", limit=1.0),
            "db_connections": fit_resource_regression(u2, conns, resource="db_connections", limit=60)}
    assert binding_constraint(fits).resource == "cpu_cores"  # 47.5 users vs 58 for connections
    table = baseline_table(fits)
    assert list(table.columns) == ["Resource", "Baseline (idle)", "Per active user", "Max capacity"]
    assert "users" in table.iloc[0]["Max capacity"]
    assert table.iloc[1]["Max capacity"] == "not measured"  # memory was not in the fits at all

