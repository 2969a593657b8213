"""LLM serving analysis: TTFT, ITL, TPOT, E2E per step, output tokens/s and goodput against load.

Read from the ``llm_stats`` rows (:mod:`capkit.records.llm`; definitions in ``docs/llm.md``): per
step and class (``generated`` answers of the model, ``cached`` answers replayed by the service —
never averaged together), percentiles merged exactly from the per-second HDR histograms, and
goodput (requests/s meeting every bound of the SLO the run was given). A run without token
timing gives :class:`~capkit.schemas.NotMeasured`, never empty numbers.

The SLO's per-request pass/fail was decided in the load generator, so goodput is for that SLO.
:func:`share_within` gives, for any other bound, the share of requests within it per metric from the
histograms (exact to HDR precision per metric; the joint "every bound" share needs the run's SLO).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from capkit.analysis.data.read import RunData
from capkit.analysis.data.steps import request_window, step_windows, window_seconds
from capkit.records.histograms import merge_histograms
from capkit.records.llm import SLO_KEYS, TPS_SCALE, Slo
from capkit.schemas import NotMeasured

NO_TOKEN_TIMING = "no token timing in this run"
METRICS = ("ttft", "itl", "tpot", "e2e")
QUANTILES = (50, 90, 95, 99)

__all__ = ["LlmServing", "corrected_percentiles", "goodput_knee", "llm_steps", "llm_turns", "share_within",
           "slo_of"]


def slo_of(run: RunData) -> Slo | None:
    """The SLO the run was given (``--slo``), from its spec notes."""
    return Slo.from_dict((run.meta.spec.notes or {}).get("slo"))


def _pcts(hdrs: list[str], scale: float = 1000.0) -> dict:
    hdrs = [h for h in hdrs if isinstance(h, str) and h]
    if not hdrs:
        return {q: np.nan for q in QUANTILES}
    values = merge_histograms(hdrs).get_percentile_to_value_dict(list(QUANTILES))
    return {q: values[q] / scale for q in QUANTILES}


def _step_rows(win: pd.DataFrame, r: pd.DataFrame, step: int, cls: str, seconds: float, slo: Slo | None) -> dict:
    requests, failures = int(r["requests"].sum()), int(r["failures"].sum())
    tokens = int(r["output_tokens"].sum())
    row = {"step": step, "users": int(win.loc[step, "users"]), "rate": win.loc[step].get("rate"), "cls": cls,
           "seconds": seconds, "requests": requests, "failures": failures,
           "rps": requests / seconds if seconds else np.nan, "output_tokens": tokens,
           "output_tokens_per_s": tokens / seconds if seconds else np.nan,
           "mean_output_tokens": tokens / requests if requests else np.nan}
    for metric in METRICS:
        for q, v in _pcts(r[f"{metric}_hdr"].tolist()).items():
            row[f"{metric}_p{q}_ms"] = v
    row["ttft_mean_ms"] = r["ttft_sum_ms"].sum() / requests if requests else np.nan
    counted = r["input_count"].sum() if "input_count" in r else 0
    row["mean_input_tokens"] = r["input_tokens"].sum() / counted if counted else np.nan  # the server's count
    row["itl_mean_ms"] = r["itl_sum_ms"].sum() / r["itl_count"].sum() if r["itl_count"].sum() else np.nan
    row["tpot_mean_ms"] = r["tpot_sum_ms"].sum() / r["tpot_count"].sum() if r["tpot_count"].sum() else np.nan
    row["e2e_mean_ms"] = r["e2e_sum_ms"].sum() / requests if requests else np.nan
    tps = _pcts(r["tps_hdr"].tolist(), scale=TPS_SCALE)
    row["request_tokens_per_s_p50"] = tps[50]
    row["request_tokens_per_s_mean"] = r["tps_sum"].sum() / requests if requests else np.nan
    total = requests + failures
    if slo is not None:
        good = int(r["good"].sum())
        row.update(good=good, goodput=good / seconds if seconds else np.nan,
                   good_share=good / total if total else np.nan)
        passed: dict[str, int] = {}
        for doc in r["slo_pass"].dropna():
            for key, n in json.loads(doc).items():
                passed[key] = passed.get(key, 0) + int(n)
        for key in SLO_KEYS:
            if getattr(slo, f"{key}_ms") is not None:
                row[f"{key}_share"] = passed.get(key, 0) / total if total else np.nan
    return row


def llm_steps(steps: pd.DataFrame, llm: pd.DataFrame, *, warmup_s: float, slo: Slo | None = None) -> pd.DataFrame:
    """One row per step and class (``generated``, ``cached``, and ``all``: both together, for goodput
    and total tokens/s): requests, rates, TTFT/ITL/TPOT/E2E percentiles (ms), output tokens/s
    (total, and per request), and with an ``slo`` the goodput, its share and the share per bound.

    Empty when the run has no LLM records.
    """
    if llm is None or llm.empty or steps.empty:
        return pd.DataFrame()
    rows = request_window(llm, steps, warmup_s)
    win = step_windows(steps, warmup_s).set_index("step")
    out = []
    for step, r in rows.groupby("step"):
        seconds = window_seconds(win.loc[step])
        for cls in ("generated", "cached"):
            part = r[r["cls"] == cls]
            if len(part):
                out.append(_step_rows(win, part, int(step), cls, seconds, slo))
        out.append(_step_rows(win, r, int(step), "all", seconds, slo))
    return pd.DataFrame(out)


def llm_turns(steps: pd.DataFrame, llm: pd.DataFrame, *, warmup_s: float, slo: Slo | None = None) -> pd.DataFrame:
    """One row per step, conversation turn (``turn``: 1 is a conversation's first request) and class
    (``generated``, ``all``): the columns of :func:`llm_steps` per turn depth, with the server's mean
    input tokens (the history grows with the turn). Empty when the run recorded no turns (older runs)."""
    if llm is None or llm.empty or steps.empty or "turn" not in llm or llm["turn"].isna().all():
        return pd.DataFrame()
    rows = request_window(llm[llm["turn"].notna()], steps, warmup_s)
    win = step_windows(steps, warmup_s).set_index("step")
    out = []
    for (step, turn), r in rows.groupby(["step", "turn"]):
        seconds = window_seconds(win.loc[step])
        for cls, part in (("generated", r[r["cls"] == "generated"]), ("all", r)):
            if len(part):
                out.append({"turn": int(turn), **_step_rows(win, part, int(step), cls, seconds, slo)})
    table = pd.DataFrame(out)
    first = ["step", "users", "rate", "turn", "cls"]
    return table[first + [c for c in table.columns if c not in first]] if len(table) else table


def goodput_knee(table: pd.DataFrame) -> dict | NotMeasured:
    """The load beyond which good throughput stops growing: the step of the highest goodput (with an
    SLO) or of the highest total output tokens/s (without), when a higher load did worse.

    Returns ``{"step", "users", "rate", "value", "metric"}``, or NotMeasured when the highest
    value is at the highest load (the knee lies beyond the steps measured).
    """
    if table.empty:
        return NotMeasured(NO_TOKEN_TIMING)
    t = table[(table["cls"] == "all") & (table["users"] > 0)].sort_values("step")
    metric = "goodput" if "goodput" in t else "output_tokens_per_s"
    t = t[t[metric].notna()]
    if len(t) < 2:
        return NotMeasured("fewer than two loaded steps with token timing")
    load = t["rate"].where(t["rate"].notna(), t["users"]).astype(float)
    best = t.loc[t[metric].idxmax()]
    if load.loc[best.name] >= load.max():
        return NotMeasured(f"{metric} still highest at the highest load measured: the knee is beyond it")
    return {"step": int(best["step"]), "users": int(best["users"]), "rate": best["rate"], "value": float(best[metric]),
            "metric": metric}


def share_within(steps: pd.DataFrame, llm: pd.DataFrame, *, warmup_s: float, metric: str, bound_ms: float,
                 cls: str = "all") -> pd.Series:
    """Per step: the share of ``metric`` values (ttft, tpot, e2e; itl: of the gaps) within ``bound_ms``,
    from the histograms — for a bound other than the run's SLO (per metric only: the joint share of
    requests meeting several bounds at once is what the stored ``good`` counts are for)."""
    rows = request_window(llm, steps, warmup_s)
    if cls != "all":
        rows = rows[rows["cls"] == cls]
    out = {}
    for step, r in rows.groupby("step"):
        hdrs = [h for h in r[f"{metric}_hdr"] if isinstance(h, str) and h]
        if hdrs:
            hist = merge_histograms(hdrs)
            total = hist.get_total_count()
            out[int(step)] = _count_below(hist, bound_ms * 1000) / total
    return pd.Series(out, name=f"{metric}_within_{bound_ms:g}ms", dtype=float)


def _count_below(hist, bound_us: float) -> int:
    n = 0
    for item in hist.get_recorded_iterator():
        if item.value_iterated_to <= bound_us:
            n += item.count_at_value_iterated_to
    return n


def corrected_percentiles(steps: pd.DataFrame, corrected: pd.DataFrame, *, warmup_s: float) -> pd.DataFrame:
    """Per step: p50/p95/p99 of the latency from each request's intended start (arrival-rate steps),
    every endpoint but the derived ``STREAM`` rows together; empty without such rows."""
    if corrected is None or corrected.empty or steps.empty:
        return pd.DataFrame(columns=["step", "corrected_p50_ms", "corrected_p95_ms", "corrected_p99_ms"])
    rows = request_window(corrected, steps, warmup_s)
    rows = rows[rows["method"] != "STREAM"]
    out = []
    for step, r in rows.groupby("step"):
        p = _pcts(r["hdr"].tolist())
        out.append({"step": int(step), "corrected_p50_ms": p[50], "corrected_p95_ms": p[95],
                    "corrected_p99_ms": p[99]})
    return pd.DataFrame(out, columns=["step", "corrected_p50_ms", "corrected_p95_ms", "corrected_p99_ms"])


@dataclass
class LlmServing:
    """The LLM serving view of one run: the per-step table, the SLO, the knee."""

    run: RunData
    table: pd.DataFrame
    slo: Slo | None
    knee: dict | NotMeasured
    corrected: pd.DataFrame
    turns: pd.DataFrame = field(default_factory=pd.DataFrame)  # per step and turn depth (llm_turns)

    @property
    def measured(self) -> bool:
        return not self.table.empty

    def headline_table(self) -> pd.DataFrame | NotMeasured:
        """The step table a reader looks at first: generated answers' TTFT/ITL/TPOT/E2E p50 & p99,
        output tokens/s, goodput."""
        if not self.measured:
            return NotMeasured(NO_TOKEN_TIMING)
        cols = ["step", "users", "rate", "cls", "requests", "rps", "ttft_p50_ms", "ttft_p99_ms", "itl_p50_ms",
                "itl_p99_ms", "tpot_p50_ms", "tpot_p99_ms", "e2e_p50_ms", "e2e_p99_ms", "output_tokens_per_s",
                "request_tokens_per_s_p50", "goodput", "good_share"]
        return self.table.reindex(columns=cols)

    def turn_table(self) -> pd.DataFrame | NotMeasured:
        """Generated answers per step and turn depth: requests, TTFT/ITL/E2E p50 & p99, mean input tokens."""
        if self.turns.empty:
            return NotMeasured("no conversation turns recorded in this run")
        t = self.turns[self.turns["cls"] == "generated"]
        return t.reindex(columns=["step", "users", "rate", "turn", "requests", "mean_input_tokens", "ttft_p50_ms",
                                  "ttft_p99_ms", "itl_p50_ms", "itl_p99_ms", "e2e_p50_ms", "e2e_p99_ms"])

    def summary(self) -> str:
        """A few lines: classes measured, the SLO and the knee."""
        if not self.measured:
            return f"LLM serving: {NotMeasured(NO_TOKEN_TIMING)}"
        gen = self.table[self.table["cls"] == "generated"]
        cached = self.table[self.table["cls"] == "cached"]
        lines = [f"LLM serving of run {self.run.run_id}: {int(gen['requests'].sum())} generated answers, "
                 f"{int(cached['requests'].sum())} cached (reported apart)."]
        lines.append(f"SLO: {self.slo.to_text()} (goodput is for this SLO)" if self.slo
                     else "SLO: none given (run with --slo for goodput)")
        if isinstance(self.knee, NotMeasured):
            lines.append(f"Knee: {self.knee}")
        else:
            k = self.knee
            at = f"{k['rate']:g} req/s" if pd.notna(k["rate"]) else f"{k['users']} users"
            lines.append(f"Knee: {k['metric']} peaks at {k['value']:.3g}/s at step {k['step']} ({at}); "
                         f"more load gave less")
        return "\n".join(lines)
