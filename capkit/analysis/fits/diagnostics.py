"""Diagnostics of the per-resource regressions: non-linearity, drift at constant load, influence.

A straight line is what the capacity projection assumes; these checks say when not to trust it.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.regression.linear_model import OLS
from statsmodels.tools.tools import add_constant

from capkit.schemas import RESOURCES

ALPHA = 0.01  # diagnostics flag at 1 %: six resources × three tests would cry wolf at 5 %


def _step_means(users, values, step) -> pd.DataFrame:
    frame = pd.DataFrame({"u": np.asarray(users, float), "y": np.asarray(values, float), "s": np.asarray(step)})
    return frame.dropna().groupby("s").mean()


def nonlinearity(users, values, step=None) -> tuple[float, float]:
    """(coefficient, p-value) of a quadratic term added to ``value ~ users``, fitted on step means
    (steps are the units: the load is constant within one).

    A significant positive term means the cost per user grows with load: the linear capacity
    is optimistic. Needs ≥ 3 user levels and ≥ 5 steps; (nan, nan) otherwise.
    """
    means = _step_means(users, values, step if step is not None else users)
    u, y = means["u"].to_numpy(), means["y"].to_numpy()
    if len(np.unique(u)) < 3 or len(y) < 5:
        return math.nan, math.nan
    scale = max(float(np.max(np.abs(u))), 1.0)
    X = np.column_stack([np.ones_like(u), u / scale, (u / scale) ** 2])
    res = OLS(y, X).fit()
    return float(res.params[2] / scale**2), float(res.pvalues[2])


def within_step_drift(ts, step, values) -> tuple[float, float]:
    """(slope per minute, p-value) of ``value`` against time within steps at constant load.

    Each step's own slope is one observation (its seconds are autocorrelated); the mean slope
    over the steps is tested with t on steps − 1 degrees of freedom. A significant positive one
    at constant load is a leak suspicion (memory, connections).
    """
    frame = pd.DataFrame({"ts": np.asarray(ts, float), "step": np.asarray(step), "y": np.asarray(values, float)})
    frame = frame.dropna()
    slopes = []
    for _, g in frame.groupby("step"):
        if len(g) >= 3 and np.ptp(g["ts"]) > 0:
            t = (g["ts"] - g["ts"].mean()).to_numpy() / 60.0
            slopes.append(float(t @ (g["y"] - g["y"].mean()).to_numpy() / (t @ t)))
    if len(slopes) < 3:
        return math.nan, math.nan
    slopes = np.asarray(slopes)
    se = slopes.std(ddof=1) / math.sqrt(len(slopes))
    if se == 0:
        return float(slopes.mean()), (0.0 if slopes.mean() != 0 else 1.0)
    return float(slopes.mean()), float(2 * stats.t.sf(abs(slopes.mean()) / se, len(slopes) - 1))


def influential_steps(users, values, step) -> list[int]:
    """Steps whose mean has a Cook's distance above 1 on the fit of the k step means (k ≥ 4);
    such a step alone moves the per-user cost. (4/k flags a step in most runs of 5–8 steps.)"""
    means = _step_means(users, values, step)
    k = len(means)
    if k < 4:
        return []
    res = OLS(means["y"].to_numpy(), add_constant(means["u"].to_numpy(), has_constant="add")).fit()
    with np.errstate(all="ignore"):
        cooks = res.get_influence().cooks_distance[0]
    return [int(s) for s, d in zip(means.index, cooks, strict=True) if np.isfinite(d) and d > 1.0]


DIAGNOSTIC_COLUMNS = ["resource", "Resource", "quadratic", "quadratic_p", "drift_per_min", "drift_p",
                      "influential_steps", "nonlinear", "leak_suspect", "note"]


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
        quad, quad_p = nonlinearity(d["users"], d[resource], d["step"])
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
    # every column on every row: a run with no resource measured has the same table, all "not measured"
    return pd.DataFrame(rows, columns=DIAGNOSTIC_COLUMNS)
