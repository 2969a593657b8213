"""Per-resource regression ``value ~ users`` and the capacity it implies at a limit."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.regression.linear_model import OLS
from statsmodels.tools.tools import add_constant

from capkit.errors import InsufficientDataError
from capkit.schemas import RESOURCES, ResourceLimits


@dataclass
class ResourceFit:
    """Baseline (idle) and per-user cost of one resource, and its capacity at ``limit``.

    ``capacity`` is where the fitted mean meets the limit; ``capacity_low`` where the upper
    prediction bound meets it (the planning figure), ``capacity_high`` where the lower bound does.
    """

    resource: str
    n: int
    steps: int
    level: float
    baseline: float
    baseline_ci: tuple[float, float]
    per_user: float
    per_user_ci: tuple[float, float]
    per_user_p: float
    r2: float
    resid_sd: float
    limit: float
    capacity: float
    capacity_low: float
    capacity_high: float
    params: np.ndarray = field(repr=False)
    cov: np.ndarray = field(repr=False)
    df_resid: float = field(repr=False, default=1.0)

    def predict(self, users, level: float | None = None) -> pd.DataFrame:
        """Mean, confidence and prediction bounds at ``users``."""
        level = level or self.level
        u = np.atleast_1d(np.asarray(users, dtype=float))
        X = np.column_stack([np.ones_like(u), u])
        mean = X @ self.params
        var_mean = np.einsum("ij,jk,ik->i", X, self.cov, X)
        t = stats.t.ppf(0.5 + level / 2, self.df_resid)
        se_mean, se_obs = np.sqrt(var_mean), np.sqrt(var_mean + self.resid_sd**2)
        return pd.DataFrame({"users": u, "mean": mean, "ci_low": mean - t * se_mean, "ci_high": mean + t * se_mean,
                             "pi_low": mean - t * se_obs, "pi_high": mean + t * se_obs})

    def bound(self, which: str, level: float | None = None):
        """A fast scalar function users -> ``mean``, ``pi_high`` or ``pi_low`` (for root finding)."""
        t = stats.t.ppf(0.5 + (level or self.level) / 2, self.df_residual_or_one)
        b0, b1 = self.params
        c00, c01, c11 = self.cov[0, 0], self.cov[0, 1], self.cov[1, 1]
        sign = {"mean": 0.0, "pi_high": 1.0, "pi_low": -1.0}[which]
        s2 = self.resid_sd**2
        return lambda n: b0 + b1 * n + sign * t * math.sqrt(max(c00 + 2 * c01 * n + c11 * n * n, 0.0) + s2)

    @property
    def df_residual_or_one(self) -> float:
        return self.df_resid if self.df_resid > 0 else 1.0

    @property
    def significant(self) -> bool:
        return self.per_user > 0 and self.per_user_p < 1 - self.level


def _solve_users(fn, limit: float, cap: float = 1e7) -> float:
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


def fit_resource_regression(users, values, *, resource: str, limit: float, level: float = 0.95,
                            hac_lags: int | None = None, steps: int | None = None) -> ResourceFit:
    """OLS of ``values`` on ``users`` with HAC (Newey-West) robust standard errors.

    Samples are per second, in time order: HAC keeps the intervals honest when neighbouring
    seconds are correlated. ``hac_lags`` defaults to ⌊4 (n/100)^(2/9)⌋.

    Raises :class:`InsufficientDataError` with fewer than 2 distinct user levels or 5 samples.
    """
    u = np.asarray(users, dtype=float)
    y = np.asarray(values, dtype=float)
    ok = np.isfinite(u) & np.isfinite(y)
    u, y = u[ok], y[ok]
    levels = len(np.unique(u))
    if levels < 2 or len(y) < 5:
        raise InsufficientDataError(
            f"{resource}: {len(y)} samples at {levels} user level(s); a fit needs at least 2 clean steps "
            f"and 5 samples — run longer steps or more of them")
    lags = hac_lags if hac_lags is not None else int(4 * (len(y) / 100) ** (2 / 9))
    X = add_constant(u, has_constant="add")
    res = OLS(y, X).fit(cov_type="HAC", cov_kwds={"maxlags": lags, "use_correction": True}, use_t=True)
    ci = res.conf_int(alpha=1 - level)
    fit = ResourceFit(
        resource=resource, n=len(y), steps=steps or levels, level=level,
        baseline=float(res.params[0]), baseline_ci=(float(ci[0, 0]), float(ci[0, 1])),
        per_user=float(res.params[1]), per_user_ci=(float(ci[1, 0]), float(ci[1, 1])),
        per_user_p=float(res.pvalues[1]), resid_sd=float(np.sqrt(res.scale)),
        r2=float(res.rsquared) if res.centered_tss > 0 else math.nan,  # 0/0 for a constant resource
        limit=float(limit), capacity=math.inf, capacity_low=math.inf, capacity_high=math.inf,
        params=np.asarray(res.params, dtype=float), cov=np.asarray(res.cov_params(), dtype=float),
        df_resid=float(res.df_resid))
    if fit.per_user > 0:
        fit.capacity = _solve_users(fit.bound("mean"), limit)
        fit.capacity_low = _solve_users(fit.bound("pi_high"), limit)
        fit.capacity_high = _solve_users(fit.bound("pi_low"), limit) if fit.per_user_ci[0] > 0 else math.inf
    return fit


def fit_resources(per_second: pd.DataFrame, limits: ResourceLimits, *, clean_steps=None,
                  level: float = 0.95) -> dict[str, ResourceFit | InsufficientDataError]:
    """Fit every resource of :data:`RESOURCES` present in ``per_second`` (output of
    :func:`~capkit.analysis.steps.per_second_resources`), restricted to ``clean_steps``.

    A resource that cannot be fitted maps to the error saying why, so a report can show it.
    """
    data = per_second if clean_steps is None else per_second[per_second["step"].isin(list(clean_steps))]
    out: dict = {}
    for resource in RESOURCES:
        if resource not in data.columns:
            out[resource] = InsufficientDataError(f"{resource}: not measured in this run")
            continue
        d = data[["users", resource, "step"]].dropna().sort_index()
        try:
            out[resource] = fit_resource_regression(d["users"], d[resource], resource=resource,
                                                    limit=limits.limit_for(resource), level=level,
                                                    steps=d["step"].nunique())
        except InsufficientDataError as exc:
            out[resource] = exc
    return out


def _fmt(x: float, digits: int = 3) -> str:
    if not math.isfinite(x):
        return "–"
    return f"{x:.{digits}g}" if abs(x) < 1000 else f"{x:,.0f}"


def _users(x: float) -> str:
    return "not reached" if math.isinf(x) else f"{x:,.0f}"


def baseline_table(fits: dict, limits: ResourceLimits) -> pd.DataFrame:
    """The seed's Baseline Metrics table, measured: one row per resource, intervals included."""
    rows = []
    for resource, (label, unit) in RESOURCES.items():
        fit = fits.get(resource)
        if not isinstance(fit, ResourceFit):
            rows.append({"Resource": f"{label} ({unit})", "Baseline (idle)": "–", "Per active user": "–",
                         "Max capacity": "not measured" if fit is None or "not measured" in str(fit) else str(fit)})
            continue
        half_b = (fit.baseline_ci[1] - fit.baseline_ci[0]) / 2
        half_u = (fit.per_user_ci[1] - fit.per_user_ci[0]) / 2
        if math.isinf(fit.capacity):
            cap = f"not reached (no significant per-user cost; limit {_fmt(fit.limit)} {unit})"
        else:
            cap = (f"{_users(fit.capacity)} users ({_users(fit.capacity_low)}–{_users(fit.capacity_high)}) "
                   f"at {_fmt(fit.limit)} {unit}")
        rows.append({"Resource": f"{label} ({unit})",
                     "Baseline (idle)": f"{_fmt(fit.baseline)} ± {_fmt(half_b, 2)}",
                     "Per active user": f"{_fmt(fit.per_user)} ± {_fmt(half_u, 2)}",
                     "Max capacity": cap})
    return pd.DataFrame(rows)


def binding_constraint(fits: dict) -> ResourceFit | None:
    """The fitted resource with the smallest planning capacity, or None if none is finite."""
    finite = [f for f in fits.values() if isinstance(f, ResourceFit) and math.isfinite(f.capacity_low)]
    return min(finite, key=lambda f: f.capacity_low) if finite else None
