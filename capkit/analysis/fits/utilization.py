"""A resource that follows throughput (the utilization law ``U = U₀ + D·X``), carried through the
USL's X(N) to users: it bends where throughput does, and a pool stays at its size once full.

The capacity answer projects such a resource along this curve (:class:`ThroughputCurve.users_at`);
the backtest predicts held-out steps along it (:class:`ThroughputCurve.at`), so the table that
says how far the projection can be trusted judges the projection itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from capkit.analysis.fits.usl import usl_throughput
from capkit.schemas import Interval


@dataclass(frozen=True)
class ThroughputCurve:
    """A resource's line against req/s per step (``a + b·X``), carried through the USL's X(N) on a
    grid of users — once for the fit and once per bootstrap draw — and capped at ``cap`` (a pool's
    size: busy slots = X·S, never more than the pool holds)."""

    grid: np.ndarray  # users
    curve: np.ndarray  # the resource along the grid, from the USL fit
    draws: np.ndarray  # one curve per (thinned) bootstrap draw; empty without a bootstrap
    slope: float
    level: float
    resid_sd: float = 0.0  # the steps' scatter around the line: a new step's own offset
    df_resid: int = 0
    cap: float = math.inf

    def users_at(self, value: float) -> Interval:
        """Users at which the resource first reaches ``value``, with the draws' interval."""
        if self.slope <= 0 or value > self.cap:
            return Interval(math.inf, math.inf, math.inf, self.level)
        est = _first(self.grid, self.curve[None, :], value)[0]
        if not len(self.draws):
            return Interval(est, est, est, self.level)
        draws = _first(self.grid, self.draws, value)
        q = (1 - self.level) / 2
        return Interval(est, float(np.quantile(draws, q, method="lower")),
                        float(np.quantile(draws, 1 - q, method="higher")), self.level)

    def at(self, users: float) -> Interval:
        """The resource a new step at ``users`` reads, with its prediction interval (:meth:`band`)."""
        est, low, high = self.band([users])
        return Interval(float(est[0]), float(low[0]), float(high[0]), self.level)

    def band(self, users) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(curve, low, high) at each of ``users``: the range of the draws widened by the steps' own
        scatter around the line (a prediction interval for one new step), capped at the pool's size."""
        u = np.atleast_1d(np.asarray(users, dtype=float))
        est = np.interp(u, self.grid, self.curve)
        q = (1 - self.level) / 2
        if len(self.draws):
            along = np.array([np.interp(u, self.grid, d) for d in self.draws])
            low, high = np.quantile(along, q, axis=0), np.quantile(along, 1 - q, axis=0)
        else:
            low, high = est.copy(), est.copy()
        if self.df_resid > 0 and self.resid_sd > 0:
            half = float(stats.t.ppf(1 - q, self.df_resid)) * self.resid_sd
            low, high = np.minimum(low, est) - half, np.maximum(high, est) + half
        else:  # a line through two points: nothing says how far a new step strays from it
            low, high = np.full_like(est, -math.inf), np.full_like(est, math.inf)
        return np.minimum(est, self.cap), np.minimum(low, self.cap), np.minimum(high, self.cap)


def _first(grid: np.ndarray, curves: np.ndarray, value: float) -> np.ndarray:
    """Per row of ``curves``, the first grid point at or above ``value`` (∞ where none is)."""
    hit = curves >= value
    return np.where(hit.any(axis=1), grid[hit.argmax(axis=1)], math.inf)


def throughput_curve(steps: pd.DataFrame, column: str, usl, level: float = 0.95,
                     cap: float = math.inf) -> ThroughputCurve | None:
    """The :class:`ThroughputCurve` of step column ``column`` (``cap``: a pool's size); None when the
    resource follows users more closely than throughput, or there is no USL."""
    rows = steps[["users", "rps", column]].dropna()
    rows = rows[rows["users"] > 0]
    if usl is None or len(rows) < 3 or rows["rps"].nunique() < 3:
        return None
    x, y, n = rows["rps"].to_numpy(float), rows[column].to_numpy(float), rows["users"].to_numpy(float)
    if not (_r2(x, y) > _r2(n, y)):
        return None
    b, a = np.polyfit(x, y, 1)
    resid = y - (a + b * x)
    df = len(y) - 2
    cap = float(cap) if cap is not None and np.isfinite(cap) and cap > 0 else math.inf
    grid = np.linspace(1.0, 20 * float(n.max()), 4000)
    curve = np.minimum(a + b * usl_throughput(grid, usl.sigma, usl.kappa, usl.lambda_), cap)
    samples = usl.draws(level) if usl.samples is not None and len(usl.samples) else []
    samples = samples[:: max(1, len(samples) // 100)]
    draws = np.array([np.minimum(a + b * usl_throughput(grid, *theta), cap) for theta in samples]
                     ).reshape(len(samples), len(grid))
    sd = float(np.sqrt(np.sum(resid ** 2) / df)) if df > 0 else 0.0
    return ThroughputCurve(grid, curve, draws, float(b), level, sd, df, cap)


def _r2(x: np.ndarray, y: np.ndarray) -> float:
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return -math.inf
    return float(np.corrcoef(x, y)[0, 1] ** 2)
