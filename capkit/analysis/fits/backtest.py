"""Backtest: fit on the lower steps, predict the higher ones, report the error per quantity.

Shown in every capacity plan so a reader knows how far the projection beyond the measured
range can be trusted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from capkit.analysis.fits.latency import fit_latency
from capkit.analysis.fits.regression import fit_resource_regression
from capkit.analysis.fits.usl import fit_usl, usl_throughput
from capkit.analysis.fits.utilization import throughput_curve
from capkit.errors import CapkitError, InsufficientDataError, ParameterError
from capkit.schemas import POOL_RESOURCES, RESOURCES


@dataclass
class Backtest:
    """Predictions for the held-out (higher) steps and the error summary per quantity."""

    train_users: list[int]
    test_users: list[int]
    predictions: pd.DataFrame  # quantity, users, observed, predicted, low, high, error_pct, inside (NaN: no interval)
    summary: pd.DataFrame  # quantity, steps, mean_abs_error_pct, max_abs_error_pct, inside_share


def _split(steps: pd.DataFrame, train_share: float) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    clean = steps[steps["clean"]].sort_values("users")
    loaded = clean[clean["users"] > 0]
    if len(loaded) < 4:
        raise InsufficientDataError(f"backtest: {len(loaded)} clean step(s) with users; it needs at least 4 "
                                    f"(3 to fit, 1 to predict)")
    k = min(max(3, int(round(train_share * len(loaded)))), len(loaded) - 1)
    return clean[clean["users"] <= loaded["users"].iloc[k - 1]], loaded.iloc[:k], loaded.iloc[k:]


def backtest(resources, *, train_share: float = 0.6, level: float = 0.95, bootstrap: int = 200,
             seed: int = 0) -> Backtest:
    """Refit every model on the lowest ``train_share`` of the clean user steps, predict the rest (the
    idle step goes to the models that take it: the resource fits leave a cold idle step out).

    Parameters
    ----------
    resources : ResourceCapacity
        Steps and per-second resources of one run.
    train_share : float
        Share of the clean user steps to fit on (at least 3 steps, at least 1 left to predict).
    level : float
        Level of the prediction intervals: a step mean for resources, bootstrap for throughput and p95.
    bootstrap, seed : int
        For the USL and latency intervals.

    Returns
    -------
    Backtest
    """
    if not 0 < float(train_share) < 1:
        raise ParameterError(f"train_share must be between 0 and 1 (exclusive), got {train_share!r}")
    train_all, train, test = _split(resources.steps, float(train_share))
    rows = []
    ps = resources.per_second
    q = (1 - level) / 2
    usl = None
    if len(train) >= 3:
        try:
            usl = fit_usl(train["users"], train["rps"], bootstrap=bootstrap, seed=seed)
        except CapkitError:
            usl = None
    for resource in RESOURCES:
        if resource not in ps.columns:
            continue
        d = ps[ps["step"].isin(train_all["step"])][["users", resource, "step"]].dropna()
        try:
            # no time term: the held-out steps lie beyond the training steps in time as in load
            fit = fit_resource_regression(d["users"], d[resource], resource=resource, limit=1.0, level=level,
                                          steps=d["step"])
        except CapkitError:
            continue
        # the answer's projection: along throughput through the USL when the resource follows it
        # (a pool capped at its size), else its line in users
        size = resources.limits.limit_for(resource) if resource in POOL_RESOURCES else math.inf
        curve = (throughput_curve(train, resource, usl, level=level, cap=size)
                 if fit.significant and resource in train else None)
        for st in test.itertuples():
            obs = ps.loc[ps["step"] == st.step, resource].dropna()
            if obs.empty:
                continue
            if curve is not None:
                pred = curve.at(st.users)
                rows.append(_row(RESOURCES[resource][0], st.users, float(obs.mean()), pred.estimate, pred.low,
                                 pred.high))
                continue
            pred = fit.predict([st.users]).iloc[0]  # its prediction interval is a new step's mean
            cap = size if np.isfinite(size) and size > 0 else math.inf
            rows.append(_row(RESOURCES[resource][0], st.users, float(obs.mean()), min(float(pred["mean"]), cap),
                             min(float(pred["pi_low"]), cap), min(float(pred["pi_high"]), cap)))
    if usl is not None:
        n = test["users"].to_numpy(float)
        # three parameters through three training steps leave no residual: no interval, not a
        # zero-width one (the prediction is an exact fit's, and "outside" would be meaningless)
        boot = (np.array([usl_throughput(n, *s) for s in usl.draws(level)])
                if usl.samples is not None and usl.df_residual > 0 else np.full((2, n.size), np.nan))
        for i, st in enumerate(test.itertuples()):
            rows.append(_row("Throughput (req/s)", st.users, st.rps, float(usl.predict(n[i])),
                             float(np.quantile(boot[:, i], q)), float(np.quantile(boot[:, i], 1 - q))))
        try:
            lat = fit_latency(train, usl, level=level, seed=seed)
            pred = lat.predict(n)
            for i, st in enumerate(test.itertuples()):
                rows.append(_row("p95 latency (ms)", st.users, st.p95_ms, float(pred["p95_ms"].iloc[i]),
                                 float(pred["p95_low"].iloc[i]), float(pred["p95_high"].iloc[i])))
        except CapkitError:
            pass
    preds = pd.DataFrame(rows, columns=["quantity", "users", "observed", "predicted", "low", "high", "error_pct",
                                        "inside"])
    summary = (preds.groupby("quantity", sort=False)
               .agg(steps=("users", "size"), mean_abs_error_pct=("error_pct", lambda e: float(np.mean(np.abs(e)))),
                    max_abs_error_pct=("error_pct", lambda e: float(np.max(np.abs(e)))),
                    inside_share=("inside", lambda v: float(v.dropna().mean()) if v.notna().any() else np.nan))
               .reset_index()) if len(preds) else pd.DataFrame(
        columns=["quantity", "steps", "mean_abs_error_pct", "max_abs_error_pct", "inside_share"])
    return Backtest(train["users"].astype(int).tolist(), test["users"].astype(int).tolist(), preds, summary)


def _row(quantity, users, observed, predicted, low, high) -> dict:
    err = 100 * (predicted - observed) / observed if observed else np.nan
    inside = bool(low <= observed <= high) if np.isfinite(low) and np.isfinite(high) else np.nan
    return {"quantity": quantity, "users": int(users), "observed": observed, "predicted": predicted, "low": low,
            "high": high, "error_pct": err, "inside": inside}
