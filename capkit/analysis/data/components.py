"""Endpoints grouped into components (chat, analytics, auth, WebSocket) and the seed's
consolidated results table, measured."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from capkit.analysis.data.steps import DERIVED_TYPES, request_window
from capkit.records.histograms import merge_histograms
from capkit.schemas import DEFAULT_CRITERIA, Criteria

COMPONENT_LABELS = {"chat": "Chat API", "analytics": "Analytics API", "auth": "Authentication",
                    "websocket": "WebSocket", "other": "Other"}
_WS = re.compile(r"(^ws\b|\bws:|/ws\b|/ws/|websocket)", re.IGNORECASE)

# errors above this share need attention; above the criteria's error limit a component is failing
ERROR_WARNING = 0.01


def component_of(name: str, method: str = "") -> str:
    """``chat``, ``analytics``, ``auth``, ``websocket`` or ``other`` for an endpoint name.

    WebSocket names (``WS …``, ``ws: …``, ``/ws/…``, ``websocket``) first, then by path prefix
    ``/api/chat``, ``/api/analytics``, ``/api/auth`` or by a ``chat: …`` style name (the
    load scenarios' derived ``STREAM`` measurements).
    """
    text = f"{method} {name}".strip()
    if _WS.search(text):
        return "websocket"
    for comp in ("chat", "analytics", "auth"):
        if f"/api/{comp}" in text or name.lower().startswith(f"{comp}:"):
            return comp
    return "other"


def _status(p95: float, error_rate: float, criteria: Criteria) -> str:
    if (np.isfinite(p95) and p95 >= criteria.p95_critical_ms) or error_rate > criteria.max_error_rate:
        return "❌ Failing"
    errors_warning = min(ERROR_WARNING, criteria.max_error_rate)
    if (np.isfinite(p95) and p95 >= criteria.p95_warning_ms) or error_rate > errors_warning:
        return "⚠️ Needs attention"
    return "✅ Stable"


def _advice(p95: float, error_rate: float, limited: float, warning_ms: float) -> str:
    notes = []
    if error_rate > ERROR_WARNING:
        notes.append(f"investigate failures ({error_rate:.1%} 5xx/timeouts/connection errors)")
    if np.isfinite(p95) and p95 >= warning_ms:
        notes.append("investigate the bottleneck; cache or scale out before this load")
    if limited > 0:
        notes.append(f"{limited:.1%} rate-limited (429): limits at work, not failures")
    return "; ".join(notes) if notes else "No changes needed"


def component_table(requests: pd.DataFrame, raw_steps: pd.DataFrame, steps: pd.DataFrame, *, warmup_s: float,
                    step: int | None = None,
                    criteria: Criteria = DEFAULT_CRITERIA) -> pd.DataFrame:
    """The consolidated results table: one row per component at one step.

    Parameters
    ----------
    requests, raw_steps : DataFrame
        ``RunData.requests`` and ``RunData.steps``.
    steps : DataFrame
        The step summary of :func:`~capkit.analysis.data.steps.summarize_steps` (with ``clean``).
    warmup_s : float
        Seconds trimmed from each step.
    step : int, optional
        The step to report; default the highest clean step with users (the peak measured load).
    criteria : Criteria
        p95 thresholds of the status column.

    Returns
    -------
    DataFrame
        Component, Test scenario, Throughput, Response time (p95), Error rate, Status,
        Recommendations — plus numeric columns ``rps``, ``p95_ms``, ``error_rate``, ``rate_limited_share``.
    """
    cols = ["Component", "Test scenario", "Throughput", "Response time (p95)", "Error rate", "Status",
            "Recommendations", "rps", "p95_ms", "error_rate", "rate_limited_share"]
    if steps.empty or requests.empty:
        return pd.DataFrame(columns=cols)
    if step is None:
        candidates = steps[steps["clean"] & (steps["users"] > 0)]
        if candidates.empty:
            candidates = steps[steps["users"] > 0]
        if candidates.empty:
            return pd.DataFrame(columns=cols)
        step = int(candidates.sort_values("users")["step"].iloc[-1])
    req = request_window(requests, raw_steps, warmup_s)
    # derived measurements (TTFT, stream total, tokens/s) are not requests: counting them would
    # count a stream several times, and a token rate is no latency
    req = req[(req["step"] == step) & ~req["method"].isin(DERIVED_TYPES)]
    if req.empty:
        return pd.DataFrame(columns=cols)
    users = int(steps.loc[steps["step"] == step, "users"].iloc[0])
    seconds = max(float(steps.loc[steps["step"] == step, "seconds"].iloc[0]), 1.0)
    req = req.assign(component=[component_of(n, m) for n, m in zip(req["name"], req["method"], strict=True)])
    rows = []
    for comp in COMPONENT_LABELS:
        r = req[req["component"] == comp]
        if r.empty:
            continue
        count = int(r["count"].sum())
        p95 = merge_histograms(r["hdr"].tolist()).get_value_at_percentile(95) / 1000 if count else np.nan
        err = float(r["failures"].sum()) / count if count else 0.0
        limited = float(r["rate_limited"].sum()) / count if count else 0.0
        names = sorted(r["name"].unique())
        rows.append({
            "Component": COMPONENT_LABELS[comp],
            "Test scenario": f"{users} concurrent users · {', '.join(names[:3])}{' …' if len(names) > 3 else ''}",
            "Throughput": f"{count / seconds:.1f} req/s",
            "Response time (p95)": f"{p95:,.0f} ms" if np.isfinite(p95) else "–",
            "Error rate": f"{err:.1%}" + (f" (+{limited:.1%} 429 rate-limited)" if limited else ""),
            "Status": _status(p95, err, criteria),
            "Recommendations": _advice(p95, err, limited, criteria.p95_warning_ms),
            "rps": count / seconds, "p95_ms": p95, "error_rate": err, "rate_limited_share": limited})
    return pd.DataFrame(rows, columns=cols)


def component_endpoints(endpoints: pd.DataFrame) -> pd.DataFrame:
    """:func:`~capkit.analysis.data.steps.endpoint_table` with a ``component`` column, sorted by component."""
    if endpoints.empty:
        return endpoints
    out = endpoints.assign(component=[component_of(n, m) for n, m in
                                          zip(endpoints["name"], endpoints["method"], strict=True)])
    return out.sort_values(["component", "name", "step"]).reset_index(drop=True)

