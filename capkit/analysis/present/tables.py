"""The result's tables as people read them: headers with units, numbers rounded to what their
interval supports, statuses as text, no index column. Each ``*_view`` returns a DataFrame for
:func:`~capkit.analysis.present.text.frame_html` (report pages, ``index.html``) or
:func:`~capkit.analysis.present.text.terminal_table` (the terminal); :func:`export_html` writes the
fragments ``index.html`` embeds. The CSV tables (:mod:`capkit.analysis.present.export`) keep every digit.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from capkit.analysis.fits.regression import ResourceFit
from capkit.analysis.present.text import frame_html, interval, number, percent, users
from capkit.schemas import RESOURCES, Basis, Interval

__all__ = ["consolidated_view", "baseline_view", "steps_view", "endpoints_view", "fits_view", "diagnostics_view",
           "usl_view", "crossings_view", "replicas_view", "thresholds_view", "backtest_view", "export_html"]

CONSOLIDATED = ["Component", "Test scenario", "Throughput", "Response time (p95)", "Error rate", "Status",
                "Recommendations"]


def consolidated_view(result) -> pd.DataFrame:
    """The consolidated results table (already text; the status is rendered with its dot)."""
    return result.components.reindex(columns=CONSOLIDATED)


def baseline_view(result) -> pd.DataFrame:
    """The Baseline Metrics table (text with intervals), its capacities located by the answer (the
    terminal's and ``baseline_metrics.csv``'s table; the fit's line alone is ``resources.baseline``)."""
    return result.baseline


def _ms(v) -> str:
    return number(v) if isinstance(v, (int, float)) and math.isfinite(v) else "–"


def steps_view(result) -> pd.DataFrame:
    """One row per step: load, throughput, errors, latency percentiles, generator CPU, flags."""
    s = result.resources.steps
    out = pd.DataFrame({
        "Step": s["step"], "Users": s["users"], "Seconds": s["seconds"].map(lambda v: number(v, 3)),
        "Requests": s["requests"].astype(int), "Throughput (req/s)": s["rps"].map(number),
        "Errors": s["error_rate"].map(percent), "429 (rate-limited)": s["rate_limited_share"].map(percent),
        "p50 (ms)": s["p50_ms"].map(_ms), "p95 (ms)": s["p95_ms"].map(_ms),
        f"p95 {result.criteria.level:.0%} interval (ms)": [
            "–" if not math.isfinite(p) else f"{_ms(lo)}–{_ms(hi)}" if math.isfinite(lo) and math.isfinite(hi)
            else "not measured (too few seconds)"
            for p, lo, hi in zip(s["p95_ms"], s.get("p95_low_ms", pd.Series(math.nan, index=s.index)),
                                 s.get("p95_high_ms", pd.Series(math.nan, index=s.index)), strict=True)],
        "p99 (ms)": s["p99_ms"].map(_ms)})
    if "settle_s" in s and s["settle_s"].fillna(0).gt(0).any():  # seconds waited for a heavier step's backlog
        out["Settling (s)"] = s["settle_s"].fillna(0).map(lambda v: f"+{v:.0f}" if v > 0 else "–")
    if "generator_cpu" in s and s["generator_cpu"].notna().any():
        out["Generator CPU"] = s["generator_cpu"].map(percent)
    if "other_cpu_cores" in s and s["other_cpu_cores"].notna().any():  # what else ran beside the service and load
        out["Other CPU (cores)"] = s["other_cpu_cores"].map(lambda v: number(v, 2) if math.isfinite(v) else "–")
    if "machine_steal_cores" in s and s["machine_steal_cores"].fillna(0).gt(0.01).any():
        out["Steal (cores)"] = s["machine_steal_cores"].map(lambda v: number(v, 2) if math.isfinite(v) else "–")
    out["Flags"] = s["flags"].fillna("").replace("", "–")
    return out


def endpoints_view(result) -> pd.DataFrame:
    """Every endpoint at every step."""
    e = result.endpoints
    return pd.DataFrame({
        "Component": e["component"], "Endpoint": e["name"], "Step": e["step"], "Users": e["users"],
        "Requests": e["requests"].astype(int), "Throughput (req/s)": e["rps"].map(number),
        "Failures": e["failures"].astype(int), "429": e["rate_limited"].astype(int),
        "Error rate": e["error_rate"].map(percent), "p50 (ms)": e["p50_ms"].map(_ms),
        "p95 (ms)": e["p95_ms"].map(_ms), "p99 (ms)": e["p99_ms"].map(_ms)})


def fits_view(result) -> pd.DataFrame:
    """The resource fits with their intervals (the CSV ``fits.csv`` has every number)."""
    rows = []
    pct = f"{result.params.level:.0%}"
    for resource, fit in result.resources.fits.items():
        label, unit = RESOURCES[resource]
        if not isinstance(fit, ResourceFit):
            rows.append({"Resource": f"{label} ({unit})", "Steps": "–", "Baseline (idle)": "–",
                         f"Per user ({pct} CI)": "–", "p (per user)": "–", "R²": "–", "Limit": "–",
                         "Capacity (users)": str(fit)})
            continue
        cap = fit.capacity
        cap_text = (f"{users(cap.estimate)} ({users(cap.low)}–{users(cap.high)})" if isinstance(cap, Interval)
                    else "not reached")
        p = fit.per_user_p
        rows.append({"Resource": f"{label} ({unit})", "Steps": fit.steps,
                     "Baseline (idle)": interval(fit.baseline.estimate, fit.baseline.low, fit.baseline.high),
                     f"Per user ({pct} CI)": interval(fit.per_user.estimate, fit.per_user.low, fit.per_user.high),
                     "p (per user)": "< 0.001" if p < 0.001 else number(p, 2), "R²": number(fit.r2, 3),
                     "Limit": f"{fit.limit:,.6g} {unit}", "Capacity (users)": cap_text})
    return pd.DataFrame(rows)


def diagnostics_view(result) -> pd.DataFrame:
    """Non-linearity, drift within steps and influential steps per resource."""
    d = result.diagnostics
    if d.empty:
        return pd.DataFrame(columns=["Resource", "Note"])
    yes = lambda v: "–" if v is None or v != v else ("yes" if bool(v) else "no")  # noqa: E731
    return pd.DataFrame({
        "Resource": d["Resource"], "Quadratic term": d["quadratic"].map(number),
        "p (quadratic)": d["quadratic_p"].map(lambda v: number(v, 2)), "Non-linear": d["nonlinear"].map(yes),
        "Drift within steps (per min)": d["drift_per_min"].map(number),
        "p (drift)": d["drift_p"].map(lambda v: number(v, 2)), "Leak suspected": d["leak_suspect"].map(yes),
        "Note": d["note"].fillna("").replace("", "–")})


USL_LABELS = {"sigma": "σ (contention)", "kappa": "κ (coherency)", "lambda_": "λ (req/s per user)",
              "peak_concurrency": "N* (users at peak throughput)", "max_throughput": "X max (req/s)"}


def usl_view(result) -> pd.DataFrame:
    """The USL coefficients with their intervals; no peak is "none (κ ≈ 0)"."""
    t = result.usl_table()
    basis = result.usl.peak_basis(result.params.level) if result.usl is not None else None
    rows = []
    for r in t.itertuples(index=False):
        derived = r.parameter in ("peak_concurrency", "max_throughput")
        if derived and (basis is Basis.NOT_MEASURED or not math.isfinite(r.estimate)):
            text = "none measured (κ ≈ 0)" if r.parameter == "peak_concurrency" else "no peak (κ ≈ 0)"
        else:
            text = interval(r.estimate, r.lower, r.upper if math.isfinite(r.upper) else math.nan)
            if not math.isfinite(r.upper) and math.isfinite(r.estimate):
                text = f"{number(r.estimate)} ({number(r.lower)} – no upper bound)"
            if derived:
                text += f" ({basis})"
        rows.append({"Parameter": USL_LABELS.get(r.parameter, r.parameter),
                     f"Estimate ({result.params.level:.0%} interval)": text})
    return pd.DataFrame(rows)


def crossings_view(result) -> pd.DataFrame:
    """Where the modelled p95 reaches each threshold."""
    c = result.latency_crossings()
    return pd.DataFrame({"Threshold": c["threshold"].str.capitalize(), "p95 (ms)": c["ms"].map(number),
                         f"Reached at (users, {result.params.level:.0%} interval)":
                             [f"{users(u)} ({users(lo)}–{users(hi)})" if math.isfinite(u) else "not reached"
                              for u, lo, hi in zip(c["users"], c["low"], c["high"])]})


def replicas_view(result) -> pd.DataFrame:
    """Per limit: users one replica carries (planning bound) and replicas for the target."""
    t = result.replicas.table
    target = users(result.replicas.target_users)

    def reps(v):
        if isinstance(v, float) and math.isnan(v):
            return "– (limit not reached)"
        return "not possible" if math.isinf(v) else f"{v:.0f}"

    return pd.DataFrame({"Limit": t["limit"], "Users per replica (plan)": t["per_replica"].map(users),
                         f"Replicas for {target} users (N+{result.replicas.headroom})": t["replicas"].map(reps)})


def thresholds_view(result) -> pd.DataFrame:
    """The scaling thresholds table (text)."""
    return result.thresholds_table()[["Metric", "Warning threshold", "Critical threshold", "Warning at",
                                      "Critical at", "Action"]]


def backtest_view(result) -> pd.DataFrame:
    """How far the projection can be trusted, per quantity."""
    s = result.backtest.summary
    return pd.DataFrame({"Quantity": s["quantity"], "Steps held out": s["steps"],
                         "Mean error": s["mean_abs_error_pct"].map(lambda v: f"{number(v, 2)} %"),
                         "Largest error": s["max_abs_error_pct"].map(lambda v: f"{number(v, 2)} %"),
                         "Inside the interval": s["inside_share"].map(lambda v: percent(v, 0))})


def export_html(result, out_dir) -> list[Path]:
    """The fragments ``index.html`` embeds: ``consolidated_results.html``, ``baseline_metrics.html``,
    ``backtest_summary.html`` (when a backtest exists) and the answer (see :func:`write_answer`)."""
    from capkit.analysis.present.headline import write_answer

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    views = {"consolidated_results": consolidated_view(result), "baseline_metrics": baseline_view(result),
             "replicas": replicas_view(result)}
    if result.backtest is not None:
        views["backtest_summary"] = backtest_view(result)
    written = write_answer(result, out)
    for name, frame in views.items():
        path = out / f"{name}.html"
        path.write_text(frame_html(frame, style=False), encoding="utf-8")
        written.append(path)
    return written
