"""Latency model: the steps' measured mean latency in the response-time law's form, a tail ratio for p95.

In a closed system whose throughput follows the USL, the response-time law R(N) = N / X(N) − Z is a
quadratic in N: c₀ + c₁·N + c₂·N² with c₂ = κ/λ ≥ 0. The mean curve is fitted in that form on the
steps' *measured* mean latencies, not derived from the USL's throughput: near the bottom of the range
R is a small difference of two large numbers there (N/X ≈ 1.16 s against R ≈ 0.16 s at 4 users of the
default known truth), and a step's throughput pins R to ±20 % where its own mean latency gives ±7 %.
The USL still gives the think time the two fits imply (:attr:`LatencyModel.think_time_s`).

A step's mean latency is off by its sampling noise (the squared coefficient of variation of its
requests' latency over their number, :func:`sampling_variance`) plus a step offset that persists for the whole
step (a cache, a neighbour: τ, estimated from the residuals); the fit weights the steps by the inverse
of that relative variance. p95(N) = R(N) · exp(a + b·N), log(p95/mean) fitted on the steps weighted
by their requests, b kept only when significant at the model's level; each step's p95 is first
corrected for its rank (:func:`rank_offset`: the ⌊0.95 n + ½⌋-th of n requests sits below the
population's p95 by ~1/n, −1.2 % in log at 236 log-normal requests, −5 % at 40).

Intervals: the two fits' residuals resampled by step (one index for both), each refitted (the tail
with its pretest repeated); the draws' deviations from the point curve are scaled by t(df)/z at the
level, df the Welch–Satterthwaite combination of the mean curve's (steps − 3) and the tail's
(steps − its parameters) by their shares of the variance at each N, as a pivot of two variance
estimates has (:meth:`LatencyModel.band`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from capkit.analysis.fits.usl import USLFit
from capkit.errors import InsufficientDataError
from capkit.records.histograms import percentile_rank
from capkit.schemas import Interval

MIN_RESPONSE_S = 1e-4
MIN_VARIANCE = 1e-8  # a step mean's relative variance is never taken as exactly 0
Z95, Z99 = float(stats.norm.ppf(0.95)), float(stats.norm.ppf(0.99))


@dataclass
class LatencyModel:
    """Mean and p95 latency against users; :meth:`users_at` says where p95 crosses a threshold."""

    mean_coef: tuple[float, float, float]  # c0 (s), c1 (s/user), c2 (s/user²) of R(N)
    tail_a: float
    tail_b: float
    think_time_s: float | None  # Z the USL's throughput and the mean curve imply: mean of N/X̂(N) − R̂(N)
    step_offset: float  # τ: a step mean's relative sd beyond its sampling noise
    df: tuple[int, int]  # residual degrees of freedom of the mean curve and of the tail
    level: float
    observed: pd.DataFrame  # users, mean_ms, p95_ms of the steps it was fitted on
    boot: np.ndarray = field(repr=False)  # (B, 5) resampled fits: c0, c1, c2, a, b (not yet scaled)
    max_users: float = math.inf  # crossings are searched up to here
    _grid_band: tuple | None = field(default=None, repr=False, compare=False)

    def _log_curves(self, users: np.ndarray, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """log R (s) and log(p95/R) on ``users`` for each row of ``theta`` (c0, c1, c2, a, b)."""
        theta = np.atleast_2d(theta)
        c0, c1, c2, a, b = (theta[:, i:i + 1] for i in range(5))
        u = users[None, :]
        return np.log(np.maximum(c0 + c1 * u + c2 * u**2, MIN_RESPONSE_S)), a + b * u

    def band(self, users) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Mean and p95 (ms) on ``users`` and the p95 draws (B, len(users)) whose quantiles are its band.

        Each draw is the point curve plus the resampled fits' deviation, scaled by t(df)/z with df
        the Welch–Satterthwaite combination of the two fits' residual df by their variance at each
        N; with no residual left (as many steps as parameters) the draws are NaN: no interval."""
        u = np.atleast_1d(np.asarray(users, dtype=float))
        point = np.array([*self.mean_coef, self.tail_a, self.tail_b])
        log_r, log_t = (c[0] for c in self._log_curves(u, point))
        d_r, d_t = (c - p for c, p in zip(self._log_curves(u, self.boot), (log_r, log_t), strict=True))
        df_r, df_t = self.df
        if df_r <= 0 or df_t <= 0:
            factor = np.full(u.size, np.nan)
        else:
            v_r, v_t = d_r.var(axis=0), d_t.var(axis=0)
            with np.errstate(divide="ignore", invalid="ignore"):
                df = (v_r + v_t) ** 2 / (v_r**2 / df_r + v_t**2 / df_t)
            q = 0.5 + self.level / 2
            factor = stats.t.ppf(q, np.where(np.isfinite(df), df, min(df_r, df_t))) / stats.norm.ppf(q)
        draws = 1000 * np.exp(log_r + log_t + factor * (d_r + d_t))
        return 1000 * np.exp(log_r), 1000 * np.exp(log_r + log_t), draws

    def predict(self, users) -> pd.DataFrame:
        """``users, mean_ms, p95_ms, p95_low, p95_high`` (bounds at :attr:`level`; NaN with no residual)."""
        u = np.atleast_1d(np.asarray(users, dtype=float))
        mean, p95, draws = self.band(u)
        q = (1 - self.level) / 2
        with np.errstate(invalid="ignore"):
            low, high = np.quantile(draws, q, axis=0), np.quantile(draws, 1 - q, axis=0)
        return pd.DataFrame({"users": u, "mean_ms": mean, "p95_ms": p95, "p95_low": low, "p95_high": high})

    def users_at(self, p95_ms: float) -> Interval:
        """Users at which the modelled p95 reaches ``p95_ms``, with its interval at :attr:`level`; an
        infinite estimate when it does not within the searched range (up to :attr:`max_users`).
        Asked at query time, as statsmodels' ``conf_int(alpha)``: the model stores no threshold."""
        if self._grid_band is None:
            grid = np.linspace(1.0, self.max_users, 4000)
            _, p95, draws = self.band(grid)
            self._grid_band = (grid, p95, draws)
        grid, p95, draws = self._grid_band
        users = float(_first_crossing(grid, p95[None, :], p95_ms)[0])
        if np.isnan(draws).any():
            return Interval(users, math.nan, math.nan, self.level)
        q = (1 - self.level) / 2
        cb = _first_crossing(grid, draws, p95_ms)
        return Interval(users, float(np.quantile(cb, q, method="lower")),
                        float(np.quantile(cb, 1 - q, method="higher")), self.level)

    def crossings(self, thresholds: dict[str, float]) -> pd.DataFrame:
        """``threshold, ms, users, low, high``: :meth:`users_at` of each named threshold (e.g.
        ``{"warning": 500, "critical": 2000}``)."""
        rows = []
        for name, ms in thresholds.items():
            iv = self.users_at(ms)
            rows.append({"threshold": name, "ms": float(ms), "users": iv.estimate, "low": iv.low, "high": iv.high})
        return pd.DataFrame(rows, columns=["threshold", "ms", "users", "low", "high"])


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


def sampling_variance(rows: pd.DataFrame) -> np.ndarray:
    """Per step, the relative variance of its mean latency from its requests alone: CV²/n, with the
    coefficient of variation sd/mean of its requests (``sd_ms``, from the merged histograms), or,
    without it, a log-normal's from mean/p50 ((mean/p50)² − 1; far too large for a mix of fast and
    slow requests, whose p50 sits under the mean: then only the steps' relative weights rest on it).
    Zero without ``requests`` (the step offset τ then carries all of the noise)."""
    if "requests" not in rows:
        return np.zeros(len(rows))
    n = rows["requests"].to_numpy(float)
    mean = rows["mean_ms"].to_numpy(float)
    cv2 = np.full(len(rows), np.nan)
    if "sd_ms" in rows:
        cv2 = (rows["sd_ms"].to_numpy(float) / mean) ** 2
    if "p50_ms" in rows:
        cv2 = np.where(np.isfinite(cv2), cv2, (mean / rows["p50_ms"].to_numpy(float)) ** 2 - 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        v = np.maximum(np.where(np.isfinite(cv2), cv2, 0.0), 0.0) / n
    return np.where((n > 0) & np.isfinite(v), v, 0.0)


def _mean_fits(n: np.ndarray, r: np.ndarray, v: np.ndarray, quadratic: bool) -> tuple[np.ndarray, np.ndarray]:
    """Per row of ``r`` (mean latencies at ``n``, s): R(N) = c0 + c1·N + c2·N², weighted by the inverse
    relative variance τ² + v (τ² re-estimated from the residuals, three passes); c2 ≥ 0, a row whose
    c2 comes out negative refitted as a line. Returns the coefficients (B, 3) and τ² (B,)."""
    r = np.atleast_2d(r)
    rows, m = r.shape
    design = np.column_stack([np.ones_like(n), n, n**2])
    tau2, fit = np.zeros(rows), r
    for _ in range(3):
        w = 1 / (np.maximum(fit, MIN_RESPONSE_S) ** 2 * np.maximum(tau2[:, None] + v, MIN_VARIANCE))
        coef = np.zeros((rows, 3))
        line = np.ones(rows, dtype=bool)
        if quadratic:
            coef = _wls(design, r, w)
            line = coef[:, 2] < 0
        if line.any():
            coef[line, :2] = _wls(design[:, :2], r[line], w[line])
            coef[line, 2] = 0.0
        fit = np.maximum(coef @ design.T, MIN_RESPONSE_S)
        p = np.where(line, 2, 3)
        resid = r / fit - 1
        with np.errstate(divide="ignore", invalid="ignore"):
            tau2 = np.where(m > p, np.maximum((resid**2).sum(axis=1) / (m - p) - v.mean(), 0.0), 0.0)
    return coef, tau2


def _wls(design: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Weighted least squares for each row of ``y`` with its row of weights ``w``."""
    a = np.einsum("bm,mi,mj->bij", w, design, design)
    rhs = np.einsum("bm,mi,bm->bi", w, design, y)
    return np.linalg.solve(a, rhs[..., None])[..., 0]


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


def _resampled(rng, fitted: np.ndarray, resid: np.ndarray, scale: np.ndarray, params: int,
               idx: np.ndarray) -> np.ndarray:
    """``fitted`` plus residuals resampled by ``idx``: standardised by ``scale``, inflated by
    √(m/(m − p)) for the ``params`` fitted, centred, and put back at each step's own scale."""
    m = len(fitted)
    if m <= params:
        return np.broadcast_to(fitted, idx.shape).copy()
    u = resid / scale * math.sqrt(m / (m - params))
    return fitted + (u - u.mean())[idx] * scale


def fit_latency(steps: pd.DataFrame, usl: USLFit | None = None, *, level: float = 0.95, bootstrap: int = 200,
                seed: int = 0, max_users: float | None = None) -> LatencyModel:
    """Fit the latency model on clean steps.

    Parameters
    ----------
    steps : DataFrame
        Step summary rows to use (``users``, ``rps``, ``mean_ms``, ``p95_ms``; ``requests``,
        ``sd_ms``, ``p50_ms``, ``p99_ms`` when there); idle rows are dropped.
    usl : USLFit, optional
        Throughput model of the same steps: gives the implied think time (None without it).
    level : float
        Interval level (and of the tail slope's pretest).
    bootstrap, seed : int
        Resamples of the steps' residuals and their seed.
    max_users : float, optional
        :meth:`LatencyModel.users_at` searches crossings up to here (default 20 × the largest measured users).

    Returns
    -------
    LatencyModel

    Raises
    ------
    InsufficientDataError
        With fewer than 2 usable steps, or all at one load.
    """
    rows = steps[(steps["users"] > 0) & np.isfinite(steps["mean_ms"]) & np.isfinite(steps["p95_ms"])
                 & (steps["rps"] > 0) & (steps["mean_ms"] > 0)]
    if len(rows) < 2 or rows["users"].nunique() < 2:
        raise InsufficientDataError(f"latency model: {len(rows)} step(s) with requests at "
                                    f"{rows['users'].nunique()} load(s); it needs at least 2 loads")
    n = rows["users"].to_numpy(float)
    r = rows["mean_ms"].to_numpy(float) / 1000
    m = len(n)
    quadratic = m >= 4 and np.unique(n).size >= 3  # a curvature with at least one residual left
    v = sampling_variance(rows)
    coef, tau2 = (x[0] for x in _mean_fits(n, r, v, quadratic))
    p_mean = 3 if coef[2] > 0 else 2
    fitted = np.maximum(coef[0] + coef[1] * n + coef[2] * n**2, MIN_RESPONSE_S)
    # a step's p95 rests on its requests: a 60-request step's is noisy and biased low, so the
    # tail is fitted with the steps weighted by their requests (∝ throughput, the windows being equal)
    log_ratio = np.log(rows["p95_ms"].to_numpy(float) / rows["mean_ms"].to_numpy(float)) + rank_offset(rows)
    w = rows["rps"].to_numpy(float)
    a, b = (float(x[0]) for x in _tail_fits(n, log_ratio, w, level))  # the pretest at the model's own level
    p_tail = 2 if b else 1
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, m, size=(max(bootstrap, 50), m))  # one resample of the steps for both fits
    sd = np.sqrt(np.maximum(tau2 + v, MIN_VARIANCE))
    c_b, _ = _mean_fits(n, _resampled(rng, fitted, r - fitted, fitted * sd, p_mean, idx), v, quadratic)
    tail_fit = a + b * n
    sw = np.sqrt(w / w.mean())  # a step's log ratio has variance ∝ 1/requests
    a_b, b_b = _tail_fits(n, _resampled(rng, tail_fit, log_ratio - tail_fit, 1 / sw, p_tail, idx), w, level)
    think = None
    if usl is not None:
        think = max(float(np.mean(n / usl.predict(n) - fitted)), 0.0)
    return LatencyModel(mean_coef=tuple(float(c) for c in coef), tail_a=a, tail_b=b, think_time_s=think,
                        step_offset=math.sqrt(tau2), df=(m - p_mean, m - p_tail), level=level,
                        observed=rows[["users", "mean_ms", "p95_ms"]].reset_index(drop=True),
                        boot=np.column_stack([c_b, a_b, b_b]), max_users=max_users or 20 * float(n.max()))


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
