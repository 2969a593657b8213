"""Diagnostics of the per-resource regressions: non-linearity, drift at constant load, influence.

A straight line is what the capacity projection assumes; these checks say when not to trust it.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from statsmodels.regression.linear_model import OLS
from statsmodels.tools.tools import add_constant

from capkit.schemas import RESOURCES

ALPHA = 0.01  # diagnostics flag at 1 %: six resources × three tests would cry wolf at 5 %


def _hac(y: np.ndarray, X: np.ndarray):
    lags = int(4 * (len(y) / 100) ** (2 / 9))
    return OLS(y, X).fit(cov_type="HAC", cov_kwds={"maxlags": lags, "use_correction": True}, use_t=True)


def nonlinearity(users, values) -> tuple[float, float]:
    """(coefficient, p-value) of a quadratic term added to ``value ~ users`` (HAC errors).

    A significant positive term means the cost per user grows with load: the linear capacity
    is optimistic. Needs ≥ 3 user levels; (nan, nan) otherwise.
    """
    u = np.asarray(users, dtype=float)
    y = np.asarray(values, dtype=float)
    if len(np.unique(u)) < 3 or len(y) < 8:
        return math.nan, math.nan
    scale = max(float(np.max(np.abs(u))), 1.0)
    X = np.column_stack([np.ones_like(u), u / scale, (u / scale) ** 2])
    res = _hac(y, X)
    return float(res.params[2] / scale**2), float(res.pvalues[2])


def within_step_drift(ts, step, values) -> tuple[float, float]:
    """(slope per minute, p-value) of ``value`` against time within steps at constant load.

    Each step is centred on its own mean and time, so the slope is the pooled within-step trend;
    a significant positive one at constant load is a leak suspicion (memory, connections).
    """
    frame = pd.DataFrame({"ts": np.asarray(ts, float), "step": np.asarray(step), "y": np.asarray(values, float)})
    frame = frame.dropna().sort_values("ts")
    if len(frame) < 8 or frame.groupby("step")["ts"].count().max() < 3:
        return math.nan, math.nan
    g = frame.groupby("step")
    y = (frame["y"] - g["y"].transform("mean")).to_numpy()
    t = (frame["ts"] - g["ts"].transform("mean")).to_numpy() / 60.0
    if not np.any(t):
        return math.nan, math.nan
    res = _hac(y, t[:, None])
    return float(res.params[0]), float(res.pvalues[0])


def influential_steps(users, values, step) -> list[int]:
    """Steps whose mean has a Cook's distance above 1 on the fit of the k step means (k ≥ 4);
    such a step alone moves the per-user cost. (4/k flags a step in most runs of 5–8 steps.)"""
    frame = pd.DataFrame({"u": np.asarray(users, float), "y": np.asarray(values, float), "s": np.asarray(step)})
    means = frame.dropna().groupby("s").mean()
    k = len(means)
    if k < 4:
        return []
    res = OLS(means["y"].to_numpy(), add_constant(means["u"].to_numpy(), has_constant="add")).fit()
    with np.errstate(all="ignore"):
        cooks = res.get_influence().cooks_distance[0]
    return [int(s) for s, d in zip(means.index, cooks, strict=True) if np.isfinite(d) and d > 1.0]


def regression_diagnostics(per_second: pd.DataFrame, clean_steps, *, alpha: float = ALPHA) -> pd.DataFrame:
    """One row per measured resource: quadratic term and p, within-step drift per minute and p,
    influential steps, and a plain-language ``note`` (empty when nothing is flagged).

    Parameters
    ----------
    per_second : DataFrame
        :attr:`CapacityReport.per_second` (``ts``, ``step``, ``users`` and resource columns).
    clean_steps : iterable of int
        Steps used by the fits.
    alpha : float
        Significance level of every flag.

    Returns
    -------
    DataFrame
    """
    data = per_second[per_second["step"].isin(list(clean_steps))] if len(per_second) else per_second
    rows = []
    for resource, (label, unit) in RESOURCES.items():
        if resource not in data.columns or data[resource].notna().sum() < 5:
            rows.append({"resource": resource, "Resource": label, "note": "not measured"})
            continue
        d = data[["ts", "step", "users", resource]].dropna()
        quad, quad_p = nonlinearity(d["users"], d[resource])
        drift, drift_p = within_step_drift(d["ts"], d["step"], d[resource])
        infl = influential_steps(d["users"], d[resource], d["step"])
        notes = []
        if np.isfinite(quad_p) and quad_p < alpha:
            notes.append("non-linear: cost per user " + ("grows" if quad > 0 else "falls") + " with load"
                         + (" (capacity projection optimistic)" if quad > 0 else ""))
        if np.isfinite(drift_p) and drift_p < alpha and drift > 0:
            notes.append(f"drifts up {drift:.3g} {unit}/min at constant load (leak suspicion)")
        if infl:
            notes.append(f"influential step(s) {', '.join(map(str, infl))}")
        rows.append({"resource": resource, "Resource": label, "quadratic": quad, "quadratic_p": quad_p,
                     "drift_per_min": drift, "drift_p": drift_p, "influential_steps": ",".join(map(str, infl)),
                     "nonlinear": bool(np.isfinite(quad_p) and quad_p < alpha),
                     "leak_suspect": bool(np.isfinite(drift_p) and drift_p < alpha and drift > 0),
                     "note": "; ".join(notes)})
    return pd.DataFrame(rows)
