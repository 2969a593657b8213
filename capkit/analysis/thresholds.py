"""Scaling thresholds, measured: the users at which each warning/critical level is crossed."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from capkit.analysis.regression import ResourceFit, fit_resource_regression
from capkit.errors import CapkitError, ParameterError
from capkit.schemas import Interval, NotMeasured

ACTIONS = {
    "cpu": "Scale out API replicas",
    "memory": "Scale out API replicas (check per-user memory and leaks)",
    "db_cpu": "Optimize queries, upgrade DB plan",
    "p95": "Investigate bottlenecks, enable aggressive caching",
}


@dataclass(frozen=True)
class Threshold:
    """One scaling threshold: ``metric`` reaches ``value`` (``unit``) at ``users``."""

    metric: str
    level: str  # "warning" | "critical"
    value: float
    unit: str
    users: Interval | NotMeasured
    action: str

    def users_text(self) -> str:
        if isinstance(self.users, NotMeasured):
            return str(self.users)
        if math.isinf(self.users.estimate):
            return "not reached"
        fmt = lambda x: "∞" if math.isinf(x) else f"{x:,.0f}"  # noqa: E731
        return f"{self.users.estimate:,.0f} users ({fmt(self.users.low)}–{fmt(self.users.high)})"


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


def _resource_rows(metric: str, fit, levels, action: str, why_missing: str) -> list[Threshold]:
    out = []
    for name, share in zip(("warning", "critical"), levels, strict=True):
        users = fit.users_at(share * fit.limit) if isinstance(fit, ResourceFit) else NotMeasured(why_missing)
        out.append(Threshold(metric, name, 100 * share, "%", users, action))
    return out


def scaling_thresholds(resources, latency=None, *, cpu=(0.70, 0.90), memory=(0.75, 0.90), db_cpu=(0.60, 0.85),
                       p95_ms=(500.0, 2000.0)) -> list[Threshold]:
    """The users at which each threshold is crossed (ranges from the prediction bounds, or the latency
    model's interval), with the action.

    Parameters
    ----------
    resources : ResourceCapacity
        Its CPU and memory fits (and ``db_cpu_cores`` samples, when a PostgreSQL collector ran).
    latency : LatencyModel or None
        For the p95 rows.
    cpu, memory, db_cpu : (float, float)
        Warning and critical shares of the limit.
    p95_ms : (float, float)
        Warning and critical p95 in milliseconds.

    Returns
    -------
    list of Threshold
    """
    cpu, memory, db_cpu = check_levels("CPU", cpu), check_levels("memory", memory), check_levels("DB CPU", db_cpu)
    p95_ms = check_levels("p95", p95_ms, fraction=False)
    rows: list[Threshold] = []
    for metric, key, levels, resource in (("CPU usage", "cpu", cpu, "cpu_cores"),
                                          ("Memory usage", "memory", memory, "rss_mib")):
        fit = resources.fits.get(resource)
        why = fit.reason if isinstance(fit, NotMeasured) else "no collector measured it in this run"
        rows += _resource_rows(metric, fit, levels, ACTIONS[key], why)
    rows += _resource_rows("DB CPU", _db_cpu_fit(resources), db_cpu, ACTIONS["db_cpu"],
                           "no PostgreSQL collector with backend CPU in this run")
    for name, ms in zip(("warning", "critical"), p95_ms, strict=True):
        if latency is None:
            users = NotMeasured("no latency model")
        elif not math.isclose(latency.threshold_ms(name), ms):
            users = NotMeasured("latency model fitted with other thresholds")
        else:
            users = latency.crossing(name)
        rows.append(Threshold("Response time (p95)", name, ms, "ms", users, ACTIONS["p95"]))
    return rows


def _db_cpu_fit(resources) -> ResourceFit | NotMeasured:
    ps = resources.per_second
    if "db_cpu_cores" not in ps or ps["db_cpu_cores"].notna().sum() == 0:
        return NotMeasured("no PostgreSQL collector with backend CPU in this run")
    clean = resources.steps.loc[resources.steps["clean"], "step"]
    db = ps[["ts", "users", "step", "db_cpu_cores"]].dropna()
    db = db[db["step"].isin(clean)]
    level = next((f.level for f in resources.fits.values() if isinstance(f, ResourceFit)), 0.95)
    try:
        return fit_resource_regression(db["users"], db["db_cpu_cores"], resource="db_cpu_cores",
                                       limit=resources.limits.db_cpu_cores, level=level, steps=db["step"],
                                       times=db["ts"])
    except CapkitError as exc:
        return NotMeasured(str(exc))


def thresholds_table(rows: list[Threshold]) -> pd.DataFrame:
    """The Scaling Thresholds table: one row per metric, warning and critical side by side, plus the
    numbers (``warning_users``/``_low``/``_high``, NaN when not measured) for CSV readers."""
    out = []
    for warning, critical in zip(rows[::2], rows[1::2], strict=True):
        fmt = (lambda v: f"{v:g} %") if warning.unit == "%" else (lambda v: f"{v:,.0f} ms")
        row = {"Metric": warning.metric, "Warning threshold": fmt(warning.value),
               "Critical threshold": fmt(critical.value), "Warning at": warning.users_text(),
               "Critical at": critical.users_text(), "Action": warning.action}
        for t in (warning, critical):
            iv = t.users if isinstance(t.users, Interval) else Interval(math.nan, math.nan, math.nan)
            row[f"{t.level}_users"], row[f"{t.level}_low"], row[f"{t.level}_high"] = iv.estimate, iv.low, iv.high
        out.append(row)
    return pd.DataFrame(out)
