"""HDR latency histograms: one range and precision for every record, encoded as text, merged per step.

Step percentiles are merged from per-second histograms, so they are exact to the histogram's
precision (3 significant digits), never a cumulative or windowed approximation.
"""

from __future__ import annotations

import functools
import math
from typing import Iterable

import numpy as np
from hdrh.histogram import HdrHistogram

# latency in microseconds, 1 µs .. 1 h, 3 significant digits
HDR_LOWEST_US = 1
HDR_HIGHEST_US = 3_600_000_000
HDR_DIGITS = 3


def new_histogram() -> HdrHistogram:
    """An empty histogram of capkit's range and precision (values in microseconds)."""
    return HdrHistogram(HDR_LOWEST_US, HDR_HIGHEST_US, HDR_DIGITS)


def clamp_us(latency_ms: float) -> int:
    """``latency_ms`` as whole microseconds inside the histogram's range."""
    us = math.ceil(latency_ms * 1000)
    return HDR_LOWEST_US if us < HDR_LOWEST_US else HDR_HIGHEST_US if us > HDR_HIGHEST_US else us


def merge_histograms(encoded: Iterable[str]) -> HdrHistogram:
    """One histogram holding every value of the encoded ones."""
    total = new_histogram()
    for item in encoded:
        total.add(HdrHistogram.decode(item))
    return total


def percentile_rank(count, percentile: float):
    """The 1-based rank among ``count`` sorted values that an HDR histogram reports as ``percentile``
    (``round(p · n)``, at least 1): a step's p95 is this order statistic of its requests. ``count``
    may be an array (one rank per step)."""
    rank = np.maximum(np.floor(percentile / 100 * np.asarray(count, dtype=float) + 0.5), 1)
    return int(rank) if rank.ndim == 0 else rank


def rank_percentiles(values, percentiles=(50, 95, 99)) -> dict:
    """``{p: value}`` as a histogram of ``values`` reports them (its rank rule, without its bucket
    rounding); NaN for no values."""
    v = np.sort(np.asarray(values, dtype=float))
    return {p: float(v[percentile_rank(len(v), p) - 1]) if len(v) else math.nan for p in percentiles}


@functools.cache
def bucket_values() -> tuple[np.ndarray, np.ndarray]:
    """Per bucket index of capkit's histograms: (the value a percentile there is reported as — its
    highest equivalent value —, the value its mean and standard deviation count — its median
    equivalent value), in µs, computed once."""
    ref = new_histogram()
    lowest = np.array([ref.get_value_from_index(i) for i in range(ref.counts_len)], dtype=np.int64)
    highest = np.array([ref.get_highest_equivalent_value(int(v)) for v in lowest], dtype=np.int64)
    median = lowest + ((highest - lowest + 1) >> 1)  # lowest + half the bucket's range, as hdrh has it
    return highest.astype(float), median.astype(float)


def counts_of(histogram: HdrHistogram) -> np.ndarray:
    """The histogram's bucket counts as a numpy array (a copy)."""
    return np.ctypeslib.as_array(histogram.counts)[:histogram.counts_len].astype(np.int64)


def moments(histogram: HdrHistogram) -> tuple[float, float]:
    """(mean, standard deviation) in µs, as ``get_mean_value``/``get_stddev`` compute them (each
    value at its bucket's median equivalent), from the counts at once instead of hdrh's
    value-by-value Python loop (0.7 s for a step's histogram)."""
    counts = counts_of(histogram)
    n = counts.sum()
    if n == 0:
        return 0.0, 0.0
    values = bucket_values()[1]
    mean = float(counts @ values / n)
    return mean, float(np.sqrt(counts @ (values - mean) ** 2 / n))
