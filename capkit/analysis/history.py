"""History across runs of one target: what a team looks at after each release.

For each stored run of a target in time order: capacity per replica (from the same
:func:`~capkit.analysis.present.headline.key_facts` as the report's answer), CPU per user and p95 at a
reference load, labelled with git SHA and date; a run is marked a regression when
:func:`~capkit.analysis.fits.compare.compare_runs` against the run before finds a significant change
for the worse (CPU per user up, a capacity or the USL peak throughput down), its p-values
Holm-adjusted over those watched quantities.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from capkit.analysis.answer.parameters import ReportParameters
from capkit.analysis.answer.result import analyse_run
from capkit.analysis.data.read import read_run
from capkit.analysis.fits.compare import compare_runs, holm
from capkit.analysis.fits.regression import ResourceFit
from capkit.analysis.present.headline import key_facts
from capkit.analysis.present.text import frame_html, interval, number, users
from capkit.errors import CapkitError

__all__ = ["History", "target_name", "run_history", "history_view", "history_html"]

# compare_runs rows whose change for the worse is a regression: quantity suffix -> worse when
WORSE = {"per user (cores)": 1, "capacity (users)": -1, "X_max (req/s)": -1}


def target_name(target: str, scenario: str | None) -> str:
    """The name a target's runs share: ``reference`` for the reference service (its URL carries a
    fresh port each run), else the target URL."""
    return "reference" if scenario == "reference" else target


@dataclass
class History:
    """The history of ``target``: one row per analysed run (time order) and the runs left out."""

    target: str
    reference_users: float
    table: pd.DataFrame
    skipped: list[tuple[str, str]] = field(default_factory=list)


def _regressions(prev, cur, level: float) -> tuple[list[str], list[str]]:
    """Significant changes of the watched quantities (:data:`WORSE`) between two runs, for the worse
    and for the better; the p-values are Holm-adjusted over the watched quantities, so that an
    unchanged run is flagged in at most 1 − ``level`` of comparisons, not once per quantity."""
    return watched_changes(compare_runs(prev.resources, cur.resources, usl_a=prev.usl, usl_b=cur.usl, level=level),
                           level)


def watched_changes(table: pd.DataFrame, level: float) -> tuple[list[str], list[str]]:
    """``(worse, better)``: the texts of the watched rows of a :func:`compare_runs` table whose
    Holm-adjusted p-value is below 1 − ``level``."""
    rows = []
    for row in table.itertuples(index=False):
        for suffix, sign in WORSE.items():
            if row.quantity.endswith(suffix) and (row.quantity.startswith("CPU") or sign < 0):
                rows.append((row, sign))
    adjusted, significant = holm([row.p_value for row, _ in rows], 1 - level)
    worse, better = [], []
    for (row, sign), p, hit in zip(rows, adjusted, significant, strict=True):
        if hit:
            shown = "< 0.001" if p < 0.001 else "= " + number(p, 2)
            text = f"{row.quantity} {row.change_pct:+.0f} % (Holm p {shown})"
            (worse if np.sign(row.difference) == sign else better).append(text)
    return worse, better


def run_history(store, *, target: str | None = None, params: ReportParameters | None = None,
                reference_users: float | None = None) -> History:
    """The history of ``target`` (default: the target of the latest run) in ``store``.

    Parameters
    ----------
    store : Store
    target : str, optional
        A target name (see :func:`target_name`) or URL.
    params : ReportParameters, optional
        Limits and settings of every analysis (``cpu_cores`` is each run's pinned cores when left at 1).
    reference_users : float, optional
        The load at which p95 is compared; default the highest clean load every run measured.

    Raises
    ------
    CapkitError
        When the store holds no finished run of the target (with the targets it does hold).
    """
    p = params or ReportParameters()
    runs = store.list_runs()
    runs = runs[runs["status"] != "running"].sort_values("created_at", kind="stable")
    names = [target_name(t, s) for t, s in zip(runs["target"], runs["scenario"])]
    runs = runs.assign(name=names)
    if target is None and len(runs):
        target = runs["name"].iloc[-1]
    mine = runs[(runs["name"] == target) | (runs["target"] == target)]
    if mine.empty:
        known = ", ".join(sorted(set(names))) or "none"
        raise CapkitError(f"no finished run of target {target or '(any)'} in the results store (targets: {known}); "
                          "run `capkit plan` first or pass --target NAME")
    results, skipped = [], []
    for run_id in mine["run_id"]:
        try:
            run = read_run(store, run_id)
            cores = run.meta.spec.service_cores
            q = p.replace(run_id=run_id, cpu_cores=float(cores)) if cores and p.cpu_cores == 1.0 else p
            results.append(analyse_run(run, q))
        except CapkitError as exc:
            skipped.append((run_id, str(exc)))
    if not results:
        raise CapkitError(f"none of the {len(mine)} run(s) of {target} can be analysed: {skipped[0][1]}")
    highs = [float(r.resources.steps.loc[r.resources.steps["clean"], "users"].max()) for r in results]
    ref = float(reference_users) if reference_users else min(highs)
    rows, prev = [], None
    for r in results:
        facts = key_facts(r).data
        cpu = r.resources.fits.get("cpu_cores")
        row = {"run_id": r.run_id, "created_at": r.run.meta.created_at, "git_sha": r.run.meta.git_sha,
               "capacity": facts.get("capacity_users") or math.nan,
               "capacity_low": facts.get("capacity_low") or math.nan,
               "capacity_high": facts.get("capacity_high") or math.nan, "basis": facts.get("capacity_basis"),
               "binding": facts.get("binding"), "cpu_per_user": math.nan, "cpu_low": math.nan, "cpu_high": math.nan,
               "p95_ms": math.nan, "p95_low": math.nan, "p95_high": math.nan}
        if isinstance(cpu, ResourceFit):
            row.update(cpu_per_user=cpu.per_user.estimate, cpu_low=cpu.per_user.low, cpu_high=cpu.per_user.high)
        if r.latency is not None:
            pr = r.latency.predict([ref]).iloc[0]
            row.update(p95_ms=pr["p95_ms"], p95_low=pr["p95_low"], p95_high=pr["p95_high"])
        worse, better = _regressions(prev, r, p.level) if prev is not None else ([], [])
        row.update(regression="; ".join(worse), improvement="; ".join(better))
        rows.append(row)
        prev = r
    return History(target=target, reference_users=ref, table=pd.DataFrame(rows), skipped=skipped)


def history_view(history: History) -> pd.DataFrame:
    """The history table for people."""
    from datetime import datetime, timezone

    t = history.table
    when = [datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%d %H:%M") for ts in t["created_at"]]
    return pd.DataFrame({
        "Run": t["run_id"], "Date (UTC)": when, "Git": [(s or "–")[:7] for s in t["git_sha"]],
        "Capacity per replica (users)": [
            f"{users(c)} ({users(lo)}–{users(hi)})" if math.isfinite(c) else "not reached"
            for c, lo, hi in zip(t["capacity"], t["capacity_low"], t["capacity_high"])],
        "Basis": t["basis"].fillna("–"), "Binding limit": t["binding"].fillna("–"),
        "CPU per user (cores)": [interval(e, lo, hi)
                                 for e, lo, hi in zip(t["cpu_per_user"], t["cpu_low"], t["cpu_high"])],
        f"p95 at {users(history.reference_users)} users (ms)": [
            interval(e, lo, hi) if math.isfinite(e) else "not measured" for e, lo, hi in
            zip(t["p95_ms"], t["p95_low"], t["p95_high"])],
        "Against the run before": [("Regression: " + w) if w else ("Improved: " + b) if b else ("–" if i == 0 else
                                   "no significant change") for i, (w, b) in
                                   enumerate(zip(t["regression"], t["improvement"]))],
    })


def history_html(history: History, figure: str | None = None) -> str:
    """The history page's body: a sentence, the figure (``figure``: its relative path), the table."""
    t = history.table
    last = t.iloc[-1]
    text = (f"{len(t)} run(s) of <strong>{html.escape(history.target)}</strong>. The latest "
            f"({html.escape(str(last['run_id']))}, git {html.escape((last['git_sha'] or '–')[:7])}): capacity per "
            f"replica <strong>{users(last['capacity'])} users</strong> ({html.escape(str(last['basis']))}), "
            f"CPU per user {html.escape(number(last['cpu_per_user']))} cores.")
    flagged = int((t["regression"] != "").sum())
    text += (f" <strong>{flagged} run(s) regressed</strong> significantly against the run before them."
             if flagged else " No run regressed significantly against the run before it.")
    body = f'<div class="ck-answer"><p>{text}</p></div>'
    if figure:
        body += (f'<p><img src="{html.escape(figure)}.png" alt="History: capacity per replica, CPU per user and '
                 f'p95 per run"></p><p class="meta">For print: <a href="{html.escape(figure)}.svg">SVG</a>.</p>')
    body += frame_html(history_view(history))
    if history.skipped:
        body += ("<p>Left out: " + "; ".join(f"{html.escape(r)} ({html.escape(w)})" for r, w in history.skipped)
                 + "</p>")
    return body
