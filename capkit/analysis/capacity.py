"""From a stored run to its resource capacity: steps, per-resource fits, the Baseline Metrics table."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from capkit.analysis.data import RunData
from capkit.analysis.regression import ResourceFit, binding_constraint, fit_resources
from capkit.analysis.resources import resource_frame, step_resource_means
from capkit.analysis.steps import endpoint_table, summarize_steps
from capkit.errors import InsufficientDataError
from capkit.schemas import RESOURCES, Interval, NotMeasured, ResourceLimits


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

    def headline(self) -> str:
        b = self.binding
        if b is None:
            return "No resource reaches its limit within the measured trend."
        label, unit = RESOURCES[b.resource]
        return (f"Binding constraint: {label} — about {b.capacity.estimate:,.0f} concurrent users per replica "
                f"(plan for {b.capacity.low:,.0f}; {b.level:.0%} prediction bound at {b.limit:g} {unit}).")


def resource_capacity(run: RunData, limits: ResourceLimits | None = None, *, level: float = 0.95) -> ResourceCapacity:
    """Summarise the steps of ``run``, fit every resource on its clean steps.

    Raises :class:`InsufficientDataError` when fewer than 2 clean steps remain.
    """
    limits = limits or ResourceLimits()
    warmup = run.warmup_s
    steps = summarize_steps(run.steps, run.requests, run.samples, warmup_s=warmup,
                            corrected=getattr(run, "corrected", None))
    if steps.empty or int(steps["clean"].sum()) < 2:
        flags = "; ".join(f"step {r.step}: {r.flags}" for r in steps.itertuples() if r.flags) if not steps.empty else ""
        raise InsufficientDataError(
            f"run {run.run_id} has {0 if steps.empty else int(steps['clean'].sum())} clean step(s); "
            f"fits need at least 2{' (' + flags + ')' if flags else ''}")
    per_second = resource_frame(run.samples, run.steps, warmup)
    extra = step_resource_means(per_second)
    for column in extra.columns.difference(steps.columns):
        steps[column] = steps["step"].map(extra[column])
    clean = steps.loc[steps["clean"], "step"].tolist()
    fits = fit_resources(per_second, limits, clean_steps=clean, level=level)
    return ResourceCapacity(run_id=run.run_id, limits=limits, steps=steps, per_second=per_second,
                            endpoints=endpoint_table(run.requests, run.steps, warmup_s=warmup), fits=fits)


def _fmt(x: float, digits: int = 3) -> str:
    if not math.isfinite(x):
        return "–"
    return f"{x:.{digits}g}" if abs(x) < 1000 else f"{x:,.0f}"


def _users(x: float) -> str:
    return "not reached" if math.isinf(x) else f"{x:,.0f}"


def baseline_table(fits: dict) -> pd.DataFrame:
    """The Baseline Metrics table, measured: one row per resource, intervals included."""
    rows = []
    for resource, (label, unit) in RESOURCES.items():
        fit = fits.get(resource)
        if not isinstance(fit, ResourceFit):
            rows.append({"Resource": f"{label} ({unit})", "Baseline (idle)": "–", "Per active user": "–",
                         "Max capacity": str(fit) if isinstance(fit, NotMeasured) else "not measured"})
            continue
        cap = fit.capacity
        if isinstance(cap, Interval):
            text = (f"{_users(cap.estimate)} users ({_users(cap.low)}–{_users(cap.high)}) "
                    f"at {_fmt(fit.limit)} {unit}")
        else:
            text = f"not reached (no significant per-user cost; limit {_fmt(fit.limit)} {unit})"
        rows.append({"Resource": f"{label} ({unit})",
                     "Baseline (idle)": f"{_fmt(fit.baseline.estimate)} ± {_fmt(fit.baseline.half_width(), 2)}",
                     "Per active user": f"{_fmt(fit.per_user.estimate)} ± {_fmt(fit.per_user.half_width(), 2)}",
                     "Max capacity": text})
    return pd.DataFrame(rows)
