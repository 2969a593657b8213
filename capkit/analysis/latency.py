"""Latency model: the response-time law for the mean, a fitted tail ratio for p95.

R(N) = N / X(N) − Z with X(N) from the USL fit and Z the think time; p95(N) = r(N) · R(N) with
log r(N) = a + b·N fitted on the steps (b kept only when significant at the model's level).
A step's p95 is the ⌊0.95 n + ½⌋-th of its n requests (the rank an HDR histogram reports), which
sits below the population's p95 by an amount that shrinks as 1/n (−1.2 % in log at 236 lognormal
requests, −5 % at 40); the tail is fitted on the p95s corrected for it (:func:`rank_offset`), so
that the model and its crossings describe the service's p95, not a short step's.
Intervals come from the USL's bootstrap draws (:meth:`~capkit.analysis.usl.USLFit.draws`) and,
per draw, Z refitted against the draw's throughput (when estimated) and the tail refitted on its
residuals resampled, the pretest repeated (:func:`_step_bootstrap`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from capkit.analysis.usl import USLFit, usl_throughput
from capkit.errors import InsufficientDataError
from capkit.records.histograms import percentile_rank
from capkit.schemas import Interval

MIN_RESPONSE_S = 1e-4
Z95, Z99 = float(stats.norm.ppf(0.95)), float(stats.norm.ppf(0.99))


@dataclass
class LatencyModel:
    """Mean and p95 latency against users, and where p95 crosses each threshold."""

    think_time_s: float
    think_time_estimated: bool
    tail_a: float
    tail_b: float
    usl: USLFit
    level: float
    observed: pd.DataFrame  # users, mean_ms, p95_ms of the steps it was fitted on
    crossings: pd.DataFrame  # threshold, ms, users, low, high
    boot: np.ndarray = field(repr=False)  # (B, 6): sigma, kappa, lambda, Z, a, b

    def _curves(self, users: np.ndarray, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        sigma, kappa, lam, z, a, b = (theta[..., i:i + 1] for i in range(6))
        x = usl_throughput(users[None, :], sigma, kappa, lam)
        with np.errstate(divide="ignore", invalid="ignore"):
            r = np.maximum(users[None, :] / x - z, MIN_RESPONSE_S)
        return 1000 * r, 1000 * r * np.exp(a + b * users[None, :])

    def predict(self, users) -> pd.DataFrame:
        """``users, mean_ms, p95_ms, p95_low, p95_high`` (bounds at :attr:`level`)."""
        u = np.atleast_1d(np.asarray(users, dtype=float))
        point = np.array([[self.usl.sigma, self.usl.kappa, self.usl.lambda_, self.think_time_s,
                           self.tail_a, self.tail_b]])
        mean, p95 = self._curves(u, point)
        _, boot = self._curves(u, self.boot)
        q = (1 - self.level) / 2
        return pd.DataFrame({"users": u, "mean_ms": mean[0], "p95_ms": p95[0],
                             "p95_low": np.quantile(boot, q, axis=0), "p95_high": np.quantile(boot, 1 - q, axis=0)})

    def crossing(self, name: str) -> Interval:
        """Users at which the modelled p95 reaches the ``name`` ("warning"/"critical") threshold;
        an infinite estimate when it does not within the searched range."""
        row = self.crossings[self.crossings["threshold"] == name].iloc[0]
        return Interval(float(row["users"]), float(row["low"]), float(row["high"]), self.level)

    def threshold_ms(self, name: str) -> float:
        return float(self.crossings.loc[self.crossings["threshold"] == name, "ms"].iloc[0])


def rank_offset(rows: pd.DataFrame) -> np.ndarray:
    """Per step, the expected shortfall of log p95 (as measured) below the log of the population p95.

    The k-th of n values of a log-normal distribution has the expected log µ + s·Φ⁻¹((k − 3/8)/(n + 1/4))
    (Blom), where the population p95 has µ + s·z₉₅; s is the *local* spread of the log-latency at the
    tail, (log p99 − log p95)/(z₉₉ − z₉₅), pooled over the steps by their requests. Local, so that a
    mix of fast and slow endpoints (a p50 far below the p95) does not inflate it; p99's own shortfall
    makes s, and so the correction, err small. Zero without a ``requests`` or ``p99_ms`` column.
    """
    if "requests" not in rows or "p99_ms" not in rows:
        return np.zeros(len(rows))
    n = rows["requests"].to_numpy(float)
    spread = np.log(rows["p99_ms"].to_numpy(float) / rows["p95_ms"].to_numpy(float))
    ok = np.isfinite(spread) & (n > 0)
    if not ok.any():
        return np.zeros(len(rows))
    s = max(float(np.average(spread[ok], weights=n[ok])), 0.0) / (Z99 - Z95)
    k = percentile_rank(n, 95)
    with np.errstate(divide="ignore", invalid="ignore"):
        offset = s * (Z95 - stats.norm.ppf((k - 0.375) / (n + 0.25)))
    return np.where(n > 0, offset, 0.0)


def _first_crossing(grid: np.ndarray, curves: np.ndarray, threshold: float) -> np.ndarray:
    """Per row of ``curves`` (on ``grid``), the interpolated first users where it reaches ``threshold``."""
    above = curves >= threshold
    j = above.argmax(axis=1)
    rows = np.arange(curves.shape[0])
    y0, y1 = curves[rows, np.maximum(j - 1, 0)], curves[rows, j]
    g0, g1 = grid[np.maximum(j - 1, 0)], grid[j]
    with np.errstate(divide="ignore", invalid="ignore"):
        inner = np.where(y1 > y0, g0 + (threshold - y0) / (y1 - y0) * (g1 - g0), g1)
    out = np.where(j == 0, grid[0], inner)
    return np.where(above[rows, j], out, math.inf)


def _tail_fits(n: np.ndarray, log_ratio: np.ndarray, w: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Per row of ``log_ratio`` (steps at ``n``, weights ``w``): the tail's a and b, with b kept
    only when its WLS t-test is significant at ``level`` (b = 0 and a the weighted mean otherwise)."""
    lr = np.atleast_2d(log_ratio)
    wn = w / w.sum()
    l_mean = lr @ wn
    a, b = l_mean.copy(), np.zeros(len(lr))
    m = len(n)
    if m >= 3:
        dn = n - wn @ n
        sxx = float(wn @ dn**2)
        if sxx > 1e-12 * max(float(wn @ n) ** 2, 1.0):
            slope = (lr * dn) @ wn / sxx
            resid = lr - l_mean[:, None] - slope[:, None] * dn
            se = np.sqrt(((resid**2) @ wn) / (m - 2) / sxx)
            with np.errstate(divide="ignore", invalid="ignore"):
                keep = np.abs(slope) / se > stats.t.ppf(1 - (1 - level) / 2, m - 2)
            b = np.where(keep, slope, 0.0)
            a = np.where(keep, l_mean - slope * (wn @ n), l_mean)
    return a, b


def _step_bootstrap(rng, n, r, log_ratio, w, theta, theta_hat, z_given, tail, level: float):
    """Per USL draw, Z (when estimated) and the tail (a, and b when the draw's pretest keeps it).

    - Z: against the draw's own throughput on every step, so that R(N) still meets the measured
      means (a draw with more throughput has a shorter think time), plus the noise of the steps'
      means, resampled from the point fit's residuals.
    - The tail: the point fit's curve plus its residuals resampled (weighted: a step's log ratio
      has variance ∝ 1/requests), inflated by √(m/(m − p)) for the p parameters fitted, and
      refitted with the pretest repeated at ``level``, so the intervals carry the chance that the
      point fit's choice goes the other way. On the generator's runs (no true slope) the point
      fits keep a slope in 6 % of runs, these draws in 9 %; the steps resampled as cases (duplicates,
      a level missing) kept one in 20 %.
    - Each tail model's deviations from the point fit are scaled by t(df)/z, df = steps − its
      parameters, as the USL's are.
    """
    B, m = len(theta), len(n)
    idx = rng.integers(0, m, size=(B, m))
    if z_given is None:
        xb = usl_throughput(n[None, :], theta[:, :1], theta[:, 1:2], theta[:, 2:3])
        z_i = n / usl_throughput(n, *theta_hat) - r
        z_b = np.maximum((n / xb - r).mean(axis=1) + (z_i - z_i.mean())[idx].mean(axis=1), 0.0)
    else:
        z_b = np.full(B, z_given)
    a_hat, b_hat = tail
    fitted = a_hat + b_hat * n
    p = 2 if b_hat else 1
    sw = np.sqrt(w / w.mean())
    u = (log_ratio - fitted) * sw * math.sqrt(m / (m - p)) if m > p else np.zeros(m)
    u = u - u.mean()
    lb = fitted + u[rng.integers(0, m, size=(B, m))] / sw
    a_b, b_b = _tail_fits(n, lb, w, level)
    q = 0.5 + level / 2
    # each model's draws scatter around its own fit of the curve they were drawn from
    models = ((b_b != 0, 2, a_hat, b_hat), (b_b == 0, 1, float(np.average(fitted, weights=w)), 0.0))
    for kept, params, a_c, b_c in models:
        factor = float(stats.t.ppf(q, m - params) / stats.norm.ppf(q)) if m > params else 1.0
        a_b[kept] = a_c + (a_b[kept] - a_c) * factor
        b_b[kept] = b_c + (b_b[kept] - b_c) * factor
    return z_b, a_b, b_b


def fit_latency(steps: pd.DataFrame, usl: USLFit, *, think_time_s: float | None = None,
                warning_ms: float = 500.0, critical_ms: float = 2000.0, level: float = 0.95,
                bootstrap: int = 200, seed: int = 0, max_users: float | None = None) -> LatencyModel:
    """Fit the latency model on clean steps.

    Parameters
    ----------
    steps : DataFrame
        Step summary rows to use (``users``, ``rps``, ``mean_ms``, ``p95_ms``); idle rows are dropped.
    usl : USLFit
        Throughput model of the same steps (its bootstrap estimates give the intervals).
    think_time_s : float, optional
        Z of the closed system; estimated from the steps as mean(N/X̂(N) − R) when None.
    warning_ms, critical_ms : float
        p95 thresholds whose crossings are reported.
    level : float
        Interval level.
    bootstrap, seed : int
        Bootstrap resamples (when the USL has none) and the seed.
    max_users : float, optional
        Search crossings up to here (default 20 × the largest measured users).

    Returns
    -------
    LatencyModel

    Raises
    ------
    InsufficientDataError
        With fewer than 2 usable steps.
    """
    rows = steps[(steps["users"] > 0) & np.isfinite(steps["mean_ms"]) & np.isfinite(steps["p95_ms"])
                 & (steps["rps"] > 0)]
    if len(rows) < 2:
        raise InsufficientDataError(f"latency model: {len(rows)} step(s) with requests; it needs at least 2")
    n = rows["users"].to_numpy(float)
    r = rows["mean_ms"].to_numpy(float) / 1000
    log_ratio = np.log(rows["p95_ms"].to_numpy(float) / rows["mean_ms"].to_numpy(float)) + rank_offset(rows)
    # Z is estimated against the *fitted* throughput, so that R(N) passes through the measured
    # means: N/X − R alone subtracts two large, noisy numbers at low load.
    z_i = n / usl.predict(n) - r
    estimated = think_time_s is None
    z = max(float(np.mean(z_i)), 0.0) if estimated else float(think_time_s)
    # a step's p95 rests on its requests: a 60-request step's is noisy and biased low, so the
    # tail is fitted with the steps weighted by their requests (∝ throughput, the windows being equal)
    w = rows["rps"].to_numpy(float)
    a, b = (float(v[0]) for v in _tail_fits(n, log_ratio, w, level))  # the pretest at the model's own level
    rng = np.random.default_rng(seed)
    theta = usl.draws(level)
    if theta is None or not len(theta):
        se = np.array([usl.stderr.get(p, 0.0) for p in ("sigma", "kappa", "lambda_")], dtype=float)
        se = np.where(np.isfinite(se), se, 0.0)
        theta = np.abs(np.array([usl.sigma, usl.kappa, usl.lambda_]) + rng.normal(size=(max(bootstrap, 50), 3)) * se)
    z_b, a_b, b_b = _step_bootstrap(rng, n, r, log_ratio, w, theta, (usl.sigma, usl.kappa, usl.lambda_),
                                   z if not estimated else None, (a, b), level)
    boot = np.column_stack([theta, z_b, a_b, b_b])
    model = LatencyModel(think_time_s=z, think_time_estimated=estimated, tail_a=a, tail_b=b, usl=usl, level=level,
                         observed=rows[["users", "mean_ms", "p95_ms"]].reset_index(drop=True),
                         crossings=pd.DataFrame(), boot=boot)
    top = max_users or 20 * float(n.max())
    grid = np.linspace(1.0, top, 4000)
    point = np.array([[usl.sigma, usl.kappa, usl.lambda_, z, a, b]])
    _, p95 = model._curves(grid, point)
    _, p95_boot = model._curves(grid, boot)
    q = (1 - level) / 2
    rows_out = []
    for name, ms in (("warning", warning_ms), ("critical", critical_ms)):
        users = float(_first_crossing(grid, p95, ms)[0])
        cb = _first_crossing(grid, p95_boot, ms)
        low, high = (float(np.quantile(cb, q, method="lower")), float(np.quantile(cb, 1 - q, method="higher")))
        rows_out.append({"threshold": name, "ms": ms, "users": users, "low": low, "high": high})
    model.crossings = pd.DataFrame(rows_out)
    return model
