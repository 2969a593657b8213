"""Small helpers the report notebooks call, so that no notebook defines or repeats logic."""

from __future__ import annotations

import math
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from capkit.analysis.compare import compare_runs
from capkit.analysis.planning import CapacityPlan, plan_for
from capkit.errors import ParameterError

NOTEBOOK_PARAMETERS = (
    "store_url", "run_id", "output_dir", "cpu_cores", "memory_mib", "db_connections", "network_mbps",
    "redis_memory_mib", "model_queue_limit", "db_cpu_cores", "latency_warning_ms", "latency_critical_ms",
    "cpu_thresholds", "memory_thresholds", "db_cpu_thresholds", "think_time_s", "target_users", "headroom",
    "train_share", "level", "bootstrap", "seed",
)
CONSOLIDATED_COLUMNS = ["Component", "Test scenario", "Throughput", "Response time (p95)", "Error rate", "Status",
                        "Recommendations"]


def notebook_parameters(namespace: dict) -> dict:
    """The report parameters found in a notebook's namespace (pass ``globals()``).

    Raises :class:`ParameterError` when one is missing (a parameters cell was edited away).
    """
    missing = [n for n in ("store_url", "run_id") if n not in namespace]
    if missing:
        raise ParameterError(f"notebook parameter(s) {', '.join(missing)} missing from the parameters cell")
    return {n: namespace[n] for n in NOTEBOOK_PARAMETERS if n in namespace and n != "output_dir"}


def overview_md(plan: CapacityPlan) -> str:
    """Run, target, git SHA, status, steps and the flagged ones, as Markdown."""
    r = plan.run.run
    steps = plan.report.steps
    when = datetime.fromtimestamp(float(r["created_at"]), tz=timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    flagged = steps[~steps["clean"]]
    lines = [f"**Run** `{r['run_id']}` · {when} · target `{r['target']}` · scenario {r.get('scenario') or '–'}"
             f" · git `{(r.get('git_sha') or '–')[:12]}` · status **{r['status']}**"
             + (f" ({r['reason']})" if r.get("reason") else ""),
             f"{len(steps)} steps ({plan.report.clean_user_steps} clean with users), "
             f"warm-up {plan.run.warmup_s:g} s trimmed from each; {int(steps['requests'].sum()):,} requests."]
    if len(flagged):
        lines.append("Left out of the fits: " + "; ".join(f"step {s.step} ({s.users} users): {s.flags}"
                                                          for s in flagged.itertuples()))
    return "\n\n".join(lines)


def notes_md(plan: CapacityPlan) -> str:
    """Models that could not be fitted, with why (empty string when all were)."""
    if not plan.errors:
        return ""
    return "\n".join(f"- **{name}** not available: {why}" for name, why in plan.errors.items())


def consolidated(plan: CapacityPlan) -> pd.DataFrame:
    """The seed's consolidated results table (display columns only)."""
    return plan.components.reindex(columns=CONSOLIDATED_COLUMNS)


def backtest_md(plan: CapacityPlan) -> str:
    """One paragraph on how far to trust the projection."""
    bt = plan.backtest
    if bt is None:
        return f"Backtest not available: {plan.errors.get('backtest', 'too few steps')}."
    worst = bt.summary.sort_values("max_abs_error_pct").iloc[-1] if len(bt.summary) else None
    text = (f"Fitted on the steps at {', '.join(map(str, bt.train_users))} users (and the idle step), "
            f"predicted {', '.join(map(str, bt.test_users))} users.")
    if worst is not None and math.isfinite(worst["max_abs_error_pct"]):
        text += (f" Largest error: {worst['quantity']}, {worst['max_abs_error_pct']:.1f} % — trust projections of "
                 f"that quantity beyond the measured range no more than this.")
    return text


def comparison_for(params: dict, baseline_run_id: str, output_dir: str | None = None):
    """(plan of ``baseline_run_id``, plan of ``params['run_id']``, comparison table); writes
    ``comparison.csv`` into ``output_dir`` when given."""
    if not isinstance(baseline_run_id, str) or not baseline_run_id:
        raise ParameterError(f"parameter baseline_run_id={baseline_run_id!r} is not a non-empty string")
    a = plan_for(**{**params, "run_id": baseline_run_id})
    b = plan_for(**params)
    table = compare_runs(a.report, b.report, usl_a=a.usl, usl_b=b.usl, level=params.get("level", 0.95))
    if output_dir:
        Path(output_dir).mkdir(parents=True, exist_ok=True)
        table.to_csv(Path(output_dir) / "comparison.csv", index=False)
    return a, b, table


def comparison_display(table: pd.DataFrame, a_name: str, b_name: str) -> pd.DataFrame:
    """The comparison with readable numbers and a ✔ for significant differences."""
    def num(v):
        return "–" if not isinstance(v, (int, float)) or not math.isfinite(v) else f"{v:.4g}"

    return pd.DataFrame({
        "Quantity": table["quantity"], a_name: table["run_a"].map(num), b_name: table["run_b"].map(num),
        "Difference": table["difference"].map(num),
        "Change": table["change_pct"].map(lambda v: "–" if not math.isfinite(v) else f"{v:+.1f} %"),
        "p": table["p_value"].map(num),
        "Significant": [("✔" if s is True else "") if isinstance(n, float) else n
                        for s, n in zip(table["significant"], table["note"].fillna(0.0), strict=True)],
    })
