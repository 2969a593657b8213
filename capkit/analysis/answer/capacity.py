"""From a stored run to its resource capacity: steps, per-resource fits, the Baseline Metrics table."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from capkit.analysis.data.read import RunData
from capkit.analysis.data.resources import resource_frame, step_resource_means
from capkit.analysis.data.steps import endpoint_table, summarize_steps
from capkit.analysis.fits.regression import ResourceFit, binding_constraint, fit_resource_regression, fit_resources
from capkit.errors import CapkitError, InsufficientDataError
from capkit.schemas import POOL_RESOURCES, RESOURCES, Basis, Interval, NotMeasured, ResourceLimits, resource_label


@dataclass
class ResourceCapacity:
    """What each resource costs per user in one run and how many users its limit allows."""

    run_id: str
    limits: ResourceLimits
    steps: pd.DataFrame  # one row per step, with flags and `clean`
    per_second: pd.DataFrame  # resources of every collector per second, trimmed, with step and users
    endpoints: pd.DataFrame  # per step and endpoint
    fits: dict  # resource -> ResourceFit | NotMeasured

    @property
    def binding(self) -> ResourceFit | None:
        return binding_constraint(self.fits)

    @property
    def clean_user_steps(self) -> int:
        return int((self.steps["clean"] & (self.steps["users"] > 0)).sum()) if not self.steps.empty else 0

    @property
    def baseline(self) -> pd.DataFrame:
        """The Baseline Metrics table: one row per resource, intervals included."""
        return baseline_table(self.fits)

    @property
    def level(self) -> float:
        """The confidence level of the fits (0.95 when none was fitted)."""
        return next((f.level for f in self.fits.values() if isinstance(f, ResourceFit)), 0.95)

    def db_cpu_fit(self) -> ResourceFit | NotMeasured:
        """The database's backend CPU (cores ~ users) on the clean steps, when a PostgreSQL collector
        sampled it: the fitted resource if it is one, else fitted here (it has no limit of its own)."""
        fit = self.fits.get("db_cpu_cores")
        if fit is not None:
            return fit
        ps = self.per_second
        if "db_cpu_cores" not in ps or ps["db_cpu_cores"].notna().sum() == 0:
            return NotMeasured("no PostgreSQL collector with backend CPU in this run")
        db = ps[["ts", "users", "step", "db_cpu_cores"]].dropna()
        db = db[db["step"].isin(self.steps.loc[self.steps["clean"], "step"])]
        try:
            return fit_resource_regression(db["users"], db["db_cpu_cores"], resource="db_cpu_cores",
                                           limit=self.limits.db_cpu_cores, level=self.level, steps=db["step"],
                                           times=db["ts"])
        except CapkitError as exc:
            return NotMeasured(str(exc))


def resource_capacity(run: RunData, limits: ResourceLimits | None = None, *, level: float = 0.95,
                      max_error_rate: float | None = None) -> ResourceCapacity:
    """Summarise the steps of ``run``, fit every resource on its clean steps (a step above
    ``max_error_rate``, default the run's criteria, is flagged ``errors``).

    Raises :class:`InsufficientDataError` when fewer than 2 clean steps remain.
    """
    limits = limits or ResourceLimits()
    warmup = run.warmup_s
    steps = summarize_steps(run.steps, run.requests, run.samples, warmup_s=warmup,
                            corrected=getattr(run, "corrected", None),
                            max_error_rate=max_error_rate or run.meta.spec.criteria.max_error_rate, level=level)
    if steps.empty or int(steps["clean"].sum()) < 2:
        flags = "; ".join(f"step {r.step}: {r.flags}" for r in steps.itertuples() if r.flags) if not steps.empty else ""
        raise InsufficientDataError(
            f"run {run.run_id} has {0 if steps.empty else int(steps['clean'].sum())} clean step(s); "
            f"fits need at least 2{' (' + flags + ')' if flags else ''}")
    custom = {**(run.meta.spec.notes.get("limits") or {}), **limits.custom}
    limits = limits.model_copy(update={"custom": custom})
    per_second = resource_frame(run.samples, run.steps, warmup, custom=tuple(custom))
    limits = pool_limits(limits, per_second)
    extra = step_resource_means(per_second)
    for column in extra.columns.difference(steps.columns):
        steps[column] = steps["step"].map(extra[column])
    clean = steps.loc[steps["clean"], "step"].tolist()
    fits = fit_resources(per_second, limits, clean_steps=clean, level=level)
    return ResourceCapacity(run_id=run.run_id, limits=limits, steps=steps, per_second=per_second,
                            endpoints=endpoint_table(run.requests, run.steps, warmup_s=warmup), fits=fits)


def pool_limits(limits: ResourceLimits, per_second: pd.DataFrame) -> ResourceLimits:
    """``limits`` with each pool's size as the service reported it, where none was given."""
    update = {}
    for pool in POOL_RESOURCES:
        column = f"{pool}_size"
        if getattr(limits, pool) is None and column in per_second and per_second[column].notna().any():
            update[pool] = float(per_second[column].median())
    return limits.model_copy(update=update) if update else limits


def _fmt(x: float, digits: int = 3, *, tiny: float = 0.0) -> str:
    """``x`` to ``digits`` significant digits; at or below ``tiny`` (rounding noise against the
    resource's limit, e.g. a constant series' 1e-17 per user) it is 0."""
    if not math.isfinite(x):
        return "–"
    if abs(x) <= tiny:
        return "0"
    return f"{x:.{digits}g}" if abs(x) < 1000 else f"{x:,.0f}"


def _estimate_text(iv: Interval, tiny: float) -> str:
    """"est ± half" of a fit's interval; "est (constant)" when the series did not move at all."""
    half = iv.half_width()
    if math.isfinite(half) and half <= tiny:
        return f"{_fmt(iv.estimate, tiny=tiny)} (constant)"
    return f"{_fmt(iv.estimate, tiny=tiny)} ± {_fmt(half, 2, tiny=tiny)}"


def _users(x: float) -> str:
    return "not reached" if math.isinf(x) else f"{x:,.0f}"


def baseline_table(fits: dict, located: dict | None = None) -> pd.DataFrame:
    """The Baseline Metrics table, measured: one row per resource, intervals included.

    ``located`` maps a resource to (users where it is full, basis, that value) from the capacity
    answer (a pool: at its critical share); without it the capacity is the fit's line at the limit,
    labelled ``projected``."""
    rows = []
    for resource in [*RESOURCES, *(k for k in fits if k not in RESOURCES)]:
        label, unit = resource_label(resource)
        fit = fits.get(resource)
        if not isinstance(fit, ResourceFit):
            rows.append({"Resource": f"{label} ({unit})", "Baseline (idle)": "–", "Per active user": "–",
                         "Max capacity": str(fit) if isinstance(fit, NotMeasured) else "not measured"})
            continue
        cap, basis, value = (located or {}).get(resource, (fit.capacity, Basis.PROJECTED, fit.limit))
        tiny = 1e-9 * fit.limit if math.isfinite(fit.limit) else 1e-12
        share = f" ({100 * value / fit.limit:.0f} %)" if resource in POOL_RESOURCES and fit.limit > 0 else ""
        if isinstance(cap, Interval) and math.isfinite(cap.estimate):
            text = (f"{_users(cap.estimate)} users ({_users(cap.low)}–{_users(cap.high)}) "
                    f"at {_fmt(value)} {unit}{share} · {basis}")
        elif isinstance(cap, Interval):
            text = f"not reached (limit {_fmt(fit.limit)} {unit})"
        else:
            text = f"not reached (no significant per-user cost; limit {_fmt(fit.limit)} {unit})"
        rows.append({"Resource": f"{label} ({unit})",
                     "Baseline (idle)": _estimate_text(fit.baseline, tiny),
                     "Per active user": _estimate_text(fit.per_user, tiny),
                     "Max capacity": text})
    return pd.DataFrame(rows)
