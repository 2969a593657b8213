"""Per-endpoint cost, measured: bytes per request of each endpoint (from the request rows), CPU ms
per request and memory per session of its request class (from the per-class demands of
:mod:`capkit.analysis.answer.whatif`), the planning document's per-endpoint detail section."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from capkit.analysis.data.read import RunData
from capkit.analysis.data.steps import request_window, summarize_steps
from capkit.analysis.fits.demands import DemandFit
from capkit.schemas import REFERENCE_CLASSES, Interval, NotMeasured

__all__ = ["endpoint_bytes", "endpoint_costs"]

# a streamed response's bytes arrive after Locust has timed its headers: the stream's own row has them
STREAMED_BYTES = {"POST /api/chat/stream": "chat: stream total"}


def endpoint_bytes(run: RunData, level: float = 0.95) -> dict[str, Interval]:
    """Bytes per response of each endpoint over the clean steps: the ratio of sums, its interval from
    the spread of the per-step ratios (t on steps − 1; one step: no interval)."""
    steps = summarize_steps(run.steps, run.requests, run.samples, warmup_s=run.warmup_s,
                            max_error_rate=run.meta.spec.criteria.max_error_rate)
    if steps.empty:
        return {}
    req = request_window(run.requests, run.steps, run.warmup_s)
    req = req[req["step"].isin(steps.loc[steps["clean"], "step"])] if not req.empty else req
    out = {}
    for name, r in (req.groupby("name") if not req.empty else []):
        per_step = r.groupby("step")[["bytes", "count"]].sum()
        per_step = per_step[per_step["count"] > 0]
        if per_step.empty:
            continue
        est = float(per_step["bytes"].sum() / per_step["count"].sum())
        ratios = (per_step["bytes"] / per_step["count"]).to_numpy(float)
        k = len(ratios)
        half = (float(stats.t.ppf(0.5 + level / 2, k - 1)) * ratios.std(ddof=1) / math.sqrt(k)) if k > 1 else math.inf
        out[name] = Interval(est, max(est - half, 0.0), est + half, level)
    return out


def _class_of(name: str) -> str | None:
    return next((c for c, names in REFERENCE_CLASSES.items() if name in names), None)


def endpoint_costs(run: RunData, model) -> pd.DataFrame:
    """One row per endpoint of a request class: its class, bytes per request (measured), CPU ms per
    request and MiB per session of its class (fitted; "not identifiable (…)" when the run's mix
    did not vary, "not measured (…)" without a model). Endpoints of one class move together in
    every design, so their CPU is the class's per request, not told apart."""
    sizes = endpoint_bytes(run)
    cpu = mem = NotMeasured(str(model.reason)) if isinstance(model, NotMeasured) else None
    if not isinstance(model, NotMeasured):
        cpu, mem = model.fits.get("cpu_cores", NotMeasured("no CPU samples")), model.fits.get(
            "rss_mib", NotMeasured("no memory samples"))
    rows = []
    for name, size in sorted(sizes.items()):
        cls = _class_of(name)
        if cls is None:
            continue
        if isinstance(cpu, DemandFit) and cls in cpu.demands:
            d = cpu.demands[cls]
            cpu_text = f"{1000 * d.estimate:.3g} ({1000 * d.low:.3g}–{1000 * d.high:.3g})"
        else:
            cpu_text = str(cpu) if cpu is not None else "not measured (class not in the fit)"
        if isinstance(mem, DemandFit) and cls in mem.demands:
            m = mem.demands[cls]
            mem_text = f"{m} per {'WebSocket connection' if cls == 'ws' else 'session'}"
        else:
            mem_text = str(mem) if mem is not None else "not measured (class not in the fit)"
        if size.estimate == 0 and STREAMED_BYTES.get(name) in sizes:
            size = sizes[STREAMED_BYTES[name]]
        if size.estimate == 0:
            bytes_text = "not measured (a streamed or WebSocket answer: its bytes are not recorded)"
        elif np.isfinite(size.high):
            bytes_text = f"{size.estimate:,.0f} ({size.low:,.0f}–{size.high:,.0f})"
        else:
            bytes_text = f"{size.estimate:,.0f} (one step: no interval)"
        rows.append({"Endpoint": name, "Class": cls, "Bytes per request (measured)": bytes_text,
                     "CPU ms per request (class, fitted)": cpu_text, "MiB per open session (class, fitted)": mem_text})
    return pd.DataFrame(rows, columns=["Endpoint", "Class", "Bytes per request (measured)",
                                       "CPU ms per request (class, fitted)", "MiB per open session (class, fitted)"])
