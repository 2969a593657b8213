"""Universal Scalability Law: X(N) = λN / (1 + σ(N−1) + κN(N−1)).

Fitted by bounded nonlinear least squares on throughput per concurrency level, with seeded
residual-bootstrap intervals (or asymptotic t intervals from the Jacobian when ``bootstrap=0``).

The bootstrap is built for the 5–8 steps a run has. Throughput noise is proportional to
throughput (a step's count over a fixed window, a step's latency offset), so it resamples
*relative* residuals (x − X̂)/X̂ and puts them back on X̂; and the resampled fits' deviations from
the estimate are scaled by t(n − 3 df)/z at the interval's level (:meth:`USLFit.draws`), the
small-sample correction for a noise scale estimated on n − 3 degrees of freedom (unscaled, the
intervals cover too little at these sizes; ``tests/analysis/test_coverage.py`` holds their coverage
to its band).
Reproduces the published fits of codahale's ``usl`` / ``usl4j`` and the R package ``usl``
(see ``tests/analysis/test_usl.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import optimize, stats

from capkit.errors import ConfigError, InsufficientDataError
from capkit.schemas import Basis, load_basis

PARAMS = ("sigma", "kappa", "lambda_")
DERIVED = ("peak_concurrency", "max_throughput")


def usl_throughput(n, sigma: float, kappa: float, lambda_: float) -> np.ndarray:
    """X(N) of the USL for concurrency ``n`` (scalar or array)."""
    n = np.asarray(n, dtype=float)
    return lambda_ * n / (1.0 + sigma * (n - 1.0) + kappa * n * (n - 1.0))


def peak(sigma: float, kappa: float, lambda_: float) -> tuple[float, float]:
    """(N*, X_max); with κ = 0 there is no peak: N* = inf and X_max is the asymptote λ/σ."""
    if kappa <= 0:
        return math.inf, (lambda_ / sigma if sigma > 0 else math.inf)
    n_star = math.sqrt(max(1.0 - sigma, 0.0) / kappa)
    return n_star, float(usl_throughput(n_star, sigma, kappa, lambda_))


def _columns(theta: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """σ, κ, λ of ``theta`` (shape (3,) or (B, 3)), shaped to broadcast against ``n``."""
    return theta[..., 0, None], theta[..., 1, None], theta[..., 2, None]


def _jacobian(theta: np.ndarray, n: np.ndarray) -> np.ndarray:
    """dX/d(σ, κ, λ) at each ``n``: shape (m, 3) for one ``theta``, (B, m, 3) for B rows."""
    sigma, kappa, lambda_ = _columns(theta)
    d = 1.0 + sigma * (n - 1.0) + kappa * n * (n - 1.0)
    common = -lambda_ * n * (n - 1.0) / d**2
    return np.stack([common, common * n, n / d], axis=-1)


def _solve(n: np.ndarray, x: np.ndarray, start: np.ndarray | None = None,
           tol: float = 1e-15) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares (σ, κ, λ) and the Jacobian at the optimum.

    Without ``start``, the best of two starting points; bootstrap refits start from the estimate.
    """
    scale = float(np.max(x))  # fit on x/scale so that λ is O(1) like σ and κ
    y = x / scale
    if start is not None:
        starts = [start / np.array([1.0, 1.0, scale])]
    else:
        lam0 = float(np.max(y / n))
        # Gunther's linearisation N/C(N) − 1 = σ(N−1) + κN(N−1), C = X/λ0, gives σ, κ ≥ 0 directly.
        a = np.column_stack([n - 1.0, n * (n - 1.0)])
        (s0, k0), _ = optimize.nnls(a, n * lam0 / y - 1.0)
        starts = [np.array([s0, k0, lam0]), np.array([0.1, 0.01, lam0])]  # the second is codahale's
    best = None
    for x0 in starts:
        res = optimize.least_squares(
            lambda t: usl_throughput(n, *t) - y,
            np.clip(x0, [0.0, 0.0, 1e-12], None),
            jac=lambda t: _jacobian(t, n),
            bounds=([0.0, 0.0, 1e-12], [np.inf, np.inf, np.inf]),
            x_scale="jac", ftol=tol, xtol=tol, gtol=tol, max_nfev=10_000,
        )
        if best is None or res.cost < best.cost:
            best = res
    theta = best.x * np.array([1.0, 1.0, scale])
    return theta, _jacobian(theta, n)


_LOWER = np.array([0.0, 0.0, 1e-12])


def _solve_many(n: np.ndarray, ys: np.ndarray, start: np.ndarray, tol: float = 1e-10,
                max_iter: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares (σ, κ, λ) for every row of ``ys`` at once, from ``start``.

    The bootstrap refits, vectorised: Levenberg–Marquardt on (B, 3) parameters with the
    bounds σ, κ ≥ 0 held by an active set (a parameter at its bound whose gradient points
    outward stays there). One ``least_squares`` call per resample took 0.4–0.7 s per 200
    resamples; this takes 4–14 ms for 200. Returns ``(thetas, converged)``: rows that did not
    converge (or went non-finite) are for :func:`_solve` to refit.
    """
    b = ys.shape[0]
    scale = ys.max(axis=1)
    y = ys / scale[:, None]
    theta = np.tile(start, (b, 1)) / np.column_stack([np.ones(b), np.ones(b), scale])
    r = usl_throughput(n, *_columns(theta)) - y
    cost = 0.5 * np.einsum("bm,bm->b", r, r)
    mu = np.full(b, 1e-3)
    done = np.zeros(b, dtype=bool)
    eye = np.eye(3)
    for _ in range(max_iter):
        live = ~done
        if not live.any():
            break
        t = theta[live]
        jac = _jacobian(t, n)  # (B, m, 3)
        grad = np.einsum("bmi,bm->bi", jac, r[live])
        jtj = np.einsum("bmi,bmj->bij", jac, jac)
        fixed = (t <= _LOWER) & (grad > 0)  # at a bound and pushed outward: hold
        free = (~fixed).astype(float)
        a = jtj * free[:, :, None] * free[:, None, :]
        diag = np.einsum("bii->bi", jtj)
        a = a + eye * (mu[live, None] * np.maximum(diag, 1e-300) * free + (1.0 - free))[:, :, None]
        step = np.linalg.solve(a, -(grad * free)[:, :, None])[:, :, 0]
        trial = np.maximum(t + step, _LOWER)
        r_new = usl_throughput(n, *_columns(trial)) - y[live]
        c_new = 0.5 * np.einsum("bm,bm->b", r_new, r_new)
        better = np.isfinite(c_new) & (c_new <= cost[live])
        idx = np.flatnonzero(live)
        gain = cost[live] - c_new
        moved = np.abs(trial - t) <= tol * (tol + np.abs(t))
        small = better & ((gain <= tol * cost[live]) | moved.all(axis=1))
        acc = idx[better]
        theta[acc], r[acc], cost[acc] = trial[better], r_new[better], c_new[better]
        mu[acc] = np.maximum(mu[acc] / 3.0, 1e-12)
        mu[idx[~better]] *= 4.0
        done[idx[small]] = True
        done[idx[~better & (mu[idx] > 1e12)]] = True  # no decrease left to find: stationary
    ok = done & np.isfinite(theta).all(axis=1)
    return theta * np.column_stack([np.ones(b), np.ones(b), scale]), ok


def _check(concurrency, throughput) -> tuple[np.ndarray, np.ndarray]:
    try:
        n = np.asarray(concurrency, dtype=float).ravel()
        x = np.asarray(throughput, dtype=float).ravel()
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"USL input must be numeric concurrency and throughput values ({exc})") from None
    if n.size != x.size:
        raise ConfigError(f"USL input has {n.size} concurrency values but {x.size} throughput values")
    bad = ~(np.isfinite(n) & np.isfinite(x) & (n > 0) & (x > 0))
    if bad.any():
        i = int(np.argmax(bad))
        raise ConfigError(f"USL input row {i + 1} (concurrency={n[i]:g}, throughput={x[i]:g}) "
                          "is not a positive finite number")
    if np.unique(n).size < 3:
        raise InsufficientDataError(f"USL fit needs at least 3 distinct concurrency levels; got {np.unique(n).size}")
    return n, x


@dataclass(frozen=True)
class USLFit:
    """A fitted USL model. Build it with :func:`fit_usl`."""

    sigma: float
    kappa: float
    lambda_: float
    concurrency: np.ndarray
    throughput: np.ndarray
    stderr: dict  # asymptotic standard errors of sigma, kappa, lambda_ (NaN with 0 residual df)
    samples: np.ndarray | None  # bootstrap estimates, shape (bootstrap, 3); None without bootstrap
    seed: int | None

    @property
    def peak_concurrency(self) -> float:
        """N* = √((1−σ)/κ), where throughput peaks; ``inf`` when κ = 0 (no retrograde region)."""
        return peak(self.sigma, self.kappa, self.lambda_)[0]

    @property
    def max_throughput(self) -> float:
        """X(N*); with κ = 0 the asymptote λ/σ (``inf`` if σ = 0 too)."""
        return peak(self.sigma, self.kappa, self.lambda_)[1]

    @property
    def limit(self) -> str:
        """``"contention"`` when σ > κ, else ``"coherency"`` (codahale's rule; κ = 0 is contention)."""
        return "contention" if self.sigma > self.kappa or self.kappa == 0 else "coherency"

    def negligible(self, name: str, level: float = 0.95) -> bool:
        """Whether coefficient ``name`` (``sigma`` or ``kappa``) is indistinguishable from 0: its
        interval reaches 0, or it is below 2 standard errors (or 1e-9 outright)."""
        value, se = getattr(self, name), self.stderr.get(name, math.nan)
        if value < 1e-9 or (math.isfinite(se) and value < 2 * se):
            return True
        return bool(self.confint(level).at[name, "lower"] <= 1e-9)

    def peak_basis(self, level: float = 0.95) -> Basis:
        """How N* (and X at N*) stands: ``not measured`` when κ ≈ 0 (the fit has no peak, its N* is
        noise), ``projected`` within 1.25× the highest measured concurrency, else ``extrapolated``."""
        if self.negligible("kappa", level):
            return Basis.NOT_MEASURED
        return load_basis(self.peak_concurrency, float(self.concurrency.max()))

    def regime(self, level: float = 0.95) -> str:
        """``"linear"`` when σ and κ are both ≈ 0 (see :meth:`negligible`), else :attr:`limit`."""
        if self.negligible("sigma", level) and self.negligible("kappa", level):
            return "linear"
        return self.limit

    @property
    def df_residual(self) -> int:
        return int(self.concurrency.size - 3)

    @property
    def residual_std_error(self) -> float:
        rss = float(np.sum((self.throughput - self.predict(self.concurrency)) ** 2))
        return math.sqrt(rss / self.df_residual) if self.df_residual > 0 else math.nan

    @property
    def r_squared(self) -> float:
        x = self.throughput
        return 1.0 - float(np.sum((x - self.predict(self.concurrency)) ** 2) / np.sum((x - x.mean()) ** 2))

    def predict(self, n) -> float | np.ndarray:
        """Throughput X(n): a float for a scalar ``n``, an array of the same shape otherwise."""
        out = usl_throughput(n, self.sigma, self.kappa, self.lambda_)
        return float(out) if out.ndim == 0 else out

    def draws(self, level: float = 0.95) -> np.ndarray | None:
        """The bootstrap estimates (B, 3) for intervals at ``level``: deviations from the estimate
        scaled by t(df)/z (df = points − 3), held at the bounds σ, κ ≥ 0; None without bootstrap."""
        if self.samples is None:
            return None
        theta = np.array([self.sigma, self.kappa, self.lambda_])
        q = 0.5 + level / 2
        factor = float(stats.t.ppf(q, self.df_residual) / stats.norm.ppf(q)) if self.df_residual > 0 else 1.0
        return np.maximum(theta + (self.samples - theta) * factor, _LOWER)

    def confint(self, level: float = 0.95) -> pd.DataFrame:
        """Lower/upper bounds (index: sigma, kappa, lambda_, peak_concurrency, max_throughput).

        Bootstrap percentiles (of :meth:`draws`) when the fit was bootstrapped; otherwise t intervals from the
        asymptotic covariance (delta method for N* and X_max), as R's ``usl`` does.
        """
        if not 0.0 < level < 1.0:
            raise ConfigError(f"confidence level must be between 0 and 1, got {level}")
        if self.samples is not None:
            samples = self.draws(level)
            derived = np.array([peak(*row) for row in samples])
            draws = np.column_stack([samples, derived])
            with np.errstate(invalid="ignore"):  # inf − inf while interpolating between two infinities
                q = np.nanpercentile(draws, [50 * (1 - level), 50 * (1 + level)], axis=0)
            # κ = 0 in a resample means no peak (N* = inf): a percentile between two of those is inf
            q = np.where(np.isnan(q) & np.isposinf(draws).any(axis=0), np.inf, q)
            return pd.DataFrame({"lower": q[0], "upper": q[1]}, index=list(PARAMS + DERIVED))
        theta = np.array([self.sigma, self.kappa, self.lambda_])
        t = stats.t.ppf(0.5 + level / 2, self.df_residual) if self.df_residual > 0 else math.nan
        se = np.array([self.stderr[p] for p in PARAMS])
        rows = {p: (v - t * s, v + t * s) for p, v, s in zip(PARAMS, theta, se)}
        cov, steps = self._cov(), np.maximum(np.abs(theta), 1e-12) * 1e-6
        for i, name in enumerate(DERIVED):
            value = peak(*theta)[i]  # delta method with a forward-difference gradient
            grad = np.array([(peak(*(theta + h * e))[i] - value) / h for h, e in zip(steps, np.eye(3))])
            s = math.sqrt(float(grad @ cov @ grad)) if math.isfinite(value) else math.nan
            rows[name] = (value - t * s, value + t * s)
        return pd.DataFrame.from_dict(rows, orient="index", columns=["lower", "upper"])

    def _cov(self) -> np.ndarray:
        j = _jacobian(np.array([self.sigma, self.kappa, self.lambda_]), self.concurrency)
        return self.residual_std_error**2 * np.linalg.pinv(j.T @ j)

    def to_dict(self, level: float = 0.95) -> dict:
        """Plain, JSON-safe values (non-finite numbers become ``None``)."""
        def num(v):
            return float(v) if v is not None and math.isfinite(v) else None

        ci = self.confint(level)
        return {
            "model": "usl",
            **{p: num(getattr(self, p)) for p in PARAMS + DERIVED},
            "limit": self.limit,
            "regime": self.regime(level),
            "retrograde": self.kappa > 0,
            "peak_basis": str(self.peak_basis(level)),
            "stderr": {p: num(self.stderr[p]) for p in PARAMS},
            "confint": {p: {"lower": num(ci.at[p, "lower"]), "upper": num(ci.at[p, "upper"])} for p in ci.index},
            "level": level,
            "interval_method": "bootstrap" if self.samples is not None else "asymptotic",
            "bootstrap": 0 if self.samples is None else int(self.samples.shape[0]),
            "seed": self.seed,
            "n_points": int(self.concurrency.size),
            "residual_std_error": num(self.residual_std_error),
            "df_residual": self.df_residual,
            "r_squared": num(self.r_squared),
        }

def fit_usl(concurrency, throughput, *, bootstrap: int = 200, seed: int | None = 0) -> USLFit:
    """Fit the USL to throughput measured at each concurrency level.

    Parameters
    ----------
    concurrency, throughput : array-like
        Positive, finite and of equal length, with at least 3 distinct concurrency levels.
    bootstrap : int
        Residual-bootstrap resamples for the intervals (relative residuals, see the module's
        docstring); 0 uses asymptotic intervals instead.
    seed : int or None
        Seed of ``numpy.random.default_rng`` for the bootstrap.

    Returns
    -------
    USLFit
    """
    n, x = _check(concurrency, throughput)
    if not isinstance(bootstrap, (int, np.integer)) or bootstrap < 0:
        raise ConfigError(f"bootstrap must be a whole number >= 0, got {bootstrap!r}")
    theta, jac = _solve(n, x)
    fitted = usl_throughput(n, *theta)
    df = n.size - 3
    s2 = float(np.sum((x - fitted) ** 2)) / df if df > 0 else math.nan
    se = np.sqrt(np.abs(np.diag(s2 * np.linalg.pinv(jac.T @ jac))))
    samples = None
    if bootstrap:
        rng = np.random.default_rng(seed)
        resid = (x - fitted) / fitted  # relative: throughput noise grows with throughput
        resid = resid - resid.mean()
        # Keep resampled throughput positive: the model has no meaning for X <= 0.
        ys = np.maximum(fitted * (1 + rng.choice(resid, size=(bootstrap, n.size), replace=True)), 1e-9 * fitted)
        samples, ok = _solve_many(n, ys, theta)
        for i in np.flatnonzero(~ok):
            samples[i] = _solve(n, ys[i], start=theta, tol=1e-10)[0]
    return USLFit(float(theta[0]), float(theta[1]), float(theta[2]), n, x,
                  dict(zip(PARAMS, map(float, se))), samples, seed)


def usl_from_steps(steps: pd.DataFrame, *, concurrency_col: str = "users", throughput_col: str = "rps",
                   bootstrap: int = 200, seed: int | None = 0) -> USLFit:
    """Fit the USL on a capkit per-step summary (one row per clean step; rows with users <= 0 are dropped)."""
    missing = [c for c in (concurrency_col, throughput_col) if c not in steps.columns]
    if missing:
        raise ConfigError(f"step table lacks column(s) {', '.join(missing)}; "
                          f"it has {', '.join(map(str, steps.columns))}")
    rows = steps[pd.to_numeric(steps[concurrency_col], errors="coerce") > 0]
    return fit_usl(rows[concurrency_col], rows[throughput_col], bootstrap=bootstrap, seed=seed)


def read_usl_csv(path: str) -> tuple[np.ndarray, np.ndarray]:
    """Two numeric columns (concurrency, throughput); optional header; ``#`` lines are comments."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{path}: no such file; pass a CSV with two columns: concurrency,throughput")
    try:
        raw = pd.read_csv(p, header=None, comment="#", dtype=str, skipinitialspace=True, skip_blank_lines=True)
    except pd.errors.EmptyDataError:
        raise ConfigError(f"{path}: the file holds no data rows") from None
    except pd.errors.ParserError as exc:
        raise ConfigError(f"{path}: expected 2 columns (concurrency,throughput) on every row; "
                          f"{str(exc).splitlines()[0]}") from None
    if raw.shape[1] != 2:
        raise ConfigError(f"{path}: expected 2 columns (concurrency,throughput), found {raw.shape[1]}")
    values = raw.apply(lambda col: pd.to_numeric(col.str.strip(), errors="coerce"))
    if values.iloc[0].isna().all():  # a header row
        values = values.iloc[1:]
    bad = values.isna().any(axis=1)
    if bad.any():
        i = bad.idxmax()
        raise ConfigError(f"{path}: data row {i + 1} ({', '.join(map(str, raw.loc[i]))}) is not two numbers")
    return values.iloc[:, 0].to_numpy(float), values.iloc[:, 1].to_numpy(float)
