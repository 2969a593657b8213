"""Per-resource regression ``value ~ users`` on step means, and the capacity it implies at a limit.

Inference is at the level of the design: the load is constant within a step, so a step's offset
(a cache refill, the allocator, a neighbour) persists for its whole length and its seconds are
not independent observations. The regression is fitted on **step means** (one point per step,
``t`` with steps − parameters degrees of freedom); per-second samples stay for plots and
within-step diagnostics. When the design separates load from time (a descending pass after the
ascending one, or an interleaved order), a time term carries drift apart from the per-user
slope, so a cache that fills or a leak is not reported as a per-user cost.

An idle step measured **before the first load** is a cold service, not a point on the line: its
memory and pooled connections sit below the same service idle after it has served (imports done
on first use, pools and caches opened, the allocator's arenas grown); kept in the fit, that
one-time jump reads as a per-user cost (the reference service's figures are in
benchmarks/README.md, "Measurements behind the models"). The fit leaves such steps out
(:attr:`ResourceFit.cold_idle` keeps what they measured), so the
baseline is the warm service's idle level, extrapolated from the loaded steps.

:func:`odd_step` finds a step the line through the others cannot predict; per-class demands set
it aside (:mod:`capkit.analysis.fits.demands`). Here it is not applied: setting an honest step aside
5 % of the time took the per-user intervals' coverage of known truth from ≥ 93 % to 91.6 % and the
A/A false alarms above 5 % (``tests/analysis/test_coverage.py``); it needs the variance widened for
the step it removed first.

The prediction interval predicts **a new step's mean** at that load (not one second of it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from capkit.errors import InsufficientDataError
from capkit.schemas import RESOURCES, Interval, NotMeasured, ResourceLimits

# the time term is fitted only when load and time are far from collinear across the steps
MAX_LOAD_TIME_CORRELATION = 0.9
MIN_STEPS_FOR_TIME = 5


@dataclass
class ResourceFit:
    """Baseline (idle) and per-user cost of one resource, and its capacity at ``limit``.

    ``capacity`` is an :class:`~capkit.schemas.Interval`: its estimate is where the fitted mean
    meets the limit, ``low`` where the upper prediction bound meets it (the planning figure),
    ``high`` where the lower bound does — or :class:`~capkit.schemas.NotMeasured` when the
    per-user cost is not significant.
    """

    resource: str
    limit: float
    level: float
    steps: int  # step means fitted: the units of inference
    samples: int  # per-second samples behind them
    baseline: Interval
    per_user: Interval
    per_user_p: float
    drift_per_hour: Interval | None  # time term, when the design separates load from time
    r2: float
    resid_sd: float  # spread of a step mean around the line
    params: np.ndarray = field(repr=False)  # intercept, per user[, per hour]
    cov: np.ndarray = field(repr=False)
    df_resid: float = field(repr=False, default=1.0)
    t_mid_h: float = field(repr=False, default=0.0)  # hours (since the run's first step) predictions use
    cold_idle: float | None = None  # mean of the idle step(s) before the first load, left out of the fit
    capacity: Interval | NotMeasured = NotMeasured("not computed")

    @property
    def significant(self) -> bool:
        """A positive per-user cost whose interval excludes zero."""
        return self.per_user.estimate > 0 and self.per_user.low > 0

    def _t(self, level: float | None = None) -> float:
        return float(stats.t.ppf(0.5 + (level or self.level) / 2, max(self.df_resid, 1.0)))

    def _design(self, users: np.ndarray) -> np.ndarray:
        cols = [np.ones_like(users), users]
        if len(self.params) == 3:
            cols.append(np.full_like(users, self.t_mid_h))
        return np.column_stack(cols)

    def predict(self, users, level: float | None = None) -> pd.DataFrame:
        """Mean, confidence bounds and prediction bounds (of a new step's mean) at ``users``."""
        u = np.atleast_1d(np.asarray(users, dtype=float))
        X = self._design(u)
        mean = X @ self.params
        var_mean = np.einsum("ij,jk,ik->i", X, self.cov, X)
        t = self._t(level)
        se_mean, se_obs = np.sqrt(var_mean), np.sqrt(var_mean + self.resid_sd**2)
        return pd.DataFrame({"users": u, "mean": mean, "ci_low": mean - t * se_mean, "ci_high": mean + t * se_mean,
                             "pi_low": mean - t * se_obs, "pi_high": mean + t * se_obs})

    def bound(self, which: str, level: float | None = None):
        """A fast scalar function users -> ``mean``, ``pi_high`` or ``pi_low`` (for root finding)."""
        t = self._t(level)
        sign = {"mean": 0.0, "pi_high": 1.0, "pi_low": -1.0}[which]
        params, cov, s2 = self.params, self.cov, self.resid_sd**2
        extra = len(params) == 3

        def f(n: float) -> float:
            x = np.array([1.0, n, self.t_mid_h]) if extra else np.array([1.0, n])
            return float(x @ params + sign * t * math.sqrt(max(float(x @ cov @ x), 0.0) + s2))
        return f

    def users_at(self, value: float) -> Interval | NotMeasured:
        """Users at which the resource reaches ``value``: estimate from the fitted mean, ``low``
        where the upper prediction bound gets there (plan with it), ``high`` where the lower does
        (infinite when the slope's lower confidence bound is not above zero)."""
        if not self.significant:
            return NotMeasured(f"no significant per-user cost (p = {self.per_user_p:.2g})")
        mean = solve_users(self.bound("mean"), value)
        low = solve_users(self.bound("pi_high"), value)
        high = solve_users(self.bound("pi_low"), value)
        return Interval(mean, min(low, mean), max(high, mean), self.level)


def solve_users(fn, limit: float, cap: float = 1e7) -> float:
    """Smallest users ≥ 0 where increasing ``fn`` reaches ``limit`` (inf if never below ``cap``)."""
    if fn(0.0) >= limit:
        return 0.0
    hi = 1.0
    while fn(hi) < limit:
        hi *= 2
        if hi > cap:
            return math.inf
    lo = 0.0
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if fn(mid) < limit else (lo, mid)
    return hi


def step_means(users, values, steps, times=None) -> pd.DataFrame:
    """One row per step: ``users``, ``value`` (mean), ``n`` (samples) and ``t_h`` (mid-time, hours)."""
    frame = pd.DataFrame({"users": np.asarray(users, float), "value": np.asarray(values, float),
                          "step": np.asarray(steps) if steps is not None else np.asarray(users, float),
                          "ts": np.asarray(times, float) if times is not None else np.nan})
    frame = frame[np.isfinite(frame["users"]) & np.isfinite(frame["value"])]
    g = frame.groupby("step", sort=True)
    out = pd.DataFrame({"users": g["users"].mean(), "value": g["value"].mean(), "n": g["value"].size(),
                        "ts": g["ts"].mean()})
    out["t_h"] = (out["ts"] - out["ts"].min()) / 3600.0 if out["ts"].notna().all() else np.nan
    return out.reset_index()


def cold_steps(means: pd.DataFrame) -> pd.Series:
    """Which rows of :func:`step_means` are idle steps measured before the first loaded step (in
    time when the steps have times, else in step order; none when the steps are user levels)."""
    order = means["ts"] if means["ts"].notna().all() else means["step"]
    loaded = means["users"] > 0
    if not loaded.any() or not pd.api.types.is_numeric_dtype(order):
        return pd.Series(False, index=means.index)
    return (~loaded) & (order < order[loaded].min())


def fit_resource_regression(users, values, *, resource: str, limit: float, level: float = 0.95,
                            steps=None, times=None, keep_cold: bool = False) -> ResourceFit:
    """Fit ``value ~ users`` (+ time, when the design allows) on the step means of the samples.

    Parameters
    ----------
    users, values : array-like
        Per-second samples and the users of their step.
    resource : str
        Canonical resource name (a key of :data:`~capkit.schemas.RESOURCES`).
    limit : float
        The resource's limit, for the capacity.
    level : float
        Level of every interval.
    steps : array-like, optional
        The step of each sample (the units of inference); default: one step per user level.
    times : array-like, optional
        Epoch seconds of each sample; with them, a time term is fitted when load and time are
        not collinear across the steps (a design with a descending pass or interleaved order).
    keep_cold : bool
        Fit the idle step(s) measured before the first load too (by default they are left out:
        a cold service is not on the warm service's line; see the module's docstring).

    Returns
    -------
    ResourceFit

    Raises
    ------
    InsufficientDataError
        With fewer than 3 steps at 2 user levels (a line through 2 points has no error left).
    """
    means = step_means(users, values, steps, times)
    cold_idle = None
    if steps is not None and not keep_cold:
        cold = cold_steps(means)
        if cold.any():
            cold_idle = float(np.average(means.loc[cold, "value"], weights=means.loc[cold, "n"]))
            means = means[~cold].reset_index(drop=True)
            means["t_h"] = means["t_h"] - means["t_h"].min()
    levels = means["users"].nunique()
    if levels < 2 or len(means) < 3:
        raise InsufficientDataError(
            f"{resource}: {len(means)} step(s) at {levels} user level(s)"
            f"{' after the cold idle step' if cold_idle is not None else ''}; a fit needs at least 3 clean "
            f"steps at 2 or more user levels — run more steps")
    u, y = means["users"].to_numpy(float), means["value"].to_numpy(float)
    cols = [np.ones_like(u), u]
    t_h = means["t_h"].to_numpy(float)
    with_time = (len(means) >= MIN_STEPS_FOR_TIME and np.isfinite(t_h).all() and np.ptp(t_h) > 0
                 and abs(np.corrcoef(u, t_h)[0, 1]) < MAX_LOAD_TIME_CORRELATION)
    if with_time:
        cols.append(t_h)
    X = np.column_stack(cols)
    params, cov, resid_sd, df = _ols(X, y)
    tq = float(stats.t.ppf(0.5 + level / 2, max(df, 1)))
    se = np.sqrt(np.maximum(np.diag(cov), 0.0))
    p_user = float(2 * stats.t.sf(abs(params[1]) / se[1], max(df, 1))) if se[1] > 0 else 0.0
    tss = float(np.sum((y - y.mean()) ** 2))
    rss = float(np.sum((y - X @ params) ** 2))
    fit = ResourceFit(
        resource=resource, limit=float(limit), level=level, steps=len(means), samples=int(means["n"].sum()),
        baseline=Interval(float(params[0]), float(params[0] - tq * se[0]), float(params[0] + tq * se[0]), level),
        per_user=Interval(float(params[1]), float(params[1] - tq * se[1]), float(params[1] + tq * se[1]), level),
        per_user_p=p_user,
        drift_per_hour=(Interval(float(params[2]), float(params[2] - tq * se[2]), float(params[2] + tq * se[2]),
                                 level) if with_time else None),
        r2=1 - rss / tss if tss > 0 else math.nan, resid_sd=resid_sd, params=params, cov=cov, df_resid=df,
        t_mid_h=float(np.nanmean(t_h)) if with_time else 0.0, cold_idle=cold_idle)
    fit.capacity = fit.users_at(limit)
    return fit


ODD_SHARE = 0.05  # an honest step is set aside this often (family-wise over a run's steps)


def odd_step(X: np.ndarray, y: np.ndarray) -> int | None:
    """The step (row) whose externally studentized residual is largest, when it is beyond the
    Bonferroni-corrected t quantile (:data:`ODD_SHARE` family-wise); None otherwise or with fewer
    than parameters + 3 steps (too few to tell an odd step from the line)."""
    n, p = X.shape
    if n < p + 3:
        return None
    params = np.linalg.lstsq(X, y, rcond=None)[0]
    resid = y - X @ params
    hat = np.einsum("ij,jk,ik->i", X, np.linalg.pinv(X.T @ X), X)
    sse = float(resid @ resid)
    with np.errstate(divide="ignore", invalid="ignore"):
        s2_i = (sse - resid ** 2 / (1 - hat)) / (n - p - 1)  # the residual variance without step i
        t = np.abs(resid) / np.sqrt(s2_i * (1 - hat))
    t = np.where(np.isfinite(t), t, 0.0)
    worst = int(np.argmax(t))
    cut = float(stats.t.ppf(1 - ODD_SHARE / (2 * n), n - p - 1))
    return worst if t[worst] > cut else None


def _ols(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Least squares with the classical covariance: (params, cov, residual sd, residual df)."""
    params, *_ = np.linalg.lstsq(X, y, rcond=None)
    df = float(len(y) - X.shape[1])
    resid = y - X @ params
    s2 = float(resid @ resid) / df if df > 0 else 0.0
    cov = s2 * np.linalg.pinv(X.T @ X)
    return params, cov, math.sqrt(s2), df


def fit_resources(per_second: pd.DataFrame, limits: ResourceLimits, *, clean_steps=None,
                  level: float = 0.95) -> dict[str, ResourceFit | NotMeasured]:
    """Fit every resource of :data:`RESOURCES` present in ``per_second`` (output of
    :func:`~capkit.analysis.data.resources.resource_frame`), restricted to ``clean_steps``.

    A resource that cannot be fitted maps to :class:`~capkit.schemas.NotMeasured` saying why.
    """
    data = per_second if clean_steps is None else per_second[per_second["step"].isin(list(clean_steps))]
    out: dict = {}
    for resource in [*RESOURCES, *limits.custom]:
        if resource not in data.columns or data[resource].notna().sum() == 0:
            out[resource] = NotMeasured("no collector measured it in this run")
            continue
        d = data[["ts", "users", resource, "step"]].dropna()
        limit = limits.limit_for(resource)
        if not math.isfinite(limit):
            out[resource] = NotMeasured("its size was neither given nor reported by the service")
            continue
        try:
            out[resource] = fit_resource_regression(d["users"], d[resource], resource=resource,
                                                    limit=limit, level=level,
                                                    steps=d["step"], times=d["ts"])
        except InsufficientDataError as exc:
            out[resource] = NotMeasured(str(exc))
    return out


def binding_constraint(fits: dict) -> ResourceFit | None:
    """The fitted resource with the smallest planning capacity (its ``capacity.low``), or None."""
    finite = [f for f in fits.values() if isinstance(f, ResourceFit) and isinstance(f.capacity, Interval)
              and math.isfinite(f.capacity.low)]
    return min(finite, key=lambda f: f.capacity.low) if finite else None
