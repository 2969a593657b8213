"""Gamma arrivals (``--burstiness``): the gaps have mean 1/rate and coefficient of variation
1/sqrt(burstiness), over seeds (numpy's gamma; no load run needed)."""

from __future__ import annotations

import numpy as np
import pytest

from capkit.loadgen.arrival import gamma_gaps


@pytest.mark.parametrize("burstiness", [0.25, 1.0, 4.0])
@pytest.mark.parametrize("rate", [2.0, 50.0])
def test_gamma_gaps_have_the_requested_mean_and_cv(rate, burstiness):
    n, seeds = 20_000, range(10)
    means, cvs = [], []
    for seed in seeds:
        gaps = gamma_gaps(rate, burstiness, n, seed)
        means.append(gaps.mean() * rate)  # 1 when the mean gap is 1/rate
        cvs.append(gaps.std() / gaps.mean())
    cv = 1 / np.sqrt(burstiness)
    # the mean of one seed's gaps: relative se cv/sqrt(n) (≤ 1.4 %); allow 5 se for each seed
    assert np.all(np.abs(np.array(means) - 1) < 5 * cv / np.sqrt(n))
    # the CV: its se over 20 000 gaps is a few % of it at most; over 10 seeds the mean within 2 %
    assert np.mean(cvs) == pytest.approx(cv, rel=0.02)
    assert np.all(np.abs(np.array(cvs) / cv - 1) < 0.08)


def test_the_same_seed_gives_the_same_gaps_and_another_seed_others():
    assert np.array_equal(gamma_gaps(5, 0.5, 100, "3:1"), gamma_gaps(5, 0.5, 100, "3:1"))
    assert not np.array_equal(gamma_gaps(5, 0.5, 100, "3:1"), gamma_gaps(5, 0.5, 100, "3:2"))
