"""Two runs side by side (e.g. two git SHAs): per-user costs, capacity, USL coefficients,
each difference with its p-value and whether it is significant."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from capkit.analysis.fits.regression import ResourceFit
from capkit.schemas import RESOURCES, Interval

PAIRING_SEED = 20_251_201  # the stream that pairs two runs' bootstrap draws


def _z_row(quantity: str, a: float, b: float, se_a: float, se_b: float, alpha: float,
           df: float | None = None) -> dict:
    """Difference b − a with a t test on ``df`` degrees of freedom (z when None)."""
    diff = b - a
    se = math.sqrt(se_a**2 + se_b**2) if math.isfinite(se_a) and math.isfinite(se_b) else math.nan
    dist = stats.t(max(df, 1.0)) if df is not None else stats.norm
    p = float(2 * dist.sf(abs(diff) / se)) if se and math.isfinite(se) and se > 0 else math.nan
    return {"quantity": quantity, "run_a": a, "run_b": b, "difference": diff,
            "change_pct": 100 * diff / abs(a) if a else math.nan, "p_value": p,
            "significant": bool(math.isfinite(p) and p < alpha)}


def _capacity_se(fit: ResourceFit) -> float:
    """Delta-method standard error of capacity = (limit − baseline) / per_user."""
    b0, b1 = fit.params[:2]
    if b1 <= 0:
        return math.nan
    grad = np.array([-1 / b1, -(fit.limit - b0) / b1**2])
    return float(math.sqrt(max(grad @ fit.cov[:2, :2] @ grad, 0.0)))


def _boot_row(quantity: str, a: float, b: float, sa, sb, alpha: float) -> dict:
    """Difference of two bootstrap distributions (independent runs): percentile p-value.

    The runs are fitted with the same seed and size (a report's parameters), so draw i of one run
    used the same resampling indices as draw i of the other: paired as they come, the differences
    would be linked. Run b's draws are shuffled by a stream of their own before pairing."""
    sa, sb = np.asarray(sa, float), np.asarray(sb, float)
    m = min(len(sa), len(sb))
    sb = sb[np.random.default_rng(PAIRING_SEED).permutation(len(sb))]
    d = sb[:m] - sa[:m]
    d = d[np.isfinite(d)]
    diff = b - a
    if len(d) < 20:
        return {**_z_row(quantity, a, b, math.nan, math.nan, alpha)}
    p = float(min(1.0, 2 * min(np.mean(d <= 0), np.mean(d >= 0))))
    return {"quantity": quantity, "run_a": a, "run_b": b, "difference": diff,
            "change_pct": 100 * diff / abs(a) if a else math.nan, "p_value": p, "significant": p < alpha}


def holm(p_values, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Holm's step-down adjustment of a family of p-values (NaN ones left out of the family):
    ``(adjusted p, significant at alpha)``. A run is judged on several quantities at once; each at
    ``alpha`` alone would flag an unchanged run in about ``1 − (1 − alpha)^k`` of comparisons.

    Written out rather than through statsmodels' ``multipletests(method="holm")``, whose Holm branch
    calls ``gc.collect()`` on every call (0.1 s in a test process: 60 % of the A/A coverage test);
    the tests hold it equal to statsmodels' answer.
    """
    p = np.asarray(p_values, float)
    adjusted, significant = np.full(p.shape, np.nan), np.zeros(p.shape, bool)
    ok = np.flatnonzero(np.isfinite(p))
    if ok.size:
        order = ok[np.argsort(p[ok], kind="stable")]
        steps = p[order] * np.arange(ok.size, 0, -1)  # the i-th smallest × (m − i + 1)
        adjusted[order] = np.minimum(np.maximum.accumulate(steps), 1.0)
        significant[ok] = adjusted[ok] <= alpha
    return adjusted, significant


def compare_runs(a, b, *, usl_a=None, usl_b=None, level: float = 0.95) -> pd.DataFrame:
    """Compare two capacity reports (and their USL fits when given).

    Parameters
    ----------
    a, b : CapacityReport
        The reference run (a) and the candidate (b); differences are b − a.
    usl_a, usl_b : USLFit, optional
        USL fits of the runs; bootstrap estimates give the p-values, else the asymptotic errors.
    level : float
        A difference is significant when its p-value is below 1 − level.

    Returns
    -------
    DataFrame
        quantity, run_a, run_b, difference, change_pct, p_value, significant. Per-user costs and
        baselines use the step-level standard errors (t test); capacities the delta method.
    """
    alpha = 1 - level
    rows = []
    for resource, (label, unit) in RESOURCES.items():
        fa, fb = a.fits.get(resource), b.fits.get(resource)
        if not (isinstance(fa, ResourceFit) and isinstance(fb, ResourceFit)):
            rows.append({"quantity": f"{label} per user ({unit})", "note": "not measured in both runs"})
            continue
        rows.append(_z_row(f"{label} per user ({unit})", fa.per_user.estimate, fb.per_user.estimate,
                           math.sqrt(fa.cov[1, 1]), math.sqrt(fb.cov[1, 1]), alpha, fa.df_resid + fb.df_resid))
        rows.append(_z_row(f"{label} baseline ({unit})", fa.baseline.estimate, fb.baseline.estimate,
                           math.sqrt(fa.cov[0, 0]), math.sqrt(fb.cov[0, 0]), alpha, fa.df_resid + fb.df_resid))
        ca, cb = fa.capacity, fb.capacity
        if isinstance(ca, Interval) and isinstance(cb, Interval) and ca.finite and cb.finite:
            rows.append(_z_row(f"{label} capacity (users)", ca.estimate, cb.estimate, _capacity_se(fa),
                               _capacity_se(fb), alpha, fa.df_resid + fb.df_resid))
    if usl_a is not None and usl_b is not None:
        for i, (name, attr) in enumerate((("USL σ (contention)", "sigma"), ("USL κ (coherency)", "kappa"),
                                          ("USL λ (req/s per user)", "lambda_"))):
            va, vb = getattr(usl_a, attr), getattr(usl_b, attr)
            if usl_a.samples is not None and usl_b.samples is not None:
                rows.append(_boot_row(name, va, vb, usl_a.draws(level)[:, i], usl_b.draws(level)[:, i], alpha))
            else:
                rows.append(_z_row(name, va, vb, usl_a.stderr[attr], usl_b.stderr[attr], alpha))
        if usl_a.samples is not None and usl_b.samples is not None:
            from capkit.analysis.fits.usl import peak

            xa = [peak(*s)[1] for s in usl_a.draws(level)]
            xb = [peak(*s)[1] for s in usl_b.draws(level)]
            rows.append(_boot_row("USL X_max (req/s)", usl_a.max_throughput, usl_b.max_throughput, xa, xb, alpha))
    cols = ["quantity", "run_a", "run_b", "difference", "change_pct", "p_value", "significant", "note"]
    return pd.DataFrame(rows).reindex(columns=cols)
