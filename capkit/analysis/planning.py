"""The whole capacity plan of one run in one call: every model, table and recommendation.

The report notebooks call :func:`plan_for` (memoised per kernel, so pages executed in one
kernel compute the plan once) after :func:`check_parameters`.
"""

from __future__ import annotations

import functools
import math
import numbers
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from capkit.analysis.backtest import Backtest, backtest
from capkit.analysis.capacity import CapacityReport, capacity_report, export_tables, markdown_table
from capkit.analysis.components import component_endpoints, component_table
from capkit.analysis.data import RunData, load_run
from capkit.analysis.diagnostics import regression_diagnostics
from capkit.analysis.latency import LatencyModel, fit_latency
from capkit.analysis.recommend import recommendations
from capkit.analysis.replicas import ReplicaPlan, replicas_needed
from capkit.analysis.resources import cache_hit_rate
from capkit.analysis.thresholds import check_levels, scaling_thresholds
from capkit.analysis.usl import USLFit, usl_from_steps
from capkit.errors import CapkitError, ParameterError
from capkit.schemas import ResourceLimits

POSITIVE = ("cpu_cores", "memory_mib", "db_connections", "network_mbps", "redis_memory_mib", "model_queue_limit",
            "db_cpu_cores", "target_users", "latency_warning_ms", "latency_critical_ms")
SHARES = ("level", "train_share")
WHOLE = ("bootstrap", "headroom")
PAIRS = ("cpu_thresholds", "memory_thresholds", "db_cpu_thresholds")
TEXT = ("store_url", "run_id", "baseline_run_id")


def check_parameters(**params) -> dict:
    """Validate report parameters; return them (pairs as tuples).

    Raises
    ------
    ParameterError
        One line naming the first parameter of the wrong type or with a value that makes no sense.
    """
    def bad(name, value, want):
        raise ParameterError(f"parameter {name}={value!r} is not {want}")

    out = dict(params)
    for name, value in params.items():
        is_num = isinstance(value, numbers.Real) and not isinstance(value, bool)
        if name in TEXT and (not isinstance(value, str) or not value):
            bad(name, value, "a non-empty string")
        elif name in POSITIVE and (not is_num or not math.isfinite(value) or value <= 0):
            bad(name, value, "a number > 0")
        elif name in SHARES and (not is_num or not 0 < value < 1):
            bad(name, value, "a number between 0 and 1 (exclusive)")
        elif name in WHOLE and (not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 0):
            bad(name, value, "a whole number ≥ 0")
        elif name == "seed" and (not isinstance(value, numbers.Integral) or isinstance(value, bool)):
            bad(name, value, "a whole number")
        elif name == "think_time_s" and value is not None and (not is_num or value < 0):
            bad(name, value, "None (estimate it) or a number ≥ 0")
        elif name == "output_dir" and value is not None and not isinstance(value, str):
            bad(name, value, "None or a folder path")
        elif name in PAIRS:
            out[name] = check_levels(f"parameter {name}:", value)
    if "latency_warning_ms" in params and "latency_critical_ms" in params:
        check_levels("parameters latency_warning_ms, latency_critical_ms: p95",
                     (params["latency_warning_ms"], params["latency_critical_ms"]), fraction=False)
    return out


@dataclass
class CapacityPlan:
    """Everything the report pages show for one run; a model that could not be fitted is None
    with the reason in ``errors``."""

    run: RunData
    report: CapacityReport
    usl: USLFit | None
    latency: LatencyModel | None
    diagnostics: pd.DataFrame
    components: pd.DataFrame
    endpoints: pd.DataFrame
    thresholds: pd.DataFrame
    replicas: ReplicaPlan
    recommendations: pd.DataFrame
    backtest: Backtest | None
    cache_hit_rate: float
    errors: dict

    @property
    def run_id(self) -> str:
        return self.run.run_id

    def usl_table(self, level: float = 0.95) -> pd.DataFrame:
        """USL coefficients with intervals, N* and X_max (empty without a fit)."""
        if self.usl is None:
            return pd.DataFrame(columns=["parameter", "estimate", "lower", "upper"])
        ci = self.usl.confint(level)
        ci.insert(0, "estimate", [getattr(self.usl, p) for p in ci.index])
        return ci.rename_axis("parameter").reset_index()


def capacity_plan(run: RunData, limits: ResourceLimits | None = None, *, level: float = 0.95, bootstrap: int = 200,
                  seed: int = 0, think_time_s: float | None = None, latency_warning_ms: float = 500.0,
                  latency_critical_ms: float = 2000.0, cpu_thresholds=(0.70, 0.90), memory_thresholds=(0.75, 0.90),
                  db_cpu_thresholds=(0.60, 0.85), target_users: float = 500.0, headroom: int = 1,
                  train_share: float = 0.6) -> CapacityPlan:
    """Fit every model of one run and derive the plan.

    Parameters
    ----------
    run : RunData
    limits : ResourceLimits
    level : float
        Level of every interval.
    bootstrap, seed : int
        USL and latency bootstrap size and seed.
    think_time_s : float, optional
        Z of the response-time law (estimated when None).
    latency_warning_ms, latency_critical_ms : float
        p95 thresholds.
    cpu_thresholds, memory_thresholds, db_cpu_thresholds : (float, float)
        Warning and critical shares of the limit.
    target_users, headroom :
        For the replica count.
    train_share : float
        Share of the clean user steps the backtest fits on.

    Returns
    -------
    CapacityPlan

    Raises
    ------
    InsufficientDataError
        When fewer than 2 clean steps remain (no model at all); a later model that cannot be
        fitted is reported in ``errors`` instead.
    """
    report = capacity_report(run, limits, level=level)
    errors: dict = {}
    clean = report.steps[report.steps["clean"] & (report.steps["users"] > 0)]
    usl = latency = bt = None
    try:
        usl = usl_from_steps(clean, bootstrap=bootstrap, seed=seed)
    except CapkitError as exc:
        errors["usl"] = str(exc)
    if usl is not None:
        try:
            latency = fit_latency(clean, usl, think_time_s=think_time_s, warning_ms=latency_warning_ms,
                                  critical_ms=latency_critical_ms, level=level, bootstrap=bootstrap, seed=seed)
        except CapkitError as exc:
            errors["latency"] = str(exc)
    else:
        errors["latency"] = "needs the USL fit (at least 3 clean steps with users)"
    try:
        # half the resamples: the backtest's intervals only say inside/outside
        bt = backtest(report, train_share=train_share, level=level, bootstrap=bootstrap // 2, seed=seed)
    except CapkitError as exc:
        errors["backtest"] = str(exc)
    diagnostics = regression_diagnostics(report.per_second, report.steps.loc[report.steps["clean"], "step"])
    hit = cache_hit_rate(run.samples)
    return CapacityPlan(
        run=run, report=report, usl=usl, latency=latency, diagnostics=diagnostics,
        components=component_table(run.requests, run.steps, report.steps, warmup_s=run.warmup_s,
                                   warning_ms=latency_warning_ms, critical_ms=latency_critical_ms),
        endpoints=component_endpoints(report.endpoints),
        thresholds=scaling_thresholds(report, latency, cpu=cpu_thresholds, memory=memory_thresholds,
                                      db_cpu=db_cpu_thresholds, p95_ms=(latency_warning_ms, latency_critical_ms)),
        replicas=replicas_needed(report, target_users, headroom=headroom, latency=latency),
        recommendations=recommendations(report, diagnostics=diagnostics, latency=latency, cache_hit_rate=hit),
        backtest=bt, cache_hit_rate=hit, errors=errors)


def limits_from(params: dict) -> ResourceLimits:
    """ResourceLimits from report parameters (missing ones keep their defaults)."""
    names = {"cpu_cores": "cpu_cores", "memory_mib": "memory_mib", "db_connections": "db_connections",
             "network_mbps": "network_mbps", "redis_memory_mib": "redis_memory_mib",
             "model_queue_limit": "model_queue", "db_cpu_cores": "db_cpu_cores"}
    return ResourceLimits(**{field: params[p] for p, field in names.items() if p in params})


_PLAN_ARGS = ("level", "bootstrap", "seed", "think_time_s", "latency_warning_ms", "latency_critical_ms",
              "cpu_thresholds", "memory_thresholds", "db_cpu_thresholds", "target_users", "headroom", "train_share")


def plan_for(store_url: str, run_id: str, **params) -> CapacityPlan:
    """Validate ``params``, load ``run_id`` and build its plan — once per kernel for equal arguments.

    Parameters are those of the report notebooks (limits and :func:`capacity_plan`'s); others
    (``output_dir``, ``baseline_run_id``) are ignored here.
    """
    p = check_parameters(store_url=store_url, run_id=run_id, **params)
    key = tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in p.items() if k != "output_dir"
                       and k != "baseline_run_id"))
    return _cached_plan(key)


@functools.lru_cache(maxsize=4)
def _cached_plan(key: tuple) -> CapacityPlan:
    p = dict(key)
    run = load_run(p["store_url"], p["run_id"])
    return capacity_plan(run, limits_from(p), **{k: p[k] for k in _PLAN_ARGS if k in p})


def export_plan_tables(plan: CapacityPlan, out_dir: str | Path | None) -> list[Path]:
    """Write every table of the plan as CSV into ``out_dir`` (nothing when None); Markdown too for
    the Baseline Metrics and the consolidated results."""
    if not out_dir:
        return []
    out = Path(out_dir)
    written = export_tables(plan.report, out)
    tables = {"consolidated_results": plan.components.drop(columns=["rps", "p95_ms", "error_rate",
                                                                    "rate_limited_share"], errors="ignore"),
              "endpoint_details": plan.endpoints, "diagnostics": plan.diagnostics,
              "scaling_thresholds": plan.thresholds, "replicas": plan.replicas.table,
              "recommendations": plan.recommendations, "usl": plan.usl_table()}
    if plan.latency is not None:
        tables["latency_crossings"] = plan.latency.crossings
    if plan.backtest is not None:
        tables["backtest"] = plan.backtest.predictions
        tables["backtest_summary"] = plan.backtest.summary
    for name, frame in tables.items():
        path = out / f"{name}.csv"
        frame.to_csv(path, index=False)
        written.append(path)
    md = out / "consolidated_results.md"
    md.write_text(markdown_table(tables["consolidated_results"]) + "\n")
    written.append(md)
    return written
