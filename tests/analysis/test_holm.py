"""Holm's adjustment, written out (statsmodels' collects garbage on every call), held to statsmodels."""

import numpy as np
import pytest
from statsmodels.stats.multitest import multipletests

from capkit.analysis.fits.compare import holm


@pytest.mark.parametrize("seed", range(15))
def test_holm_agrees_with_statsmodels(seed):
    rng = np.random.default_rng(seed)
    m = int(rng.integers(1, 12))
    p = np.where(rng.random(m) < 0.3, rng.random(m) * 0.02, rng.random(m))  # some small, some ties below
    if m > 2:
        p[1] = p[0]
    want_reject, want_adjusted = multipletests(p, alpha=0.05, method="holm")[:2]
    adjusted, significant = holm(p, 0.05)
    np.testing.assert_allclose(adjusted, want_adjusted, rtol=1e-12)
    assert (significant == want_reject).all()


def test_holm_leaves_nan_out_of_the_family():
    adjusted, significant = holm([0.01, np.nan, 0.04, 0.2], 0.05)
    want = multipletests([0.01, 0.04, 0.2], alpha=0.05, method="holm")[1]
    np.testing.assert_allclose(adjusted[[0, 2, 3]], want)
    assert np.isnan(adjusted[1]) and not significant[1]
    assert significant.tolist() == [True, False, False, False]
    assert holm([], 0.05)[0].size == 0 and not holm([np.nan], 0.05)[1].any()
