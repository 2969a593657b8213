"""Where a measured quantity crosses a threshold, from a local model of every step near it.

A chord between the last step below a threshold and the first step above it uses two draws: at the
same load the reference service's p95 read 1,072 and 797 ms in two 30-s steps, 544 and 360 ms in two
others, so the chord moves with whichever two steps happened to bracket the threshold, and the
bracket it reports as a range does not hold the answers of the next run (benchmarks/README.md,
"Measurements behind the models").

So the crossing is the root of a **local fit** over every clean step whose load lies within
:data:`SPAN` of the chord's crossing (and the two bracketing steps): ``log value = a + b·load``
(log for latency, whose tail grows multiplicatively near a knee; plain for resources). Each step's
variance is its own sampling noise (from its interval, :mod:`capkit.analysis.data.quantiles`) plus
τ², the **step-to-step offset** — the service at the same load, measured again, is faster or slower
as a whole — estimated from the residuals by the moment estimator of random-effects meta-regression
(DerSimonian–Laird). The fit's standard errors carry the Knapp–Hartung factor (never below 1) and
t(steps − 2) quantiles, which keep the coverage of a few steps honest where τ is itself uncertain.
The range is Fieller's: the loads at which the fitted line is within its own confidence band of the
threshold. When the slope is not clearly positive Fieller's range is unbounded; a latency or a
resource does not fall as load rises, so the range is then the loads between the highest one whose
steps sit clearly below the threshold and the lowest one clearly above it (step offset included) —
unbounded only when no step is clearly above, which is then said, not hidden.

A step measured right after a heavier, overloaded one (:func:`after_overload`) is left out while
enough other steps are near: the settling trim (:func:`~capkit.analysis.data.steps.with_settling`)
sees a backlog in the mean latency, and what it cannot see would bias the crossing low.

One odd step does not decide: with five steps or more, the step that the line through the others
predicts worst is set aside when its deleted residual is beyond both :data:`OUTLIER_Z` and the
5 %-family-wise t quantile; the fit is redone and the step named in :attr:`Crossing.set_aside`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from capkit.schemas import Interval

SPAN = 1.2  # steps within this factor of the chord's crossing take part in the local fit
OUTLIER_Z = 3.5  # a step this many standard deviations off the line through the others is set aside…
OUTLIER_SHARE = 0.05  # …and beyond the t quantile at which honest steps are set aside this often
MIN_STEPS = 3
OVERLOAD = 1.5  # a step after one at this multiple of the threshold (and a heavier load) may carry its backlog


@dataclass(frozen=True)
class Crossing:
    """A threshold's crossing from a local fit: the interval, and what it was estimated from."""

    interval: Interval
    method: str  # "local fit" or "bracket" (too few steps near it for a fit: the chord and its bracket)
    steps: int  # steps in the fit
    slope: float  # change of the (log) value per unit of load at the crossing
    tau: float  # the step-to-step offset's sd (in log units for latency)
    set_aside: tuple = ()  # loads of steps set aside as outliers

    @property
    def estimate(self) -> float:
        return self.interval.estimate


def chord(loads, values, threshold: float, level: float = 0.95) -> Interval | None:
    """Where ``values`` first reach ``threshold``, interpolated between the highest load below it
    and the first load at or above it (loads measured more than once: their mean); the interval is
    that bracket. None when no load reaches it; (0, load) when the first load already does."""
    x, y = np.asarray(loads, float), np.asarray(values, float)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    if not len(x):
        return None
    grid = np.unique(x)
    mean = np.array([y[x == g].mean() for g in grid])
    above = np.flatnonzero(mean >= threshold)
    if not len(above):
        return None
    first = above[0]
    below = np.flatnonzero((grid < grid[first]) & (mean < threshold))
    if not len(below):
        return Interval(float(grid[first]), 0.0, float(grid[first]), level)
    good = below[-1]
    span = mean[first] - mean[good]
    frac = (threshold - mean[good]) / span if span > 0 else 1.0
    est = float(grid[good] + min(max(frac, 0.0), 1.0) * (grid[first] - grid[good]))
    return Interval(est, float(grid[good]), float(grid[first]), level)


def after_overload(order, loads, values, threshold: float) -> np.ndarray:
    """Per step: whether the step measured just before it (by ``order``) carried a heavier load and
    read at least :data:`OVERLOAD` × ``threshold`` — its backlog may still drain into this one."""
    order, x, y = (np.asarray(a, float) for a in (order, loads, values))
    out = np.zeros(len(x), bool)
    rank = np.argsort(order, kind="stable")
    for before, this in zip(rank[:-1], rank[1:], strict=True):
        out[this] = x[before] > x[this] and y[before] >= OVERLOAD * threshold
    return out


def local_crossing(loads, values, threshold: float, *, lows=None, highs=None, order=None, level: float = 0.95,
                   log: bool = True, span: float = SPAN) -> Crossing | None:
    """The crossing of ``threshold`` by ``values`` (one per step, at ``loads``) from the local fit
    described in the module docstring; ``lows``/``highs`` are each step's own interval at ``level``
    (NaN where unknown). None when no step reaches the threshold; the chord and its bracket when
    fewer than :data:`MIN_STEPS` steps (at two loads or more) lie near the crossing."""
    x = np.asarray(loads, float)
    y = np.asarray(values, float)
    n = len(x)
    late = np.zeros(n, bool) if order is None else after_overload(order, x, y, threshold)
    lo = np.full(n, np.nan) if lows is None else np.asarray(lows, float)
    hi = np.full(n, np.nan) if highs is None else np.asarray(highs, float)
    ok = np.isfinite(x) & np.isfinite(y) & ((y > 0) if log else True)
    x, y, lo, hi, late = x[ok], y[ok], lo[ok], hi[ok], late[ok]
    rough = chord(x, y, threshold, level)
    if rough is None:
        return None
    bracket = Crossing(rough, "bracket", 0, math.nan, math.nan)
    if rough.low <= 0:
        return bracket  # the first load already reached it: nothing below to fit
    f = (lambda v: np.log(v)) if log else (lambda v: v)  # noqa: E731
    z = float(stats.norm.ppf(0.5 + level / 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        own = (f(hi) - f(np.maximum(lo, 1e-12) if log else lo)) / (2 * z)  # a step's own sd
    centre, result = rough.estimate, None
    for _ in range(2):  # the window around the chord (and once more, when an odd step moved it)
        near = ((x >= centre / span) & (x <= centre * span)) | (x == rough.low) | (x == rough.high)
        settled = near & ~late
        if settled.sum() >= MIN_STEPS + 1 and len(np.unique(x[settled])) >= 2:
            near = settled  # enough steps near it that no overload's backlog can have reached
        if near.sum() < MIN_STEPS or len(np.unique(x[near])) < 2:
            break
        xs, ys, ss = x[near], f(y[near]), own[near]
        set_aside: tuple = ()
        worst = _outlier(xs, ys, ss, f(threshold))
        if worst is not None:
            keep = np.arange(len(xs)) != worst
            set_aside = (float(xs[worst]),)
            xs, ys, ss = xs[keep], ys[keep], ss[keep]
        fit = _fit(xs, ys, ss, f(threshold))
        if not (fit.slope > 0):
            result = Crossing(rough, "bracket", fit.steps, fit.slope, fit.tau, set_aside)
            break
        low, high = fit.fieller(level)
        est = fit.root
        if not math.isfinite(high):
            low, high = _monotone_range(x, f(y), own, fit.tau, f(threshold), est, z)
        result = Crossing(Interval(est, max(low, 0.0), high, level), "local fit", fit.steps, fit.slope, fit.tau,
                          set_aside)
        if not set_aside or abs(est / centre - 1) < 0.02:
            break  # an odd step moved the chord, so the window: once more around the fit's own root
        centre = est
    return result or bracket


@dataclass(frozen=True)
class _LineFit:
    centre: float
    coef: np.ndarray  # intercept at `centre`, slope
    cov: np.ndarray  # of coef, Knapp–Hartung scaled
    df: int
    tau: float
    target: float
    steps: int

    @property
    def slope(self) -> float:
        return float(self.coef[1])

    @property
    def root(self) -> float:
        return float(self.centre + (self.target - self.coef[0]) / self.coef[1])

    def fieller(self, level: float) -> tuple[float, float]:
        """Loads u (as ``centre + d``) with (a + b·d − target)² ≤ t²·var(a + b·d)."""
        t = float(stats.t.ppf(0.5 + level / 2, max(self.df, 1)))
        a, b = self.coef[0] - self.target, self.coef[1]
        (vaa, vab), (_, vbb) = self.cov
        qa, qb, qc = b * b - t * t * vbb, 2 * (a * b - t * t * vab), a * a - t * t * vaa
        disc = qb * qb - 4 * qa * qc
        if qa <= 0 or disc < 0:  # the slope is not clearly positive: no bounded range
            return 0.0, math.inf
        r = math.sqrt(disc)
        d1, d2 = sorted(((-qb - r) / (2 * qa), (-qb + r) / (2 * qa)))
        return float(self.centre + d1), float(self.centre + d2)


def _fit(x: np.ndarray, y: np.ndarray, own_sd: np.ndarray, target: float) -> _LineFit:
    """Weighted line with a random step offset (DerSimonian–Laird τ², Knapp–Hartung errors)."""
    centre = float(np.mean(x))
    X = np.column_stack([np.ones_like(x), x - centre])
    k, p = len(x), 2
    s2 = np.where(np.isfinite(own_sd) & (own_sd > 0), own_sd, np.nan) ** 2
    # a step without its own interval gets the median of the others' (or none: τ carries it all)
    s2 = np.where(np.isfinite(s2), s2, np.nanmedian(s2) if np.isfinite(s2).any() else 0.0)
    floor = max(float(np.median(s2)) * 1e-3, 1e-10)
    s2 = np.maximum(s2, floor)
    w0 = 1 / s2
    beta0 = _wls(X, y, w0)
    r0 = y - X @ beta0
    q = float(np.sum(w0 * r0 ** 2))
    W = np.diag(w0)
    xtwx_inv = np.linalg.pinv(X.T @ W @ X)
    trace = float(np.trace(W) - np.trace(W @ X @ xtwx_inv @ X.T @ W))
    tau2 = max(0.0, (q - (k - p)) / trace) if trace > 0 and k > p else 0.0
    w = 1 / (s2 + tau2)
    beta = _wls(X, y, w)
    resid = y - X @ beta
    df = k - p
    kh = max(1.0, float(np.sum(w * resid ** 2)) / df) if df > 0 else 1.0
    cov = kh * np.linalg.pinv(X.T @ np.diag(w) @ X)
    return _LineFit(centre, beta, cov, df, math.sqrt(tau2), target, k)


def _monotone_range(x, y, own_sd, tau: float, target: float, est: float, z: float) -> tuple[float, float]:
    """The range a non-decreasing curve allows: from the highest load whose steps sit clearly below
    ``target`` to the lowest whose steps sit clearly above it (each load's mean, its sd from its
    steps' own noise and the step offset τ); 0 and ∞ where no load is clear on that side."""
    s2 = np.where(np.isfinite(own_sd), own_sd, 0.0) ** 2 + tau ** 2
    low, high = 0.0, math.inf
    for load in np.unique(x):
        at = x == load
        mean, sd = float(y[at].mean()), math.sqrt(float(s2[at].sum())) / at.sum()
        if mean + z * sd < target and load <= est:
            low = max(low, float(load))
        elif mean - z * sd >= target and load >= est:
            high = min(high, float(load))
    return low, high


def _outlier(x: np.ndarray, y: np.ndarray, own_sd: np.ndarray, target: float) -> int | None:
    """The step (index) whose value the line through the other steps predicts worst, when its
    deleted residual is beyond the Bonferroni-corrected t quantile (5 % family-wise: an honest step
    is set aside rarely); None with fewer than five steps or no such step."""
    k = len(x)
    if k < 5:
        return None
    scores = np.zeros(k)
    for i in range(k):
        keep = np.arange(k) != i
        if len(np.unique(x[keep])) < 2:
            continue
        fit = _fit(x[keep], y[keep], own_sd[keep], target)
        d = np.array([1.0, x[i] - fit.centre])
        own = own_sd[i] ** 2 if np.isfinite(own_sd[i]) else 0.0
        var = float(d @ fit.cov @ d) + own + fit.tau ** 2
        scores[i] = abs(y[i] - d @ fit.coef) / math.sqrt(var) if var > 0 else 0.0
    worst = int(np.argmax(scores))
    cut = max(float(stats.t.ppf(1 - OUTLIER_SHARE / (2 * k), k - 2)), OUTLIER_Z)  # df: the fit of all k
    return worst if scores[worst] > cut else None


def _wls(X: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    sw = np.sqrt(w)
    return np.linalg.lstsq(X * sw[:, None], y * sw, rcond=None)[0]
