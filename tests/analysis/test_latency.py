"""The latency model: the mean curve fitted on the measured means, its bootstrap and the tail's (the
pretest at the level and repeated per draw); the correction of a short step's p95 for its rank."""

import numpy as np
import pandas as pd
import pytest
from statsmodels.regression.linear_model import WLS
from statsmodels.tools.tools import add_constant

from capkit.analysis.fits.latency import fit_latency, rank_offset, sampling_variance
from capkit.analysis.fits.usl import fit_usl
from capkit.records.histograms import rank_percentiles

N = np.array([4, 8, 12, 16, 20, 24, 28], dtype=float)


def _steps(seed: int, slope: float, noise: float = 0.02) -> pd.DataFrame:
    """Steps of a closed system (Z = 1 s) whose p95/mean ratio grows by ``slope`` per user (log)."""
    rng = np.random.default_rng(seed)
    x = 0.9 * N / (1 + 0.02 * (N - 1) + 0.0005 * N * (N - 1)) * (1 + rng.normal(0, 0.02, N.size))
    mean_ms = 1000 * (N / x - 1.0) * (1 + rng.normal(0, 0.03, N.size))
    log_ratio = 0.55 + slope * N + rng.normal(0, noise, N.size)
    return pd.DataFrame({"users": N, "rps": x, "mean_ms": mean_ms, "p95_ms": mean_ms * np.exp(log_ratio)})


def test_mean_curve_and_tail_slope_are_resampled_by_step():
    steps = _steps(0, slope=0.01)
    usl = fit_usl(steps["users"], steps["rps"], bootstrap=200, seed=0)
    lat = fit_latency(steps, usl, bootstrap=200, seed=0)
    assert lat.tail_b > 0  # kept: the slope is far from 0
    assert lat.df == (4, 5)  # 7 steps: a quadratic mean curve and a tail line
    # the mean curve is the WLS quadratic of the measured means (relative errors, no request counts)
    r = steps["mean_ms"].to_numpy() / 1000
    wls = WLS(r, np.column_stack([np.ones_like(N), N, N**2]), weights=1 / r**2).fit()
    mean = lat.predict(N)["mean_ms"].to_numpy() / 1000
    np.testing.assert_allclose(mean, wls.fittedvalues, rtol=0.01)
    c_b, b = lat.boot[:, :3], lat.boot[:, 4]
    at16 = np.array([1.0, 16.0, 256.0])
    se16 = float(wls.get_prediction(at16[None, :]).se_mean[0])
    assert 0.7 * se16 < np.std(c_b @ at16) < 1.5 * se16  # R at 16 users spreads as its standard error
    assert lat.think_time_s == pytest.approx(1.0, abs=0.05)  # Z the throughput and the curve imply
    ratio = np.log((steps["p95_ms"] / steps["mean_ms"]).to_numpy())
    se = WLS(ratio, add_constant(N), weights=steps["rps"].to_numpy()).fit().bse[1]
    assert 0.7 * se < b.std() < 1.5 * se  # the slope's spread is its standard error's (t-scaled in the band)
    assert abs(np.median(b) - lat.tail_b) < se
    assert (b != 0).mean() > 0.9  # a slope this clear survives the pretest in (nearly) every draw
    flat = fit_latency(_steps(0, slope=0.0), usl, bootstrap=400, seed=0)
    # no slope: the point fit drops it, and each draw repeats the pretest, so a few keep a chance
    # one, about as often as the level lets a point fit (the intervals carry that choice)
    kept = (flat.boot[:, 4] != 0).mean()
    assert flat.tail_b == 0 and 0.01 < kept < 0.15, kept


def test_the_tails_draws_keep_a_chance_slope_about_as_often_as_runs_do():
    """Over runs with no true slope, the share of draws that keep one is near the share of runs."""
    runs, draws = [], []
    for seed in range(60):
        steps = _steps(seed, slope=0.0)
        lat = fit_latency(steps, fit_usl(steps["users"], steps["rps"], bootstrap=100, seed=seed), bootstrap=100,
                          seed=seed)
        runs.append(lat.tail_b != 0)
        draws.append((lat.boot[:, 4] != 0).mean())
    print(f"slope kept: runs {np.mean(runs):.3f}, draws {np.mean(draws):.3f}")
    assert np.mean(runs) <= 0.12 and 0.02 < np.mean(draws) < 0.12


def test_the_tail_slope_pretest_follows_the_level():
    steps = _steps(5, slope=0.002)
    ratio = np.log((steps["p95_ms"] / steps["mean_ms"]).to_numpy())
    p = WLS(ratio, add_constant(N), weights=steps["rps"].to_numpy()).fit().pvalues[1]
    assert 0.01 < p < 0.05  # significant at 95 %, not at 99 %
    usl = fit_usl(steps["users"], steps["rps"], bootstrap=100, seed=0)
    assert fit_latency(steps, usl, level=0.95, bootstrap=100).tail_b > 0
    assert fit_latency(steps, usl, level=0.99, bootstrap=100).tail_b == 0


def _rank_bias(draw, n: int, true_p95: float, reps: int = 3000) -> tuple[float, float]:
    """Mean shortfall of log p95 (as a histogram reports it from ``n`` values) below the true one,
    raw and after :func:`rank_offset` (pooled over ``reps`` steps of ``n`` requests)."""
    rng = np.random.default_rng(7)
    rows = pd.DataFrame([{"requests": n, **{f"p{q}_ms": v for q, v in rank_percentiles(draw(rng, n)).items()}}
                         for _ in range(reps)])
    raw = np.log(rows["p95_ms"]) - np.log(true_p95)
    return float(raw.mean()), float((raw + rank_offset(rows)).mean())


def test_a_short_steps_p95_is_corrected_for_its_rank():
    """The ⌊0.95 n + ½⌋-th of n values sits below the population p95 as ~1/n: on log-normal and
    gamma latency the correction removes it; on a mix of fast and slow requests (p50 far below
    p95) it does not overcorrect, because it reads the tail's spread (p95 → p99), not p50's."""
    z95 = 1.6448536269514722
    lognormal = (lambda rng, n: rng.lognormal(0.0, 0.4, n)), float(np.exp(0.4 * z95))
    gamma = (lambda rng, n: rng.gamma(2.0, 1.0, n)), 4.743864518
    mix = (lambda rng, n: np.where(rng.random(n) < 0.7, rng.lognormal(np.log(20), 0.3, n),
                                   rng.lognormal(np.log(800), 0.3, n))), None
    big = np.random.default_rng(0)
    mix = mix[0], float(np.percentile(mix[0](big, 2_000_000), 95))
    for name, (draw, p95) in {"lognormal": lognormal, "gamma": gamma, "mix": mix}.items():
        for n in (40, 236):
            raw, corrected = _rank_bias(draw, n, p95)
            print(f"{name} n={n}: log p95 shortfall {raw:+.4f}, corrected {corrected:+.4f}")
            assert raw < -0.01  # a real bias: 1.2–2.3 % at 236 requests, 5–7 % at 40
            assert abs(corrected) < 0.25 * abs(raw)  # measured: 1–20 % of it left, the larger at 40


def test_rank_offset_needs_the_counts_and_vanishes_with_many_requests():
    steps = pd.DataFrame({"p95_ms": [100.0, 110.0], "p99_ms": [130.0, 140.0]})
    assert not rank_offset(steps).any()  # no request counts: nothing to correct by
    steps["requests"] = [100_000, 50]
    offset = rank_offset(steps)
    assert 0 < offset[0] < 0.0002 < 0.005 < offset[1] < 0.05  # 50 requests: 0.8 %


def test_a_step_means_sampling_variance_comes_from_its_requests_spread():
    steps = pd.DataFrame({"requests": [100, 400], "mean_ms": [50.0, 50.0], "sd_ms": [100.0, 100.0],
                          "p50_ms": [2.0, 2.0]})
    np.testing.assert_allclose(sampling_variance(steps), [4 / 100, 4 / 400])  # CV² = 4, over n
    # without sd_ms a log-normal's CV² from mean/p50: a fast/slow mix (p50 2 ms, mean 50) gets 624
    np.testing.assert_allclose(sampling_variance(steps.drop(columns="sd_ms")), [624 / 100, 624 / 400])
    assert not sampling_variance(steps.drop(columns="requests")).any()  # no counts: τ carries it all


def test_no_residual_left_means_no_interval_not_a_zero_width_one():
    steps = _steps(1, slope=0.0).iloc[[0, 3]]  # two loads: the mean line goes through both
    lat = fit_latency(steps, None, bootstrap=50)
    assert lat.df[0] == 0 and lat.think_time_s is None
    pred = lat.predict([10.0])
    assert np.isfinite(pred["p95_ms"]).all() and pred[["p95_low", "p95_high"]].isna().all(axis=None)
    assert lat.crossings({"warning": 500.0, "critical": 2000.0})[["low", "high"]].isna().all(axis=None)
