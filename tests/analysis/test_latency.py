"""The latency model's bootstrap: think time and tail resampled by step, the pretest at the level."""

import numpy as np
import pandas as pd
from statsmodels.regression.linear_model import WLS
from statsmodels.tools.tools import add_constant

from capkit.analysis.latency import fit_latency
from capkit.analysis.usl import fit_usl

N = np.array([4, 8, 12, 16, 20, 24, 28], dtype=float)


def _steps(seed: int, slope: float, noise: float = 0.02) -> pd.DataFrame:
    """Steps of a closed system (Z = 1 s) whose p95/mean ratio grows by ``slope`` per user (log)."""
    rng = np.random.default_rng(seed)
    x = 0.9 * N / (1 + 0.02 * (N - 1) + 0.0005 * N * (N - 1)) * (1 + rng.normal(0, 0.02, N.size))
    mean_ms = 1000 * (N / x - 1.0) * (1 + rng.normal(0, 0.03, N.size))
    log_ratio = 0.55 + slope * N + rng.normal(0, noise, N.size)
    return pd.DataFrame({"users": N, "rps": x, "mean_ms": mean_ms, "p95_ms": mean_ms * np.exp(log_ratio)})


def test_think_time_and_tail_slope_are_resampled_by_step():
    steps = _steps(0, slope=0.01)
    usl = fit_usl(steps["users"], steps["rps"], bootstrap=200, seed=0)
    lat = fit_latency(steps, usl, bootstrap=200, seed=0)
    assert lat.tail_b > 0  # kept: the slope is far from 0
    z, b = lat.boot[:, 3], lat.boot[:, 5]
    assert z.std() > 0.005 and abs(np.median(z) - lat.think_time_s) < 0.05
    ratio = np.log((steps["p95_ms"] / steps["mean_ms"]).to_numpy())
    se = WLS(ratio, add_constant(N), weights=steps["rps"].to_numpy()).fit().bse[1]
    assert 0.7 * se < b.std() < 2 * se  # the slope's spread is its standard error's, t-scaled
    assert abs(np.median(b) - lat.tail_b) < se
    given = fit_latency(steps, usl, think_time_s=1.0, bootstrap=200, seed=0)
    assert (given.boot[:, 3] == 1.0).all()  # a given Z is not resampled
    flat = fit_latency(_steps(0, slope=0.0), usl, bootstrap=200, seed=0)
    assert flat.tail_b == 0 and (flat.boot[:, 5] == 0).all()


def test_the_tail_slope_pretest_follows_the_level():
    steps = _steps(5, slope=0.002)
    ratio = np.log((steps["p95_ms"] / steps["mean_ms"]).to_numpy())
    p = WLS(ratio, add_constant(N), weights=steps["rps"].to_numpy()).fit().pvalues[1]
    assert 0.01 < p < 0.05  # significant at 95 %, not at 99 %
    usl = fit_usl(steps["users"], steps["rps"], bootstrap=100, seed=0)
    assert fit_latency(steps, usl, level=0.95, bootstrap=100).tail_b > 0
    assert fit_latency(steps, usl, level=0.99, bootstrap=100).tail_b == 0
