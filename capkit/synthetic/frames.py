"""The fast in-memory path of a synthetic run: the frames the analysis consumes, without a store.

Coverage tests draw hundreds of runs; writing each through the ingest path takes about a second.
:func:`synthetic_frames` takes the same per-step draws as the store path
(:func:`capkit.synthetic.draws.draw_step` on the same per-step streams), so for one seed the
resource seconds are the very values the store path writes, and the step table is what
:func:`capkit.analysis.data.steps.summarize_steps` computes from them (percentiles by the histogram's rank
rule, without its bucket rounding).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from capkit.records.histograms import rank_percentiles
from capkit.schemas import StagePlan
from capkit.synthetic import SyntheticTruth, is_cold, step_streams, true_values
from capkit.synthetic.draws import draw_step


@dataclass
class SyntheticFrames:
    """``per_second``: ts, step, users and one column per metric, warm-up trimmed (the shape of
    :func:`capkit.analysis.data.resources.resource_frame`); ``steps``: step, users, started_at, rps,
    requests, mean_ms, sd_ms, p50_ms, p95_ms, p99_ms, clean (one row per step, the idle step included)."""

    per_second: pd.DataFrame
    steps: pd.DataFrame


def synthetic_frames(plan: StagePlan, truth: SyntheticTruth, *, seed: int = 0, start: float = 1.7e9,
                     requests_cap: int = 400) -> SyntheticFrames:
    """Per-second resources and the step table of the run ``write_synthetic_run`` would store."""
    warmup = float(plan.warmup_s)
    seconds_rows, step_rows = [], []
    t = start
    for index, (stage, rng) in enumerate(zip(plan.stages, step_streams(seed, len(plan.stages)), strict=True)):
        seconds = int(stage.seconds)
        draws = draw_step(rng, truth, stage.users, t, seconds, requests_cap)
        ts = int(t) + np.arange(seconds) + 0.5
        keep = (ts >= t + warmup) & (ts <= t + stage.seconds)
        frame = {"ts": ts[keep], "step": index, "users": stage.users}
        for metric in truth.baseline:
            values = truth.observed(metric, true_values(truth, metric, stage.users, t - start, seconds,
                                                        is_cold(plan, index)) + draws.noise[metric])
            frame[metric] = values[keep]
        seconds_rows.append(pd.DataFrame(frame))
        lo, hi = t + warmup, t + stage.seconds
        inside = (draws.times >= np.ceil(lo)) & (draws.times < hi)
        lat = draws.latencies_ms[inside]
        window = max(np.floor(hi) - np.ceil(lo), 0.0)
        step_rows.append({"step": index, "users": stage.users, "started_at": t,
                          "rps": len(lat) / window if window else np.nan,
                          "requests": len(lat), "mean_ms": float(lat.mean()) if len(lat) else np.nan,
                          "sd_ms": float(lat.std()) if len(lat) else np.nan,
                          **{f"p{q}_ms": v for q, v in rank_percentiles(lat).items()}, "clean": True})
        t += stage.seconds
    return SyntheticFrames(pd.concat(seconds_rows, ignore_index=True), pd.DataFrame(step_rows))
