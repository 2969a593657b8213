"""8. A big history: the store's answers with 1,000 runs and 10⁷ request rows (``--only history``).

The big stores are built once by :mod:`benchmarks.big_store` and kept (SQLite under
``benchmarks/work/``, PostgreSQL as database ``capkit_bench_history``); a build's time is a row.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import event, func, select
from sqlalchemy.engine import make_url

from benchmarks.big_store import build
from benchmarks.harness import ROOT, BenchError, median

WORK = ROOT / "benchmarks" / "work"
PG_DB = "capkit_bench_history"


def _store_urls(pg_url: str | None, runs: int, rows: int) -> list[tuple[str, str]]:
    urls = [("SQLite", f"sqlite:///{WORK / f'history-{runs}-{rows}.sqlite'}")]
    if pg_url:
        urls.append(("PostgreSQL", make_url(pg_url).set(database=PG_DB).render_as_string(hide_password=False)))
    return urls


def _ready(url: str, runs: int, rows: int) -> bool:
    """The store at ``url`` already holds exactly this history."""
    from capkit.store import open_store
    from capkit.store import tables as t

    store = open_store(url)
    try:
        with store.engine.connect() as conn:
            n_runs = conn.execute(select(func.count()).select_from(t.runs)).scalar()
            if n_runs == 0:
                return False
            n_rows = conn.execute(select(func.count()).select_from(t.request_stats)).scalar()
    finally:
        store.engine.dispose()
    if (n_runs, n_rows) != (runs, rows):
        raise BenchError(f"{url} holds {n_runs} runs / {n_rows} rows, not {runs} / {rows}: drop it to rebuild")
    return True


def _cli_seconds(args: list[str], url: str, reps: int) -> float:
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "capkit", *args, "--store", url], capture_output=True,
                              text=True, cwd=ROOT, env=dict(os.environ))
        times.append(time.perf_counter() - t0)
        if proc.returncode != 0:
            raise BenchError(f"capkit {' '.join(args)} failed: {proc.stderr.strip()[-200:]}")
    return median(times)


def _timed(call, reps: int) -> float:
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return median(times)


def _scans(store, calls) -> list[str]:
    """The statements ``calls`` send that read a whole table (SQLite SCAN without an index,
    PostgreSQL Seq Scan), by the database's own EXPLAIN of each statement with its parameters."""
    seen: list[tuple[str, object]] = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        # capkit's own reads (not pandas' look-ups in the catalogue)
        if statement.lstrip().upper().startswith("SELECT") and not any(
                c in statement for c in ("pg_catalog", "sqlite_master", "sqlite_temp_master")):
            seen.append((statement, parameters))

    event.listen(store.engine, "before_cursor_execute", capture)
    try:
        for call in calls:
            call()
    finally:
        event.remove(store.engine, "before_cursor_execute", capture)
    bad = []
    sqlite = store.engine.dialect.name == "sqlite"
    with store.engine.connect() as conn:
        raw = conn.connection.dbapi_connection
        for statement, params in seen:
            cur = raw.cursor()
            cur.execute(("EXPLAIN QUERY PLAN " if sqlite else "EXPLAIN ") + statement, params)
            plan = " | ".join(str(r[-1] if sqlite else r[0]) for r in cur.fetchall())
            cur.close()
            full = (any(part.startswith("SCAN ") and "USING" not in part for part in plan.split(" | ")) if sqlite
                    else "Seq Scan" in plan)
            if full:
                bad.append(f"{statement.split()[0:6]} → {plan}")
    return bad


def history(pg_url: str | None, runs: int = 1000, rows: int = 10_000_000, reps: int = 3) -> list[dict]:
    WORK.mkdir(parents=True, exist_ok=True)
    out = []
    for label, url in _store_urls(pg_url, runs, rows):
        out += _one_store(label, url, runs, rows, reps)
    return out + ingest_memory()


def _one_store(label: str, url: str, runs: int, rows: int, reps: int) -> list[dict]:
    from benchmarks.suite import row
    from capkit import analysis as ca
    from capkit.store import open_store
    from capkit.store.admin import create_database, drop_database

    out = []
    create_database(url)
    if not _ready(url, runs, rows):
        took = build(url, runs, rows, say=lambda m: print(m, flush=True))
        out.append(row(f"history ({label}): build {runs:,} runs, {rows:,} request rows (bulk)", took / 60,
                       "min", better="lower"))
    store = open_store(url, create=False)
    middle = f"hist-{runs // 2:06d}"
    # the same run alone in a store of its own: the anchor of the read figures
    if label == "SQLite":
        small_url = f"sqlite:///{Path(tempfile.mkdtemp(prefix='capkit-bench-hist-')) / 'one.sqlite'}"
    else:
        small_url = make_url(url).set(database=f"{PG_DB}_one").render_as_string(hide_password=False)
        drop_database(small_url)
        create_database(small_url)
    build(small_url, 1, rows // runs, say=lambda m: None)
    small = open_store(small_url, create=False)
    try:
        big_read = _timed(lambda: ca.read_run(store, middle), reps)
        small_read = _timed(lambda: ca.read_run(small, "hist-000000"), reps)
        runs_cli = _cli_seconds(["runs"], url, reps)
        runs_small = _cli_seconds(["runs"], small_url, reps)
        before = _timed(lambda: store.latest_run_id(before=middle), reps * 5)
        scans = _scans(store, [lambda: store.latest_run_id(), lambda: store.latest_run_id(before=middle),
                               lambda: ca.read_run(store, middle), lambda: ca.read_run(store, before=middle)])
    finally:
        small.engine.dispose()
        store.engine.dispose()
        if label == "PostgreSQL":
            drop_database(small_url)
    for s in scans:
        print(f"  full scan: {s}", flush=True)
    return out + [
        row(f"history ({label}): capkit runs, {runs:,} runs", runs_cli, "s", goal=1.0, better="lower"),
        row(f"history ({label}): capkit runs, {runs:,} runs vs 1 run", runs_cli, "s", "1-run store",
            runs_small, better="lower"),
        row(f"history ({label}): read one run (what report/check read) among {rows:,} rows", big_read, "s",
            "the same run alone in a store", small_read, goal=1.25, better="lower"),
        row(f"history ({label}): latest run before X (check's default baseline)", before * 1000, "ms",
            goal=50.0, better="lower"),
        row(f"history ({label}): report/check/latest queries that scan a whole table (EXPLAIN)",
            float(len(scans)), "queries", goal=0.0, better="lower"),
    ]


if __name__ == "__main__":
    for r in history(os.environ.get("CAPKIT_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test"),
                     runs=int(sys.argv[1]) if len(sys.argv) > 1 else 1000,
                     rows=int(sys.argv[2]) if len(sys.argv) > 2 else 10_000_000):
        print(r["figure"], r["value"], r["unit"], r["anchor_value"], r["met"])



def ingest_memory(hours: float = 2.0, endpoints: int = 6) -> list[dict]:
    """The live ingest path's memory over a long run: ``hours`` of synthetic seconds (ticks,
    request rows of ``endpoints`` endpoints, resource samples) through the orchestrator's
    Ingestor into a SQLite store; RSS growth from the first 10 minutes to the end."""
    import psutil

    from benchmarks.suite import row
    from capkit.records.seconds import SecondAggregator
    from capkit.runs.ingest import Ingestor
    from capkit.store import open_store

    store = open_store(f"sqlite:///{Path(tempfile.mkdtemp(prefix='capkit-bench-ingest-')) / 's.sqlite'}")
    store.create_run(run_id="soak", target="t", scenario="s", spec={}, machine={})
    ingest = Ingestor(store, "soak")
    agg = SecondAggregator()
    t0 = 1.7e9
    ingest.feed([{"type": "step", "step": 0, "users": 10, "rate": None, "planned_s": hours * 3600,
                  "started_at": t0}])
    proc = psutil.Process()
    rss = {}
    for sec in range(int(hours * 3600)):
        ts = int(t0) + sec
        for e in range(endpoints):
            agg.record(ts + 0.5, "GET", f"GET /api/{e}", 10.0 + e, 200, 100, False)
        records = [{"type": "req", **r} for r in agg.flush(ts + 1.5)]
        records.append({"type": "tick", "ts": ts, "step": 0, "users": 10, "meters": {"ws_connections": 3}})
        ingest.feed(records)
        store.add_samples("soak", [{"ts": ts + 0.5, "source": "service", "metric": m, "value": 1.0}
                                   for m in ("cpu_cores", "rss_mib", "fds")])
        if sec == 600:
            rss["10 min"] = proc.memory_info().rss / 2**20
    rss["end"] = proc.memory_info().rss / 2**20
    store.engine.dispose()
    return [row(f"long run: live ingest RSS growth, 10 min → {hours:g} h ({endpoints} endpoints)",
                rss["end"] - rss["10 min"], "MiB", goal=5.0, better="lower")]
