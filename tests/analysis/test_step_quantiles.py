"""A step's p95 interval against known truth with heavy tails: a fast endpoint and a slow one whose
7 % of the requests hold the step's p95, in bursts (an AR(1) latency factor per second)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from capkit.analysis.data.quantiles import decoded, percentile_interval
from capkit.records.histograms import clamp_us, new_histogram

SEEDS = 200
PHI = 0.8


def _truth(sd: float) -> float:
    """The stationary p95 of the process (a million requests drawn from it)."""
    rng = np.random.default_rng(12345)
    m = 1_000_000
    f = np.exp(rng.normal(0, sd / np.sqrt(1 - PHI**2), m))
    fast = m * 40 // 43
    values = np.concatenate([rng.lognormal(np.log(20), 0.3, fast) * f[:fast],
                             rng.lognormal(np.log(400), 1.0, m - fast) * f[fast:]])
    return float(np.quantile(values, 0.95))


def _step(seed: int, sd: float, seconds: int) -> pd.DataFrame:
    """One step's request rows: per second a fast endpoint (~40 req/s, 20 ms) and a slow one (~3 req/s,
    400 ms, σ 1), both slowed by the second's burst factor."""
    rng = np.random.default_rng(seed)
    factor = np.empty(seconds)
    factor[0] = rng.normal(0, sd / np.sqrt(1 - PHI**2))
    for i in range(1, seconds):
        factor[i] = PHI * factor[i - 1] + rng.normal(0, sd)
    rows = []
    for sec in range(seconds):
        for mu, sigma, rate in ((20, 0.3, 40), (400, 1.0, 3)):
            h = new_histogram()
            for v in rng.lognormal(np.log(mu), sigma, rng.poisson(rate)) * np.exp(factor[sec]):
                h.record_value(clamp_us(v))
            rows.append({"ts": 1_000 + sec, "hdr": h.encode()})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("sd, seconds", [(0.0, 30), (0.15, 30), (0.3, 30), (0.15, 15), (0.15, 60)],
                         ids=["independent", "bursts", "strong-bursts", "short-step", "long-step"])
def test_p95_interval_covers_the_truth_with_heavy_tails(sd, seconds):
    truth = _truth(sd)
    hits = [lo <= truth <= hi for lo, hi in
            (percentile_interval(decoded(_step(seed, sd, seconds)), 95.0, seed=seed) for seed in range(SEEDS))]
    coverage = float(np.mean(hits))
    print(f"p95 interval, sd {sd}, {seconds} s: coverage {coverage:.3f} over {SEEDS} seeds")
    assert 0.90 <= coverage <= 0.99


def test_the_interval_holds_the_steps_own_p95_and_needs_enough_seconds():
    rows = _step(3, 0.15, 30)
    histograms = decoded(rows)
    merged = new_histogram()
    for _, h in histograms:
        merged.add(h)
    point = merged.get_value_at_percentile(95) / 1000
    low, high = percentile_interval(histograms, 95.0)
    assert low < point < high
    assert np.isnan(percentile_interval(decoded(rows[rows["ts"] < 1_003]), 95.0)).all()
    assert np.isnan(percentile_interval([], 95.0)).all()
