"""The result's tables as CSV and Markdown files (what `capkit report` publishes under ``tables/``)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from capkit.analysis.fits.regression import ResourceFit
from capkit.schemas import Interval


def markdown_table(frame: pd.DataFrame) -> str:
    """A GitHub-style Markdown table (no optional dependency)."""
    cols = list(frame.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for row in frame.itertuples(index=False):
        lines.append("| " + " | ".join(str(v) for v in row) + " |")
    return "\n".join(lines)


def fits_table(resources) -> pd.DataFrame:
    """The resource fits as numbers (for CSV readers and CI gates)."""
    rows = []
    for resource, fit in resources.fits.items():
        if not isinstance(fit, ResourceFit):
            rows.append({"resource": resource, "error": str(fit)})
            continue
        cap = fit.capacity if isinstance(fit.capacity, Interval) else Interval(float("inf"), float("inf"),
                                                                               float("inf"))
        rows.append({"resource": resource, "steps": fit.steps, "samples": fit.samples,
                     "baseline": fit.baseline.estimate, "baseline_low": fit.baseline.low,
                     "baseline_high": fit.baseline.high, "per_user": fit.per_user.estimate,
                     "per_user_low": fit.per_user.low, "per_user_high": fit.per_user.high,
                     "per_user_p": fit.per_user_p, "r2": fit.r2, "limit": fit.limit, "capacity": cap.estimate,
                     "capacity_low": cap.low, "capacity_high": cap.high,
                     "drift_per_hour": fit.drift_per_hour.estimate if fit.drift_per_hour else None,
                     "cold_idle": fit.cold_idle})
    return pd.DataFrame(rows)


def export_tables(result, out_dir: str | Path | None) -> list[Path]:
    """Write every table of a :class:`~capkit.analysis.answer.result.CapacityResult` as CSV into ``out_dir``
    (nothing when None); Markdown too for the Baseline Metrics and the consolidated results."""
    if not out_dir:
        return []
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    r = result.resources
    tables = {"steps": r.steps, "endpoints": r.endpoints, "fits": fits_table(r), "baseline_metrics": result.baseline,
              "consolidated_results": result.components.drop(columns=["rps", "p95_ms", "error_rate",
                                                                      "rate_limited_share"], errors="ignore"),
              "endpoint_details": result.endpoints, "diagnostics": result.diagnostics,
              "scaling_thresholds": result.thresholds_table(), "replicas": result.replicas.table,
              "recommendations": result.recommendations, "usl": result.usl_table()}
    if result.latency is not None:
        tables["latency_crossings"] = result.latency_crossings()
    if result.backtest is not None:
        tables["backtest"] = result.backtest.predictions
        tables["backtest_summary"] = result.backtest.summary
    written = []
    for name, frame in tables.items():
        path = out / f"{name}.csv"
        frame.to_csv(path, index=False)
        written.append(path)
    capacity = out / "capacity.json"
    import json

    capacity.write_text(json.dumps(result.answer.to_json(), indent=2) + "\n")
    criteria = out / "criteria.json"  # what the answer was judged by (the run's own unless overridden)
    criteria.write_text(json.dumps(result.criteria.model_dump(mode="json"), indent=2) + "\n")
    written += [capacity, criteria]
    for name in ("baseline_metrics", "consolidated_results"):
        md = out / f"{name}.md"
        md.write_text(markdown_table(tables[name]) + "\n")
        written.append(md)
    return written
