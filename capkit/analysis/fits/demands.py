"""Per-class demands, fitted on step means: the utilization law and memory per open session.

For a resource driven by throughput (CPU, network, DB connections, pools) the utilization law
``U = U₀ + Σ_c X_c · D_c`` is fitted over the steps, ``X_c`` the requests/s of request class ``c``
and ``D_c`` its demand per request (core-seconds per request for CPU: × 1000 is CPU ms). Memory is
held by sessions, not requests: ``RSS = M₀ + Σ_k n_k · m_k`` with ``n_k`` the users of class ``k``
concurrently open (logged-in chat users, open WebSocket connections, …), ``m_k`` MiB per session.

Both are non-negative least squares on step means (one point per step, as in
:mod:`capkit.analysis.fits.regression`: ``t`` on steps − parameters degrees of freedom; the interval of
a demand is estimate ± t·se, its low end clipped at 0). One odd step does not decide: the step whose
externally studentized residual is beyond the Bonferroni t quantile (5 % family-wise) is set aside,
named in :attr:`DemandFit.set_aside`, and the demands refitted without it (:func:`odd_step`).

With one fixed mix the classes move together across the steps and their demands cannot be told
apart: the fit then says so (:class:`NotIdentifiable`, naming the classes) instead of printing
numbers; ``--design mix``
(:func:`capkit.analysis.answer.whatif.mix_design`) varies the mix so they can.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import optimize, stats

from capkit.analysis.data.read import RunData
from capkit.analysis.data.resources import resource_frame, step_resource_means
from capkit.analysis.data.steps import (
    DERIVED_TYPES,
    per_second_resources,
    request_window,
    step_windows,
    summarize_steps,
)
from capkit.analysis.fits.regression import odd_step
from capkit.schemas import REFERENCE_CLASSES, Interval, NotMeasured

# resources held by open sessions (fitted against users per class), the rest follow throughput
SESSION_RESOURCES = ("rss_mib",)
# a step design whose column-scaled condition number exceeds this cannot separate the classes: a
# --design mix run has about 5, a run of one fixed mix 15 and more (its classes vary only by the
# rounding of users to classes and by Poisson noise in the throughputs)
MAX_CONDITION = 10.0
# the resource columns a demand is fitted for (when measured)
DEMAND_RESOURCES = ("cpu_cores", "rss_mib", "db_connections", "network_kbps", "model_slots", "db_pool",
                    "db_cpu_cores", "redis_memory_mib")

__all__ = ["DEMAND_RESOURCES", "DemandFit", "NotIdentifiable", "SESSION_RESOURCES", "class_steps",
           "fit_demands", "identifiability"]


@dataclass(frozen=True)
class NotIdentifiable(NotMeasured):
    """Demands that the steps cannot tell apart: ``classes`` moved together (collinear)."""

    classes: tuple[str, ...] = ()

    def __str__(self) -> str:
        return f"not identifiable ({self.reason})"


@dataclass
class DemandFit:
    """``value = baseline + Σ regressor_c · demand_c`` of one resource over the steps.

    ``kind`` is ``"throughput"`` (regressors: requests/s per class, demands per request) or
    ``"sessions"`` (regressors: open sessions per class, demands per session)."""

    resource: str
    kind: str
    classes: tuple[str, ...]
    baseline: Interval
    demands: dict[str, Interval]
    steps: int
    level: float
    resid_sd: float
    df_resid: float
    condition: float
    params: np.ndarray = field(repr=False)
    cov: np.ndarray = field(repr=False)
    set_aside: tuple = ()  # steps left out: the fit through the others could not predict them

    def _t(self, level: float | None = None) -> float:
        return float(stats.t.ppf(0.5 + (level or self.level) / 2, max(self.df_resid, 1.0)))

    def predict(self, regressors: dict[str, float], *, extra_var: float = 0.0,
                level: float | None = None) -> Interval:
        """A new step's mean at ``regressors`` (class -> requests/s or sessions): the estimate and
        its prediction bounds; ``extra_var`` adds the variance of uncertain regressors."""
        x = np.array([1.0, *(float(regressors.get(c, 0.0)) for c in self.classes)])
        mean = float(x @ self.params)
        var = max(float(x @ self.cov @ x), 0.0) + self.resid_sd ** 2 + extra_var
        half = self._t(level) * math.sqrt(var)
        return Interval(mean, mean - half, mean + half, level or self.level)


def class_steps(run: RunData, classes: dict[str, tuple[str, ...]] | None = None) -> pd.DataFrame:
    """One row per step: ``step, users, clean``, per class ``X_<class>`` (requests/s of its
    endpoints) and ``n_<class>`` (its users, mean over the step's trimmed window, as the
    generator counted them), ``ws_open`` (open WebSocket connections, as the service's
    ``capkit_websocket_connections`` counts them when scraped, else the generator) and every
    resource's mean.

    Only classes some step ran are columns."""
    classes = classes or REFERENCE_CLASSES
    warmup = run.warmup_s
    steps = summarize_steps(run.steps, run.requests, run.samples, warmup_s=warmup,
                            max_error_rate=run.meta.spec.criteria.max_error_rate)
    if steps.empty:
        return steps
    out = steps[["step", "users", "clean", "seconds", "flags"]].copy().set_index("step")
    req = request_window(run.requests, run.steps, warmup)
    if not req.empty:
        req = req[~req["method"].isin(DERIVED_TYPES)]
    gen = per_second_resources(run.samples, run.steps, warmup, source="generator")
    if not gen.empty:  # a tick's second [ts, ts + 1) must lie inside its step's window
        ends = step_windows(run.steps, warmup).set_index("step")["to_ts"]
        gen = gen[gen["ts"] + 1 <= gen["step"].map(ends)]
    for cls, names in classes.items():
        r = req[req["name"].isin(names)] if not req.empty else req
        counts = r.groupby("step")["count"].sum() if not r.empty else pd.Series(dtype=float)
        limited = r.groupby("step")["rate_limited"].sum() if not r.empty else pd.Series(dtype=float)
        served = counts.sub(limited, fill_value=0)
        x = (served.reindex(out.index).fillna(0.0) / out["seconds"].where(out["seconds"] > 0)).fillna(0.0)
        column = f"users_{cls}"
        n = gen.groupby("step")[column].mean().reindex(out.index) if column in gen else None
        if n is None and float(x.abs().sum()) == 0:
            continue
        out[f"X_{cls}"] = x
        out[f"n_{cls}"] = n.fillna(0.0) if n is not None else np.nan
    # open WebSocket connections: as the service counts them (its /metrics), else the generator
    served = per_second_resources(run.samples, run.steps, warmup, source="prometheus")
    if "websocket_connections" in served and served["websocket_connections"].notna().any():
        out["ws_open"] = served.groupby("step")["websocket_connections"].mean().reindex(out.index)
    else:
        out["ws_open"] = (gen.groupby("step")["ws_connections"].mean().reindex(out.index)
                          if "ws_connections" in gen else np.nan)
    per_second = resource_frame(run.samples, run.steps, warmup)
    means = step_resource_means(per_second)
    for column in means.columns:
        out[column] = means[column].reindex(out.index)
    return out.reset_index()


def run_classes(table: pd.DataFrame) -> tuple[str, ...]:
    """The classes some clean step of ``table`` (from :func:`class_steps`) ran."""
    clean = table[table["clean"]]
    return tuple(c[2:] for c in table.columns if c.startswith("X_") and float(clean[c].sum()) > 0)


def identifiability(X: np.ndarray, classes: tuple[str, ...]) -> tuple[float, NotIdentifiable | None]:
    """(condition number of the column-scaled design, None or why the demands cannot be told apart).

    Columns are scaled to unit length so units (requests/s, sessions) do not matter; the classes
    named are those with weight in the design's weakest direction (the smallest singular vector)."""
    scale = np.linalg.norm(X, axis=0)
    if np.any(scale == 0):
        idle = [c for c, s in zip(("baseline", *classes), scale, strict=True) if s == 0]
        return math.inf, NotIdentifiable(f"{', '.join(idle)} never ran in a clean step", tuple(idle))
    Z = X / scale
    sv = np.linalg.svd(Z, compute_uv=True)
    singular, vt = sv[1], sv[2]
    cond = float(singular[0] / singular[-1]) if singular[-1] > 0 else math.inf
    if X.shape[0] <= X.shape[1]:
        return cond, NotIdentifiable(f"{X.shape[0]} clean steps for {X.shape[1]} parameters; run more steps "
                                     f"(--design mix at two loads)", classes)
    if cond > MAX_CONDITION:
        weak = vt[-1]
        names = tuple(n for n, w in zip(("baseline", *classes), weak, strict=True)
                      if abs(w) > 0.2 and n != "baseline") or classes
        return cond, NotIdentifiable(
            f"classes {', '.join(names)} moved together across the steps (condition number {cond:,.0f} > "
            f"{MAX_CONDITION:g}); vary the mix: capkit run --design mix", names)
    return cond, None


def fit_demands(table: pd.DataFrame, resource: str, *, classes: tuple[str, ...] | None = None,
                kind: str | None = None, level: float = 0.95) -> DemandFit | NotMeasured:
    """Fit one resource's demands per class on the clean steps of ``table`` (:func:`class_steps`).

    Parameters
    ----------
    table : DataFrame
        Per-step class throughputs, sessions and resource means.
    resource : str
        The resource column.
    classes : tuple of str, optional
        The classes to fit (default: every class a clean step ran).
    kind : {"throughput", "sessions"}, optional
        Regressors: requests/s per class or open sessions per class (default: sessions for
        :data:`SESSION_RESOURCES`, else throughput).
    level : float
        Level of every interval.

    Returns
    -------
    DemandFit, or NotIdentifiable / NotMeasured saying why not.
    """
    kind = kind or ("sessions" if resource in SESSION_RESOURCES else "throughput")
    if resource not in table or table[resource].notna().sum() == 0:
        return NotMeasured("no collector measured it in this run")
    classes = classes or run_classes(table)
    if not classes:
        return NotMeasured("no request class ran in a clean step")
    prefix = "X_" if kind == "throughput" else "n_"
    cols = [f"{prefix}{c}" for c in classes]
    if kind == "sessions" and "ws" in classes and table["ws_open"].notna().any():
        cols[classes.index("ws")] = "ws_open"  # open connections, as counted: the WebSocket sessions
    data = table[table["clean"]].dropna(subset=[resource, *cols])
    if data.empty:
        return NotMeasured(f"no clean step measured {', '.join(cols)}")
    X = np.column_stack([np.ones(len(data)), data[cols].to_numpy(float)])
    y = data[resource].to_numpy(float)
    cond, why = identifiability(X, classes)
    users = [f"n_{c}" for c in classes]
    if why is None and kind == "throughput" and data[users].notna().all().all():
        # the users per class are the design itself: throughputs that vary by noise alone do not count
        cond_n, why = identifiability(np.column_stack([np.ones(len(data)), data[users].to_numpy(float)]), classes)
        cond = max(cond, cond_n)
    if why is not None:
        return why
    odd = odd_step(X, y)
    set_aside: tuple = ()
    if odd is not None:  # one odd step does not decide a demand: it is set aside, named, and refitted
        keep = np.arange(len(y)) != odd
        if identifiability(X[keep], classes)[1] is None:
            set_aside = (int(data["step"].iloc[odd]),)
            X, y = X[keep], y[keep]
    sol = optimize.lsq_linear(X, y, bounds=(0.0, np.inf), method="bvls")
    params = sol.x
    df = float(len(y) - X.shape[1])
    resid = y - X @ params
    s2 = float(resid @ resid) / df
    cov = s2 * np.linalg.inv(X.T @ X)
    tq = float(stats.t.ppf(0.5 + level / 2, df))
    se = np.sqrt(np.maximum(np.diag(cov), 0.0))
    ivs = [Interval(float(p), max(float(p - tq * s), 0.0), float(p + tq * s), level) for p, s in
           zip(params, se, strict=True)]
    return DemandFit(resource=resource, kind=kind, classes=tuple(classes), baseline=ivs[0],
                     demands=dict(zip(classes, ivs[1:], strict=True)), steps=len(y), level=level,
                     resid_sd=math.sqrt(s2), df_resid=df, condition=cond, params=params, cov=cov,
                     set_aside=set_aside)

