"""Import an existing Locust CSV output (``--csv PREFIX --csv-full-history``) as a capkit run.

Locust's ``PREFIX_stats_history.csv`` has one row per second and endpoint with cumulative
counts and *recent* percentiles (Locust's ~10 s window), never histograms. So per second:
counts, failures, bytes and the latency sum are exact (differences of the cumulative columns);
the latency distribution is rebuilt from the percentile columns into an HDR histogram, which
the analysis merges as usual — step percentiles of an imported run are approximations.
Locust does not keep status codes: failures are stored as ``status_other`` and 429s cannot be
told apart. Steps are inferred from the user count.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

from capkit.errors import ConfigError
from capkit.records.histograms import clamp_us, new_histogram

REQUIRED = ("Timestamp", "User Count", "Type", "Name", "Requests/s", "Failures/s", "Total Request Count",
            "Total Failure Count", "Total Average Response Time", "Total Max Response Time",
            "Total Average Content Size")
PERCENTILE = re.compile(r"^(\d+(?:\.\d+)?)%$")


@dataclass
class ImportedRun:
    """What an import will write: steps and per-second request rows, checked and complete."""

    source: Path
    steps: list[dict]
    rows: list[dict]
    warmup_s: float

    @property
    def requests(self) -> int:
        return sum(r["count"] for r in self.rows)


def history_path(prefix: str | Path) -> Path:
    prefix = str(prefix)
    return Path(prefix if prefix.endswith("_stats_history.csv") else prefix + "_stats_history.csv")


def read_locust_history(prefix: str | Path, *, min_step_s: float = 3.0, warmup_s: float = 2.0) -> ImportedRun:
    """Read and check ``PREFIX_stats_history.csv``; raise :class:`ConfigError` (one line) when it
    is missing, foreign, truncated, or written without ``--csv-full-history``."""
    path = history_path(prefix)
    if not path.is_file():
        raise ConfigError(f"{path} does not exist; give the PREFIX passed to locust --csv PREFIX --csv-full-history")
    text = path.read_text(encoding="utf-8", errors="replace")
    if not text.strip():
        raise ConfigError(f"{path} is empty")
    if not text.endswith("\n"):
        raise ConfigError(f"{path} is truncated (its last line is incomplete); import a finished run")
    lines = list(csv.reader(text.splitlines()))
    if not lines or not lines[0]:
        raise ConfigError(f"{path} is empty")
    header = lines[0]
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise ConfigError(f"{path} is not a Locust stats history CSV (missing columns: {', '.join(missing)})")
    col = {name: i for i, name in enumerate(header)}
    pcts = [(float(m.group(1)) / 100, i) for i, name in enumerate(header) if (m := PERCENTILE.match(name))]
    records = []
    for n, fields in enumerate(lines[1:], start=2):
        if len(fields) != len(header):
            raise ConfigError(f"{path} line {n} has {len(fields)} fields, the header {len(header)}: "
                              f"truncated or not Locust's")
        try:
            records.append(_record(fields, col, pcts))
        except ValueError as exc:
            raise ConfigError(f"{path} line {n}: {exc}") from None
    endpoints = [r for r in records if r["name"] != "Aggregated"]
    if not endpoints:
        raise ConfigError(f"{path} has no per-endpoint rows: rerun Locust with --csv-full-history")
    if any(b["ts"] < a["ts"] for a, b in zip(records, records[1:], strict=False)):
        raise ConfigError(f"{path} has timestamps going backwards: not one Locust run")
    steps = infer_steps([(r["ts"], r["users"]) for r in records if r["name"] == "Aggregated"], min_step_s)
    if not steps:
        raise ConfigError(f"{path} holds no second with users running")
    warmup_s = min(warmup_s, min(s["planned_s"] for s in steps) / 2)
    return ImportedRun(path, steps, _per_second(endpoints, steps), warmup_s)


def _record(fields: list[str], col: dict, pcts: list) -> dict:
    num = lambda name: float(fields[col[name]] or 0)  # noqa: E731
    percentiles = []
    for q, i in pcts:
        if fields[i] not in ("N/A", ""):
            percentiles.append((q, float(fields[i])))
    return {"ts": int(num("Timestamp")), "users": int(num("User Count")), "method": fields[col["Type"]] or "",
            "name": fields[col["Name"]], "total": int(num("Total Request Count")),
            "failures": int(num("Total Failure Count")), "avg_ms": num("Total Average Response Time"),
            "max_ms": num("Total Max Response Time"), "avg_bytes": num("Total Average Content Size"),
            "percentiles": percentiles}


def infer_steps(users_by_ts: list[tuple[int, int]], min_step_s: float) -> list[dict]:
    """Steps as runs of a constant user count; shorter runs (ramps) join the next step.
    Trailing seconds with 0 users are dropped; a leading idle run long enough is step 0."""
    runs: list[list] = []  # [users, first_ts, last_ts]
    for ts, users in sorted(users_by_ts):
        if runs and runs[-1][0] == users:
            runs[-1][2] = ts
        else:
            runs.append([users, ts, ts])
    while runs and runs[-1][0] == 0:
        runs.pop()
    merged: list[list] = []
    pending_start = None
    for users, first, last in runs:
        start = first if pending_start is None else pending_start
        if last - first + 1 < min_step_s:
            pending_start = start  # a ramp second: it belongs to the step it leads to
            continue
        pending_start = None
        merged.append([users, start, last])
    steps = []
    for i, (users, start, last) in enumerate(merged):
        end = merged[i + 1][1] if i + 1 < len(merged) else last + 1
        steps.append({"step": i, "users": users, "started_at": float(start), "ended_at": float(end),
                      "planned_s": float(end - start)})
    return [s for s in steps if s["users"] > 0 or s["step"] == 0]


def _per_second(endpoints: list[dict], steps: list[dict]) -> list[dict]:
    prev: dict[tuple[str, str], dict] = {}
    out: dict[tuple[int, str, str], dict] = {}
    for rec in endpoints:
        key = (rec["method"], rec["name"])
        before = prev.get(key)
        prev[key] = rec
        count = rec["total"] - (before["total"] if before else 0)
        if count <= 0:
            continue
        step = _step_at(steps, rec["ts"])
        fails = max(rec["failures"] - (before["failures"] if before else 0), 0)
        lat_sum = rec["avg_ms"] * rec["total"] - (before["avg_ms"] * before["total"] if before else 0)
        nbytes = rec["avg_bytes"] * rec["total"] - (before["avg_bytes"] * before["total"] if before else 0)
        row = out.setdefault((rec["ts"], *key), {"ts": rec["ts"], "step": step["step"], "users": rec["users"],
                                                 "method": key[0], "name": key[1], "count": 0, "failures": 0,
                                                 "rate_limited": 0, "status_2xx": 0, "status_4xx": 0,
                                                 "status_5xx": 0, "status_other": 0, "bytes": 0,
                                                 "latency_sum_ms": 0.0, "latency_max_ms": 0.0, "_values": []})
        row["count"] += count
        row["failures"] += fails
        row["status_other"] += fails
        row["status_2xx"] += count - fails
        row["bytes"] += max(int(round(nbytes)), 0)
        row["latency_sum_ms"] += max(lat_sum, 0.0)
        row["_values"] += _spread(rec["percentiles"], count, rec["avg_ms"])
    rows = []
    for row in out.values():
        values = row.pop("_values")
        hist = new_histogram()
        for v in values:
            hist.record_value(clamp_us(v))
        row["latency_max_ms"] = max(values) if values else 0.0
        row["latency_sum_ms"] = round(row["latency_sum_ms"], 3)
        row["hdr"] = hist.encode().decode("ascii")
        rows.append(row)
    return sorted(rows, key=lambda r: (r["ts"], r["method"], r["name"]))


def _spread(percentiles: list[tuple[float, float]], count: int, fallback_ms: float) -> list[float]:
    """``count`` latencies laid out along Locust's percentile points (a step quantile function)."""
    if not percentiles:
        return [fallback_ms] * count
    points = sorted(percentiles)
    out = []
    for k in range(count):
        u = (k + 0.5) / count
        out.append(next((v for q, v in points if q >= u), points[-1][1]))
    return out


def _step_at(steps: list[dict], ts: int) -> dict:
    """The step a second belongs to; seconds after the last step (users stopping) join it."""
    for step in reversed(steps):
        if ts >= step["started_at"]:
            return step
    return steps[0]


def store_imported_run(store, imported: ImportedRun, *, run_id: str, target: str | None = None) -> None:
    """Write ``imported`` as run ``run_id`` (status complete); removes the run again on failure."""
    from capkit.schemas import RunSpec, RunStatus, Stage, StagePlan

    plan = StagePlan(stages=tuple(Stage(users=s["users"], seconds=s["planned_s"]) for s in imported.steps),
                     warmup_s=imported.warmup_s)
    spec = RunSpec(run_id=run_id, target=target or f"locust-csv:{imported.source}", scenario="locust-csv",
                   plan=plan, notes={"imported_from": str(imported.source),
                                     "latency": "rebuilt from Locust's percentile columns (its ~10 s window)",
                                     "status_codes": "not in Locust's CSV: failures stored as status_other"})
    store.create_run(run_id=run_id, target=spec.target, scenario=spec.scenario,
                     spec=spec.model_dump(mode="json"), machine={"note": "imported: Locust ran elsewhere"},
                     created_at=imported.steps[0]["started_at"])
    try:
        for s in imported.steps:
            store.upsert_step(run_id, s["step"], users=s["users"], planned_s=s["planned_s"],
                              started_at=s["started_at"], ended_at=s["ended_at"], complete=True)
        store.add_request_stats(run_id, imported.rows)
        store.add_event(run_id, "imported", str(imported.source))
        store.finish_run(run_id, RunStatus.COMPLETE, None, ended_at=imported.steps[-1]["ended_at"])
    except BaseException:
        store.delete_run(run_id)
        raise
