"""Scaling thresholds, measured: the users at which each warning and critical threshold is crossed."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from capkit.analysis.answer.limits import locate, with_failure
from capkit.analysis.fits.regression import ResourceFit
from capkit.analysis.fits.utilization import throughput_curve
from capkit.schemas import BINDING_ACTIONS, DEFAULT_CRITERIA, POOL_RESOURCES, Basis, Criteria, Interval, NotMeasured

ACTIONS = {
    "cpu": "Scale out API replicas",
    "memory": "Scale out API replicas (check per-user memory and leaks)",
    "db_cpu": "Optimize queries, upgrade DB plan",
    "p95": "Investigate bottlenecks, enable aggressive caching",
}


@dataclass(frozen=True)
class Threshold:
    """One scaling threshold: ``metric`` reaches ``value`` (``unit``) at ``users``, with its basis."""

    metric: str
    severity: str  # "warning" | "critical" | "limit" (a confidence level is always `level`)
    value: float
    unit: str
    users: Interval | NotMeasured
    action: str
    key: str = ""  # "p95", "errors" or a resource of RESOURCES
    basis: Basis = Basis.NOT_MEASURED
    absolute: float | None = None  # the threshold in the resource's own unit (e.g. 0.9 cores)

    def users_text(self) -> str:
        if isinstance(self.users, NotMeasured):
            return str(self.users)
        if math.isinf(self.users.estimate):
            return "not reached"
        return f"{self.users.estimate:,.0f} users ({self.range_text()}, {self.basis})"

    def range_text(self) -> str:
        fmt = lambda x: "∞" if math.isinf(x) else f"{x:,.0f}"  # noqa: E731
        return f"{fmt(self.users.low)}–{fmt(self.users.high)}" if isinstance(self.users, Interval) else "–"

    def describe_value(self) -> str:
        if self.unit != "%":
            return f"{self.value:g} {self.unit}"
        if self.key in POOL_RESOURCES:
            return f"{self.value:g} % in use"
        return f"{self.value:g} %" + ("" if self.key == "errors" else " of its limit")

    def describe(self) -> str:
        return f"{self.metric.lower()} reaches {self.describe_value()}"


def scaling_thresholds(resources, criteria: Criteria = DEFAULT_CRITERIA, latency=None, usl=None, *,
                       locator: ResourceLocator | None = None, failure=None) -> list[Threshold]:
    """The users at which each threshold is crossed — measured when two valid steps bracket it,
    else projected from a model (see :mod:`capkit.analysis.answer.limits`) — with the action.

    Parameters
    ----------
    resources : ResourceCapacity
        Its steps (with per-step resource means) and fits.
    latency : LatencyModel or None
        Projects the p95 rows.
    usl : USLFit or None
        Carries throughput-driven resources (CPU, network, pools) beyond the measured steps.
    criteria : Criteria
        The p95 thresholds, the error limit and the warning and critical shares of each limit.
    locator : ResourceLocator, optional
        Shares its throughput curves with the caller (one is made for ``resources`` and ``usl`` otherwise).
    failure : ServiceFailure, optional
        Where the service failed: a process that died counts as a step whose every request failed.

    Returns
    -------
    list of Threshold
    """
    c = criteria
    cpu, memory, db_cpu, pools = c.cpu_shares, c.memory_shares, c.db_cpu_shares, c.pool_shares
    max_error_rate = criteria.max_error_rate
    steps, level = resources.steps, resources.level
    locator = locator or ResourceLocator(resources, usl)
    rows: list[Threshold] = []
    for name, ms in zip(("warning", "critical"), criteria.p95_ms, strict=True):
        projection = None if latency is None else (lambda _v, ms=ms: latency.users_at(ms))
        users, basis = locate(steps, "p95_ms", ms, projection=projection, level=level)
        if latency is None and basis == Basis.NOT_MEASURED:
            users = NotMeasured("no latency model and no measured step reached it")
        rows.append(Threshold("Response time (p95)", name, ms, "ms", users, ACTIONS["p95"], key="p95", basis=basis))
    users, basis = locate(with_failure(steps, failure), "error_rate", max_error_rate, level=level)
    if basis == Basis.NOT_MEASURED and "error_rate" in steps:
        users, basis = NotMeasured(f"no step reached {max_error_rate:.0%} errors"), Basis.NOT_MEASURED
    rows.append(Threshold("Error rate", "limit", 100 * max_error_rate, "%", users,
                          "Find the failing dependency before adding load", key="errors", basis=basis))
    fits = resources.fits
    specs = (("CPU usage", "cpu_cores", cpu, ACTIONS["cpu"]), ("Memory usage", "rss_mib", memory, ACTIONS["memory"]),
             ("DB CPU", "db_cpu_cores", db_cpu, ACTIONS["db_cpu"]),
             ("Model slots", "model_slots", pools, BINDING_ACTIONS["model_slots"]),
             ("DB pool", "db_pool", pools, BINDING_ACTIONS["db_pool"]),
             ("DB connections", "db_connections", (0.8, 1.0), BINDING_ACTIONS["db_connections"]),
             *((name, name, pools, f"Raise {name}'s limit or scale out") for name in resources.limits.custom))
    for metric, key, levels, action in specs:
        limit = resources.limits.limit_for(key)
        fit = fits.get(key) if key in fits else resources.db_cpu_fit() if key == "db_cpu_cores" else None
        for name, share in zip(("warning", "critical"), levels, strict=True):
            if not math.isfinite(limit) or key not in steps or steps[key].notna().sum() == 0:
                why = (fit.reason if isinstance(fit, NotMeasured) else "no collector measured it in this run")
                rows.append(Threshold(metric, name, 100 * share, "%", NotMeasured(why), action, key=key))
                continue
            value = share * limit
            users, basis = locator(key, value, fit=fit)
            rows.append(Threshold(metric, name, 100 * share, "%", users, action, key=key, basis=basis,
                                  absolute=value))
    return rows


class ResourceLocator:
    """Users at which a resource reaches a value (see :func:`~capkit.analysis.answer.limits.locate`):
    measured from the steps, else projected through throughput and the USL, else along its fit.
    Each resource's throughput curve is computed once, however many values are located on it."""

    def __init__(self, resources, usl):
        self.resources, self.usl = resources, usl
        self._curves: dict = {}

    def curve(self, key: str):
        if key not in self._curves:
            steps = self.resources.steps
            size = self.resources.limits.limit_for(key) if key in POOL_RESOURCES else math.inf
            self._curves[key] = throughput_curve(steps[steps["clean"]], key, self.usl, level=self.resources.level,
                                                 cap=size)
        return self._curves[key]

    def __call__(self, key: str, value: float, *, fit=None) -> tuple[Interval | NotMeasured, Basis]:
        fit = fit if fit is not None else self.resources.fits.get(key)

        def project(v):
            if isinstance(fit, ResourceFit) and not fit.significant:
                return fit.users_at(v)  # "no significant per-user cost": no curve may invent one
            curve = self.curve(key)
            if curve is not None:
                return curve.users_at(v)
            return fit.users_at(v) if isinstance(fit, ResourceFit) else NotMeasured("no fit to project it")

        size = self.resources.limits.limit_for(key) if key in POOL_RESOURCES else None
        return locate(self.resources.steps, key, value, projection=project, level=self.resources.level, size=size)


def thresholds_table(rows: list[Threshold]) -> pd.DataFrame:
    """The Scaling Thresholds table: one row per metric, warning and critical side by side with their
    basis, plus the numbers (``warning_users``/``_low``/``_high``, NaN when not measured) for CSV readers."""
    out, by_metric = [], {}
    for t in rows:
        by_metric.setdefault(t.metric, []).append(t)
    for metric, group in by_metric.items():
        warning = next((t for t in group if t.severity in ("warning", "limit")), group[0])
        critical = next((t for t in group if t.severity == "critical"), None)
        fmt = (lambda v: f"{v:g} %") if warning.unit == "%" else (lambda v: f"{v:,.0f} ms")
        row = {"Metric": metric, "Warning threshold": fmt(warning.value),
               "Critical threshold": fmt(critical.value) if critical else "–", "Warning at": warning.users_text(),
               "Critical at": critical.users_text() if critical else "–", "Action": warning.action}
        for name, t in (("warning", warning), ("critical", critical)):
            iv = t.users if t is not None and isinstance(t.users, Interval) else Interval(math.nan, math.nan,
                                                                                          math.nan)
            row[f"{name}_users"], row[f"{name}_low"], row[f"{name}_high"] = iv.estimate, iv.low, iv.high
            row[f"{name}_basis"] = str(t.basis) if t is not None else ""
        out.append(row)
    return pd.DataFrame(out)
