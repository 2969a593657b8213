"""Build a results store with a long history: many runs and millions of request rows (synthetic).

Usage: python -m benchmarks.big_store URL [--runs 1000] [--rows 10000000]

The rows go in by bulk insert (SQLite ``executemany`` in large transactions, PostgreSQL
``COPY``), not through the live ingest path, so 10⁷ rows build in minutes. The schema is
capkit's own (``open_store`` creates it); every run has 5 steps, one endpoint row per second
and one resource sample per second, so a run holds ``rows / runs`` request rows.
"""

from __future__ import annotations

import argparse
import json
import time

from sqlalchemy.engine import make_url

from capkit.records.seconds import SecondAggregator
from capkit.store import open_store

START = 1.6e9  # the first run's time; runs are an hour apart
STEPS = 5
METRICS = ("cpu_cores",)


def _hdr() -> str:
    agg = SecondAggregator()
    for ms in (8.0, 9.5, 12.0, 15.0, 30.0):
        agg.record(0.5, "GET", "GET /api/x", ms, 200, 100, False)
    return agg.flush()[0]["hdr"]


def _run_rows(index: int, per_run: int, hdr: str):
    """(run row, step rows, request rows, sample rows) of synthetic run ``index``."""
    run_id = f"hist-{index:06d}"
    t0 = int(START + 3600 * index)
    spec = {"run_id": run_id, "target": "http://bench", "scenario": "reference",
            "plan": {"stages": [{"users": 10 * s, "seconds": per_run / STEPS} for s in range(STEPS)],
                     "warmup_s": 0.0}}
    run = (run_id, t0, t0 + per_run, "complete", None, "http://bench", "reference", None, json.dumps(spec), "{}")
    seconds = per_run // STEPS
    steps = [(run_id, s, 10 * s, None, float(seconds), float(t0 + s * seconds), float(t0 + (s + 1) * seconds), 1)
             for s in range(STEPS)]
    reqs, samples = [], []
    for sec in range(per_run):
        step = min(sec // max(seconds, 1), STEPS - 1)
        users = 10 * step
        reqs.append((run_id, t0 + sec, step, users, "GET", "GET /api/x", users, 0, 0, users, 0, 0, 0, 100 * users,
                     12.0 * users, 30.0, hdr))
        for m, metric in enumerate(METRICS):
            samples.append((run_id, t0 + sec + 0.5, "service", metric, 1.0 + m + 0.01 * users))
    return run, steps, reqs, samples


REQ_COLS = ("run_id, ts, step, users, method, name, count, failures, rate_limited, status_2xx, status_4xx, "
            "status_5xx, status_other, bytes, latency_sum_ms, latency_max_ms, hdr")
RUN_COLS = "run_id, created_at, ended_at, status, reason, target, scenario, git_sha, spec, machine"
STEP_COLS = "run_id, step, users, rate, planned_s, started_at, ended_at, complete"
SAMPLE_COLS = "run_id, ts, source, metric, value"


def build(url: str, runs: int, rows: int, say=print) -> float:
    """Fill the store at ``url`` (created if needed, must hold no runs); return the seconds taken."""
    store = open_store(url)
    store.engine.dispose()
    per_run = max(rows // runs, STEPS)
    hdr = _hdr()
    t0 = time.perf_counter()
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        import sqlite3

        conn = sqlite3.connect(parsed.database)
        conn.execute("PRAGMA synchronous=OFF")
        for i in range(runs):
            run, steps, reqs, samples = _run_rows(i, per_run, hdr)
            conn.execute(f"INSERT INTO runs ({RUN_COLS}) VALUES ({','.join('?' * 10)})", run)
            conn.executemany(f"INSERT INTO steps ({STEP_COLS}) VALUES ({','.join('?' * 8)})", steps)
            conn.executemany(f"INSERT INTO request_stats ({REQ_COLS}) VALUES ({','.join('?' * 17)})", reqs)
            conn.executemany(f"INSERT INTO resource_samples ({SAMPLE_COLS}) VALUES (?,?,?,?,?)", samples)
            if i % 50 == 49:
                conn.commit()
                say(f"  {i + 1} runs")
        conn.commit()
        conn.execute("ANALYZE")
        conn.close()
    else:
        import psycopg

        with psycopg.connect(parsed.set(drivername="postgresql").render_as_string(hide_password=False)) as conn:
            for i in range(runs):
                run, steps, reqs, samples = _run_rows(i, per_run, hdr)
                for table, cols, data in (("runs", RUN_COLS, [run]), ("steps", STEP_COLS, steps),
                                          ("request_stats", REQ_COLS, reqs),
                                          ("resource_samples", SAMPLE_COLS, samples)):
                    with conn.cursor().copy(f"COPY {table} ({cols}) FROM STDIN") as copy:
                        for record in data:
                            copy.write_row(record)
                if i % 50 == 49:
                    conn.commit()
                    say(f"  {i + 1} runs")
            conn.commit()
            conn.execute("ANALYZE")
    return time.perf_counter() - t0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--rows", type=int, default=10_000_000)
    args = parser.parse_args(argv)
    took = build(args.url, args.runs, args.rows)
    print(f"built {args.runs} runs, {args.rows:,} request rows in {took:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

