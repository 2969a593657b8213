"""Per-step summaries with warm-up trimmed, quality flags, and per-second resource samples."""

from __future__ import annotations

import numpy as np
import pandas as pd

from capkit.analysis.data.quantiles import decoded, percentile_interval
from capkit.records.histograms import moments, new_histogram
from capkit.schemas import DEFAULT_CRITERIA

SERVICE_METRICS = ("cpu_cores", "rss_mib", "db_connections", "network_kbps", "threads", "fds")
# pod-like limits (a cgroup's quota and memory limit): what they did, per step; NaN without limits
LIMIT_METRICS = ("cpu_throttled_share", "cpu_throttled_s_per_s", "cgroup_memory_mib")

# quality gates (DESIGN, measurement rules)
GENERATOR_SATURATED_CORES = 0.90
USERS_REACHED_SHARE = 0.95
RATE_LIMITED_SHARE = 0.10  # a step whose 429 share is above this measures the rate limit
MIN_RESOURCE_COVERAGE = 0.5  # resource samples per second of the step's window, below which it is flagged
RATE_REACHED_SHARE = 0.95
# request_type of derived measurements (time to first token, stream total, tokens/s): shown per
# endpoint but left out of a step's request totals, which would otherwise count a stream 4 times
DERIVED_TYPES = ("STREAM",)  # also capkit.runs.progress: the live line leaves them out too


SETTLE_ROLL_S = 3  # the per-second mean latency is judged over this many seconds
SETTLE_MIN_S = 8  # a step with fewer counted seconds is too short to tell settling from noise
SETTLE_CHANGE = 0.05  # a step whose load differs less than this from the step before has nothing to settle
SETTLE_BAND = 0.20  # the settled range is at least ± this share of the second half's median


def _settle(steps: pd.DataFrame) -> pd.Series:
    """Seconds each step waits beyond its warm-up for its latency to settle (:func:`with_settling`;
    0 where it was not computed)."""
    if "settle_s" not in steps:
        return pd.Series(0.0, index=steps.index)
    return steps["settle_s"].fillna(0.0).astype(float)


def _settle_of(step) -> float:
    """:func:`_settle` of one step (a row)."""
    value = step.get("settle_s", 0.0)
    return float(value) if pd.notna(value) else 0.0


def _window(steps: pd.DataFrame, warmup_s: float) -> pd.DataFrame:
    w = steps.copy()
    end = w["ended_at"].fillna(w["started_at"] + w["planned_s"])
    w["from_ts"] = w["started_at"] + warmup_s + _settle(w)
    w["to_ts"] = end
    return w


def with_settling(steps: pd.DataFrame, requests: pd.DataFrame, warmup_s: float) -> pd.DataFrame:
    """``steps`` with ``settle_s``: the seconds after a loaded step's warm-up until its latency has
    settled into the step's own range — after a heavier step, its backlog drains into this one;
    after a lighter one (or the idle step), a queue near saturation builds up for longer than a
    fixed warm-up.

    During the reference service's search, the live p95 of a 101-user step right after a 141-user
    step read 1,583, then 634, then 823 ms; a confirming grid's ascending pass read p95 657 ms at 80
    users where its descending pass read 299. A step counts from the first second at which the mean
    latency over :data:`SETTLE_ROLL_S` seconds is within the range of the step's second half (its
    median ± three robust standard deviations of a rolling mean, or ± :data:`SETTLE_BAND`, whichever
    is more: near saturation a second's mean latency moves by 10 % without any trend), and never
    later than the middle of its window; a step at the load of the one before (a repeat) keeps its
    warm-up alone."""
    out = steps.copy()
    out["settle_s"] = 0.0
    if steps.empty or requests is None or requests.empty:
        return out
    req = requests[~requests["method"].isin(DERIVED_TYPES)] if "method" in requests else requests
    per_second = req.groupby(["step", "ts"])[["latency_sum_ms", "count"]].sum()
    seen = set(per_second.index.get_level_values(0))
    previous = 0.0
    for idx, st in out.sort_values("step").iterrows():
        rate = st.get("rate")
        load = float(rate) if rate is not None and pd.notna(rate) else float(st["users"])
        # the same load again (a repeat) has nothing to drain or build up
        if st["users"] > 0 and st["step"] in seen and abs(load - previous) > SETTLE_CHANGE * max(load, previous):
            out.loc[idx, "settle_s"] = _settle_seconds(per_second.loc[st["step"]], float(st["started_at"]) + warmup_s)
        previous = load
    return out


def _settle_seconds(rows: pd.DataFrame, start: float) -> float:
    rows = rows[(rows.index >= np.ceil(start)) & (rows["count"] > 0)].sort_index()
    if len(rows) < SETTLE_MIN_S:
        return 0.0
    mean = (rows["latency_sum_ms"] / rows["count"]).to_numpy(float)
    roll = np.convolve(mean, np.ones(SETTLE_ROLL_S) / SETTLE_ROLL_S, mode="valid")  # roll[j]: seconds j..j+2
    tail = roll[len(roll) // 2:]
    centre = float(np.median(tail))
    spread = 1.4826 * float(np.median(np.abs(tail - centre)))
    upper = centre + max(3 * spread, SETTLE_BAND * centre)
    settled = np.flatnonzero(np.abs(roll - centre) <= upper - centre)
    j = int(settled[0]) if len(settled) else 0
    j = min(j, len(mean) // 2)
    return float(rows.index[j] - np.ceil(start)) if j > 0 else 0.0


def assign_steps(frame: pd.DataFrame, steps: pd.DataFrame, warmup_s: float, ts_col: str = "ts") -> pd.DataFrame:
    """Rows of ``frame`` inside a step's trimmed window, with ``step`` and ``users`` added."""
    if frame.empty or steps.empty:
        return frame.assign(step=pd.Series(dtype="int64"), users=pd.Series(dtype="int64")).iloc[0:0]
    w = _window(steps, warmup_s).sort_values("from_ts")
    frame = frame.drop(columns=[c for c in ("step", "users") if c in frame.columns]).sort_values(ts_col)
    merged = pd.merge_asof(frame, w[["step", "users", "from_ts", "to_ts"]], left_on=ts_col, right_on="from_ts",
                           direction="backward")
    keep = merged["step"].notna() & (merged[ts_col] <= merged["to_ts"])
    out = merged[keep].drop(columns=["from_ts", "to_ts"])
    out["step"] = out["step"].astype("int64")
    out["users"] = out["users"].astype("int64")
    return out


def per_second_resources(samples: pd.DataFrame, steps: pd.DataFrame, warmup_s: float,
                         source: str = "service") -> pd.DataFrame:
    """Wide table: one row per sample second inside a trimmed step, a column per metric."""
    s = samples[samples["source"] == source]
    if s.empty:
        return pd.DataFrame(columns=["ts", "step", "users"])
    wide = s.pivot_table(index="ts", columns="metric", values="value", aggfunc="mean").reset_index()
    wide.columns.name = None
    return assign_steps(wide, steps, warmup_s)


def _whole_seconds(st, warmup_s: float, trimmed: bool = False) -> float:
    """Whole seconds of a step's trimmed window: the denominator of its rates."""
    if trimmed:
        lo, hi = st["from_ts"], st["to_ts"]
    else:
        if pd.isna(st["ended_at"]):
            return 0.0
        lo, hi = st["started_at"] + warmup_s + _settle_of(st), st["ended_at"]
    return float(max(np.floor(hi) - np.ceil(lo), 0))


def _percentiles(rows: pd.DataFrame, level: float | None = None) -> dict:
    """p50, p95, p99 and the standard deviation (``sd_ms``: a step mean's sampling noise) of the
    merged histograms of request rows (``ts``, ``hdr``); with ``level``, also the p95's interval
    (``p95_low_ms``, ``p95_high_ms``: :func:`~capkit.analysis.data.quantiles.percentile_interval`)."""
    interval = {"p95_low_ms": np.nan, "p95_high_ms": np.nan} if level is not None else {}
    if rows.empty:
        return {"p50_ms": np.nan, "p95_ms": np.nan, "p99_ms": np.nan, "sd_ms": np.nan, **interval}
    histograms = decoded(rows)
    merged = new_histogram()
    for _, h in histograms:
        merged.add(h)
    values = merged.get_percentile_to_value_dict([50, 95, 99])  # one pass, not three
    if level is not None:
        interval["p95_low_ms"], interval["p95_high_ms"] = percentile_interval(histograms, 95.0, level=level)
    return {**{f"p{q}_ms": values[q] / 1000 for q in (50, 95, 99)}, "sd_ms": moments(merged)[1] / 1000, **interval}


def step_windows(steps: pd.DataFrame, warmup_s: float) -> pd.DataFrame:
    """The steps with their trimmed window ``[from_ts, to_ts]`` (warm-up cut from the start)."""
    return _window(steps, warmup_s)


def window_seconds(step_window) -> float:
    """Whole seconds of one row of :func:`step_windows`: the denominator of the step's rates."""
    return _whole_seconds(step_window, 0.0, trimmed=True)


def request_window(requests: pd.DataFrame, steps: pd.DataFrame, warmup_s: float) -> pd.DataFrame:
    """Request rows inside each step's trimmed window (a second counts when it starts there)."""
    if requests.empty:
        return requests
    r = requests.copy()
    w = _window(steps, warmup_s).set_index("step")
    # a row's second [ts, ts+1) must lie wholly inside [from_ts, to_ts]
    lo = r["step"].map(w["from_ts"])
    hi = r["step"].map(w["to_ts"])
    return r[(r["ts"] >= np.ceil(lo)) & (r["ts"] + 1 <= np.floor(hi))]


def summarize_steps(steps: pd.DataFrame, requests: pd.DataFrame, samples: pd.DataFrame, *,
                    warmup_s: float, corrected: pd.DataFrame | None = None,
                    max_error_rate: float = DEFAULT_CRITERIA.max_error_rate,
                    level: float = DEFAULT_CRITERIA.level) -> pd.DataFrame:
    """One row per step: load, throughput, latency percentiles (exact, merged HDR), resources,
    quality flags (``errors`` above ``max_error_rate``, the run's criteria) and ``clean`` (used by
    the fits); with ``corrected`` (the ``request_corrected``
    rows) also ``corrected_p50_ms`` / ``_p95_ms`` / ``_p99_ms``, the latency from each request's
    intended start in arrival-rate steps (NaN elsewhere)."""
    if steps.empty:
        return pd.DataFrame()
    req = request_window(requests, steps, warmup_s)
    if not req.empty:
        req = req[~req["method"].isin(DERIVED_TYPES)]
    res = per_second_resources(samples, steps, warmup_s)
    gen = per_second_resources(samples, steps, warmup_s, source="generator")
    machine = per_second_resources(samples, steps, warmup_s, source="machine")
    rows = []
    for _, st in steps.sort_values("step").iterrows():
        r = req[req["step"] == st["step"]] if not req.empty else req
        count = int(r["count"].sum()) if not r.empty else 0
        failures = int(r["failures"].sum()) if not r.empty else 0
        limited = int(r["rate_limited"].sum()) if not r.empty else 0
        window = _whole_seconds(st, warmup_s)
        row = {
            "step": int(st["step"]), "users": int(st["users"]), "complete": bool(st["complete"]),
            "seconds": window, "settle_s": _settle_of(st), "requests": count,
            # throughput the service served: 429s are a rate limit's answer, not the service's work
            "rps": (count - limited) / window if window > 0 else np.nan,
            "failures": failures, "rate_limited": limited,
            "error_rate": failures / count if count else 0.0,
            "rate_limited_share": limited / count if count else 0.0,
            "mean_ms": float(r["latency_sum_ms"].sum() / count) if count else np.nan,
            **_percentiles(r[["ts", "hdr"]] if count else r.iloc[0:0], level),
            "bytes_per_s": float(r["bytes"].sum() / window) if count and window > 0 else 0.0,
        }
        sr = res[res["step"] == st["step"]] if not res.empty else res
        for metric in SERVICE_METRICS + LIMIT_METRICS:
            row[metric] = float(sr[metric].mean()) if metric in sr and sr[metric].notna().any() else np.nan
        gr = gen[gen["step"] == st["step"]] if not gen.empty else gen
        # per Locust process (each saturates at one core); older runs only have the tree's total
        gen_col = "cpu_max_process" if "cpu_max_process" in gr else "cpu_cores"
        row["generator_cpu"] = float(gr[gen_col].max()) if gen_col in gr and len(gr) else np.nan
        row["generator_total_cpu"] = float(gr["cpu_cores"].mean()) if "cpu_cores" in gr and len(gr) else np.nan
        # CPU it ran + waited for: saturation shows on shared cores too, where its CPU stays lower
        demand = "cpu_demand_max_process"
        row["generator_demand"] = float(gr[demand].max()) if demand in gr and len(gr) else np.nan
        row["ws_connections"] = float(gr["ws_connections"].mean()) if "ws_connections" in gr and len(gr) else np.nan
        row.update(_machine(machine, st["step"], row))
        rate = st.get("rate")
        row["rate"] = float(rate) if rate is not None and pd.notna(rate) else np.nan
        row["dropped"] = float(gr["dropped"].fillna(0).sum()) if "dropped" in gr and len(gr) else 0.0
        row["users_reached"] = _users_reached(requests, st, warmup_s) if st["users"] > 0 else True
        row["workers_lost"] = _workers_lost(samples, st)
        row["replicas_lost"] = _replicas_lost(samples, st)
        row["resource_coverage"] = (len(sr) / window if window > 0 and len(res) else np.nan)
        row["generator_samples"] = len(gr)
        row["rate_reached"] = (bool(row["rps"] >= RATE_REACHED_SHARE * row["rate"])
                               if pd.notna(row["rate"]) and pd.notna(row["rps"]) else pd.isna(row["rate"]))
        rows.append(row)
    out = pd.DataFrame(rows)
    out = _with_corrected(out, steps, corrected, warmup_s)
    # a run whose generator was sampled in some steps but not in this one: its saturation is unknown
    out["generator_expected"] = bool((out["generator_samples"] > 0).any())
    out["flags"] = out.apply(_flags, axis=1, max_error_rate=max_error_rate)
    out["clean"] = out["flags"] == ""
    return out


MACHINE_METRICS = ("machine_busy_cores", "machine_steal_cores", "cpu_mhz")


def _machine(machine: pd.DataFrame, step, row: dict) -> dict:
    """The machine around a step (:class:`~capkit.metrics.machine.MachineSampler`): steal (cores),
    the mean clock (MHz) and ``other_cpu_cores`` — the machine's busy cores less the service's and
    the load generator's, what else ran beside them. NaN where it was not sampled."""
    m = machine[machine["step"] == step] if not machine.empty else machine
    out = {metric: float(m[metric].mean()) if metric in m and m[metric].notna().any() else np.nan
           for metric in MACHINE_METRICS}
    mine = row.get("cpu_cores", np.nan)
    out["other_cpu_cores"] = (max(out["machine_busy_cores"] - mine - _generator_cores(row), 0.0)
                              if np.isfinite(out["machine_busy_cores"]) and np.isfinite(mine) else np.nan)
    return out


def _generator_cores(row: dict) -> float:
    value = row.get("generator_total_cpu", np.nan)
    return float(value) if np.isfinite(value) else 0.0


def _with_corrected(out: pd.DataFrame, steps: pd.DataFrame, corrected, warmup_s: float) -> pd.DataFrame:
    cols = ["corrected_p50_ms", "corrected_p95_ms", "corrected_p99_ms"]
    if corrected is None or corrected.empty:
        return out.assign(**{c: np.nan for c in cols})
    win = request_window(corrected, steps, warmup_s)
    win = win[~win["method"].isin(DERIVED_TYPES)]
    values = {int(step): _percentiles(r) for step, r in win.groupby("step")}
    for q, col in zip((50, 95, 99), cols, strict=True):
        out[col] = out["step"].map(lambda s, q=q: values.get(int(s), {}).get(f"p{q}_ms", np.nan))
    return out


def _users_reached(requests: pd.DataFrame, st, warmup_s: float) -> bool:
    r = requests[(requests["step"] == st["step"]) & (requests["ts"] >= st["started_at"] + warmup_s)]
    if r.empty:
        return False
    return bool(r["users"].max() >= USERS_REACHED_SHARE * st["users"])


def _workers_lost(samples: pd.DataFrame, st) -> int:
    """Load workers gone during the step (whole window, warm-up included): the most the run had
    up to the step's end minus the fewest in it; 0 without the master's ``workers`` meter.

    A tick ``ts`` is sampled at ``ts + 1``; ticks sampled in the step's last half second are left
    out, so the workers leaving at the plan's end are no loss."""
    w = samples[(samples["source"] == "generator") & (samples["metric"] == "workers")] if len(samples) else samples
    if w.empty:
        return 0
    end = st["ended_at"] if pd.notna(st["ended_at"]) else st["started_at"] + st["planned_s"]
    sampled = w["ts"] + 1.0
    before_end = sampled <= end - 0.5
    during = w[(sampled >= st["started_at"]) & before_end]
    if during.empty:
        return 0
    return int(max(w.loc[before_end, "value"].max() - during["value"].min(), 0))


def _replicas_lost(samples: pd.DataFrame, st) -> int:
    """Replicas of a fleet gone by the step's end: the most the run had up to then minus the
    fewest in the step (so every step after a loss is flagged: the fleet is not the one asked
    for); 0 without the ``replicas_alive`` meter (one service)."""
    if not len(samples):
        return 0
    r = samples[(samples["source"] == "service") & (samples["metric"] == "replicas_alive")]
    if r.empty:
        return 0
    end = st["ended_at"] if pd.notna(st["ended_at"]) else st["started_at"] + st["planned_s"]
    before_end = r["ts"] <= end
    during = r[(r["ts"] >= st["started_at"]) & before_end]
    if during.empty:
        return 0
    return int(max(r.loc[before_end, "value"].max() - during["value"].min(), 0))


def _flags(row, max_error_rate: float) -> str:
    flags = []
    if not row["complete"]:
        flags.append("incomplete")
    if row["users"] > 0 and row["requests"] == 0:
        flags.append("no_requests")
    generator = np.nanmax([row["generator_cpu"], row.get("generator_demand", np.nan), -1.0])
    if generator >= GENERATOR_SATURATED_CORES:
        flags.append("generator_saturated")
    if not row["users_reached"]:
        flags.append("users_not_reached")
    if not row["rate_reached"]:
        flags.append("rate_not_reached")
    if row["error_rate"] > max_error_rate:
        flags.append("errors")
    if row.get("workers_lost", 0) > 0:
        flags.append("workers_lost")
    if row.get("replicas_lost", 0) > 0:
        flags.append("replicas_lost")
    if row["users"] > 0 and row.get("rate_limited_share", 0.0) > RATE_LIMITED_SHARE:
        flags.append("rate_limited")  # its throughput and latency are a rate limiter's, not the service's
    coverage = row.get("resource_coverage", np.nan)
    if row["users"] > 0 and np.isfinite(coverage) and coverage < MIN_RESOURCE_COVERAGE:
        flags.append("resources_missing")
    if row["users"] > 0 and row.get("generator_expected", False) and row.get("generator_samples", 0) == 0:
        flags.append("generator_not_measured")
    return ",".join(flags)


def endpoint_table(requests: pd.DataFrame, steps: pd.DataFrame, *, warmup_s: float) -> pd.DataFrame:
    """Per step and endpoint: requests, req/s, failures, 429s, p50/p95/p99 (exact)."""
    req = request_window(requests, steps, warmup_s)
    if req.empty:
        return pd.DataFrame()
    win = _window(steps, warmup_s).set_index("step")
    rows = []
    for (step, method, name), r in req.groupby(["step", "method", "name"]):
        seconds = max(_whole_seconds(win.loc[step], 0.0, trimmed=True), 1)
        count = int(r["count"].sum())
        rows.append({"step": step, "users": int(win.loc[step, "users"]), "method": method, "name": name,
                     "requests": count, "rps": count / seconds, "failures": int(r["failures"].sum()),
                     "rate_limited": int(r["rate_limited"].sum()),
                     "error_rate": float(r["failures"].sum()) / count if count else 0.0,
                     **_percentiles(r)})
    return pd.DataFrame(rows)
