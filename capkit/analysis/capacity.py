"""One call from a stored run to its capacity figures: steps, fits, Baseline Metrics, binding constraint."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from capkit.analysis.data import RunData
from capkit.analysis.regression import ResourceFit, baseline_table, binding_constraint, fit_resources
from capkit.analysis.resources import resource_frame, step_means
from capkit.analysis.steps import endpoint_table, summarize_steps
from capkit.errors import InsufficientDataError
from capkit.schemas import RESOURCES, ResourceLimits


@dataclass
class CapacityReport:
    """The measured capacity of one run."""

    run_id: str
    limits: ResourceLimits
    steps: pd.DataFrame  # one row per step, with flags and `clean`
    per_second: pd.DataFrame  # resources of every collector per second, trimmed, with step and users
    endpoints: pd.DataFrame  # per step and endpoint
    fits: dict  # resource -> ResourceFit | InsufficientDataError
    baseline: pd.DataFrame  # the Baseline Metrics table

    @property
    def binding(self) -> ResourceFit | None:
        return binding_constraint(self.fits)

    @property
    def clean_user_steps(self) -> int:
        return int((self.steps["clean"] & (self.steps["users"] > 0)).sum()) if not self.steps.empty else 0

    def headline(self) -> str:
        b = self.binding
        if b is None:
            return "No resource reaches its limit within the measured trend."
        label, unit = RESOURCES[b.resource]
        return (f"Binding constraint: {label} — about {b.capacity:,.0f} concurrent users per replica "
                f"(plan for {b.capacity_low:,.0f}; {b.level:.0%} prediction bound at {b.limit:g} {unit}).")


def capacity_report(run: RunData, limits: ResourceLimits | None = None, *, level: float = 0.95) -> CapacityReport:
    """Summarise the steps of ``run``, fit every resource on its clean steps, build the tables.

    Raises :class:`InsufficientDataError` when fewer than 2 clean steps remain.
    """
    limits = limits or ResourceLimits()
    warmup = run.warmup_s
    steps = summarize_steps(run.steps, run.requests, run.samples, warmup_s=warmup)
    if steps.empty or int(steps["clean"].sum()) < 2:
        flags = "; ".join(f"step {r.step}: {r.flags}" for r in steps.itertuples() if r.flags) if not steps.empty else ""
        raise InsufficientDataError(
            f"run {run.run_id} has {0 if steps.empty else int(steps['clean'].sum())} clean step(s); "
            f"fits need at least 2{' (' + flags + ')' if flags else ''}")
    per_second = resource_frame(run.samples, run.steps, warmup)
    extra = step_means(per_second)
    for column in extra.columns.difference(steps.columns):
        steps[column] = steps["step"].map(extra[column])
    clean = steps.loc[steps["clean"], "step"].tolist()
    fits = fit_resources(per_second, limits, clean_steps=clean, level=level)
    return CapacityReport(run_id=run.run_id, limits=limits, steps=steps, per_second=per_second,
                          endpoints=endpoint_table(run.requests, run.steps, warmup_s=warmup),
                          fits=fits, baseline=baseline_table(fits, limits))


def fits_table(report: CapacityReport) -> pd.DataFrame:
    """The fits as numbers (for CSV and CI gates)."""
    rows = []
    for resource, fit in report.fits.items():
        if isinstance(fit, ResourceFit):
            rows.append({"resource": resource, "n": fit.n, "steps": fit.steps, "baseline": fit.baseline,
                         "baseline_low": fit.baseline_ci[0], "baseline_high": fit.baseline_ci[1],
                         "per_user": fit.per_user, "per_user_low": fit.per_user_ci[0],
                         "per_user_high": fit.per_user_ci[1], "per_user_p": fit.per_user_p, "r2": fit.r2,
                         "limit": fit.limit, "capacity": fit.capacity, "capacity_low": fit.capacity_low,
                         "capacity_high": fit.capacity_high})
        else:
            rows.append({"resource": resource, "error": str(fit)})
    return pd.DataFrame(rows)


def export_tables(report: CapacityReport, out_dir: str | Path) -> list[Path]:
    """Write the report's tables as CSV (and the Baseline Metrics as Markdown) into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, frame in (("steps", report.steps), ("endpoints", report.endpoints), ("fits", fits_table(report)),
                        ("baseline_metrics", report.baseline)):
        path = out / f"{name}.csv"
        frame.to_csv(path, index=False)
        written.append(path)
    md = out / "baseline_metrics.md"
    md.write_text(markdown_table(report.baseline) + "\n")
    written.append(md)
    return written


def markdown_table(frame: pd.DataFrame) -> str:
    """A GitHub-style Markdown table (no optional dependency)."""
    cols = list(frame.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for row in frame.itertuples(index=False):
        lines.append("| " + " | ".join(str(v) for v in row) + " |")
    return "\n".join(lines)


