"""The seed's Scaling Thresholds, measured: the users at which each warning/critical level is crossed."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from capkit.analysis.regression import ResourceFit, _solve_users, fit_resource_regression
from capkit.errors import CapkitError, ParameterError

ACTIONS = {
    "cpu": "Scale out API replicas",
    "memory": "Scale out API replicas (check per-user memory and leaks)",
    "db_cpu": "Optimize queries, upgrade DB plan",
    "p95": "Investigate bottlenecks, enable aggressive caching",
}


def check_levels(name: str, pair, *, fraction: bool = True) -> tuple[float, float]:
    """``(warning, critical)`` as floats with 0 < warning < critical (≤ 1 for a share of a limit).

    Raises :class:`ParameterError` naming ``name`` otherwise.
    """
    try:
        warning, critical = (float(v) for v in pair)
    except (TypeError, ValueError):
        raise ParameterError(f"{name} thresholds must be two numbers (warning, critical), got {pair!r}") from None
    top = 1.0 if fraction else math.inf
    if not (0 < warning < critical <= top) or not (math.isfinite(warning) and math.isfinite(critical)):
        bound = " ≤ 1 (a share of the limit, e.g. 0.7, 0.9)" if fraction else ""
        raise ParameterError(f"{name} thresholds must satisfy 0 < warning < critical{bound}; "
                             f"got {warning:g}, {critical:g}")
    return warning, critical


def users_at(fit: ResourceFit, value: float) -> tuple[float, float, float]:
    """(users where the mean meets ``value``, where the upper prediction bound does, where the lower does)."""
    if fit.per_user <= 0:
        return math.inf, math.inf, math.inf
    mean = _solve_users(fit.bound("mean"), value)
    low = _solve_users(fit.bound("pi_high"), value)
    high = _solve_users(fit.bound("pi_low"), value) if fit.per_user_ci[0] > 0 else math.inf
    return mean, low, high


def _users_text(mean: float, low: float, high: float) -> str:
    if math.isinf(mean):
        return "not reached"
    fmt = lambda x: "∞" if math.isinf(x) else f"{x:,.0f}"  # noqa: E731
    return f"{mean:,.0f} users ({fmt(low)}–{fmt(high)})"


def scaling_thresholds(report, latency=None, *, cpu=(0.70, 0.90), memory=(0.75, 0.90), db_cpu=(0.60, 0.85),
                       p95_ms=(500.0, 2000.0)) -> pd.DataFrame:
    """One row per metric: thresholds, the users at which each is crossed (with the range from the
    prediction bounds, or the latency model's interval), and the action.

    Parameters
    ----------
    report : CapacityReport
        Its CPU and memory fits (and ``db_cpu_cores`` samples, when a PostgreSQL collector ran).
    latency : LatencyModel or None
        For the p95 row; None shows it as not available.
    cpu, memory, db_cpu : (float, float)
        Warning and critical shares of the limit.
    p95_ms : (float, float)
        Warning and critical p95 in milliseconds.

    Returns
    -------
    DataFrame
        Display columns and numeric ``warning_users``/``critical_users`` (+ ``_low``/``_high``).
    """
    cpu, memory, db_cpu = check_levels("CPU", cpu), check_levels("memory", memory), check_levels("DB CPU", db_cpu)
    p95_ms = check_levels("p95", p95_ms, fraction=False)
    rows = []

    def add(metric, levels, unit_fmt, crossings, action, note=""):
        row = {"Metric": metric, "Warning threshold": unit_fmt(levels[0]), "Critical threshold": unit_fmt(levels[1])}
        for name, cross in zip(("warning", "critical"), crossings, strict=True):
            row["Warning at" if name == "warning" else "Critical at"] = note or _users_text(*cross)
            row[f"{name}_users"], row[f"{name}_low"], row[f"{name}_high"] = cross
        row["Action"] = action
        rows.append(row)

    pct = lambda v: f"{v:.0%}"  # noqa: E731
    nan3 = (math.nan, math.nan, math.nan)
    for metric, key, levels, resource in (("CPU usage", "cpu", cpu, "cpu_cores"),
                                          ("Memory usage", "memory", memory, "rss_mib")):
        fit = report.fits.get(resource)
        if isinstance(fit, ResourceFit):
            add(metric, levels, pct, [users_at(fit, lv * fit.limit) for lv in levels], ACTIONS[key])
        else:
            add(metric, levels, pct, [nan3, nan3], ACTIONS[key], note="not measured" if fit is None or
                "not measured" in str(fit) else "no fit")
    db = report.per_second[["users", "step", "db_cpu_cores"]].dropna() if "db_cpu_cores" in report.per_second else None
    clean = report.steps.loc[report.steps["clean"], "step"]
    fit = None
    if db is not None and len(db):
        db = db[db["step"].isin(clean)]
        try:
            fit = fit_resource_regression(db["users"], db["db_cpu_cores"], resource="db_cpu_cores",
                                          limit=report.limits.db_cpu_cores, level=next(
                                              (f.level for f in report.fits.values() if isinstance(f, ResourceFit)),
                                              0.95))
        except CapkitError:
            fit = None
    if fit is not None:
        add("DB CPU", db_cpu, pct, [users_at(fit, lv * fit.limit) for lv in db_cpu], ACTIONS["db_cpu"])
    else:
        add("DB CPU", db_cpu, pct, [nan3, nan3], ACTIONS["db_cpu"], note="not measured")
    ms = lambda v: f"{v:,.0f} ms"  # noqa: E731
    if latency is not None and not latency.crossings.empty:
        cross = [latency.crossing("warning"), latency.crossing("critical")]
        if not np.allclose([latency.crossings["ms"].iloc[0], latency.crossings["ms"].iloc[1]], p95_ms):
            note = "latency model fitted with other thresholds"
            add("Response time (p95)", p95_ms, ms, [nan3, nan3], ACTIONS["p95"], note=note)
        else:
            add("Response time (p95)", p95_ms, ms, cross, ACTIONS["p95"])
    else:
        add("Response time (p95)", p95_ms, ms, [nan3, nan3], ACTIONS["p95"], note="no latency model")
    return pd.DataFrame(rows)
