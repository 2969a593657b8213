"""A step's latency percentile with its uncertainty, from the step's per-second histograms.

A step's p95 is one draw: on a service whose tail is a few slow endpoints, the requests above the
95th percentile are few, and they come in bursts (a slow query holds a connection, the queue behind
it backs up for a few seconds). An order-statistic interval treats the requests as independent and
is too narrow for such bursts. So the interval is a **moving-block bootstrap over the step's
seconds**: blocks of consecutive seconds (circular; :data:`BLOCK_S` seconds, or a sixth of a longer
step so that dependence longer than a few seconds stays inside a block), each second carrying the HDR
histogram of every request it saw, are drawn with replacement until the step's length is filled;
the percentile of each resampled step is read as an HDR histogram reports it (the same rank rule
as the point value), and the interval is the resampled values' quantiles at the level, their
distance from the point scaled by t(blocks − 1)/z (a step holds few blocks). Known truth with heavy
tails (a slow endpoint's 7 % of requests holding the p95, AR(1) bursts): 90–96.5 % coverage of the
95 % interval for 15–60-s steps, iid to strongly bursty (``tests/analysis/test_step_quantiles.py``).

What this interval is *not*: the step-to-step offset (the service at the same load, measured again
later, is faster or slower as a whole) persists for the whole step, so no resampling within a step
can see it; it is measured by repeating loads (:mod:`capkit.analysis.fits.crossing`).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from hdrh.histogram import HdrHistogram
from scipy import stats

from capkit.records.histograms import bucket_values, counts_of, percentile_rank

BLOCK_S = 5  # the shortest block: seconds a burst of slow requests (and the queue behind it) lasts
BLOCKS = 6  # a longer step is cut into this many blocks: dependence longer than 5 s stays inside one
RESAMPLES = 400
MIN_SECONDS = 4  # fewer seconds say nothing about their own variation


def decoded(rows: pd.DataFrame) -> list[tuple[int, HdrHistogram]]:
    """(second, histogram) of each request row (``ts``, ``hdr``), decoded once for every use."""
    return [(int(ts), HdrHistogram.decode(enc)) for ts, enc in zip(rows["ts"].to_numpy(), rows["hdr"].to_numpy(),
                                                                   strict=True)]


def _seconds_matrix(histograms: list[tuple[int, HdrHistogram]]) -> tuple[np.ndarray, np.ndarray]:
    """(counts per second × bucket on the buckets any second used, the buckets' values in µs)."""
    per_second: dict[int, np.ndarray] = {}
    for ts, h in histograms:
        counts = counts_of(h)
        per_second[ts] = per_second[ts] + counts if ts in per_second else counts
    matrix = np.vstack([per_second[k] for k in sorted(per_second)])
    used = np.flatnonzero(matrix.sum(axis=0))
    return matrix[:, used], bucket_values()[0][used]


def block_indices(rng: np.random.Generator, seconds: int, resamples: int, block: int = BLOCK_S) -> np.ndarray:
    """(resamples, seconds) indices of a circular moving-block bootstrap of ``seconds`` seconds."""
    block = max(1, min(block, seconds))
    n_blocks = math.ceil(seconds / block)
    starts = rng.integers(0, seconds, size=(resamples, n_blocks))
    idx = (starts[:, :, None] + np.arange(block)[None, None, :]) % seconds
    return idx.reshape(resamples, -1)[:, :seconds]


def percentile_interval(histograms: list[tuple[int, HdrHistogram]], percentile: float = 95.0, *,
                        level: float = 0.95, resamples: int = RESAMPLES, seed: int = 0) -> tuple[float, float]:
    """(low, high) in ms of the ``percentile`` of one step's requests (its request rows'
    :func:`decoded` histograms), by a moving-block bootstrap over its seconds; NaN when the step has
    fewer than :data:`MIN_SECONDS` seconds with requests."""
    if not histograms:
        return math.nan, math.nan
    counts, values = _seconds_matrix(histograms)
    seconds = counts.shape[0]
    if seconds < MIN_SECONDS or values.size == 0:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    block = max(BLOCK_S, seconds // BLOCKS)
    idx = block_indices(rng, seconds, resamples, block)
    weights = np.zeros((resamples, seconds))
    np.add.at(weights, (np.arange(resamples)[:, None], idx), 1.0)
    cum = np.cumsum(weights @ counts, axis=1)
    ranks = percentile_rank(cum[:, -1], percentile)
    at = (cum >= ranks[:, None]).argmax(axis=1)
    draws = values[at] / 1000
    total = np.cumsum(counts.sum(axis=0))
    point = values[(total >= percentile_rank(total[-1], percentile)).argmax()] / 1000
    q = (1 - level) / 2
    low, high = np.quantile(draws, q), np.quantile(draws, 1 - q)
    # a step holds few blocks: their spread is estimated on n_blocks − 1 df, so the draws' deviations
    # from the point are scaled by t/z (unscaled, 95 % intervals covered 87–89 % of known truth)
    blocks = math.ceil(seconds / block)
    factor = float(stats.t.ppf(1 - q, max(blocks - 1, 1)) / stats.norm.ppf(1 - q))
    return float(max(point - factor * (point - low), 0.0)), float(point + factor * (high - point))
