"""`make bench`: run the suite, write benchmarks/results.md and results.json.

Usage: python -m benchmarks.run [--reps N] [--seconds S] [--only SECTION ...] [--out DIR]
Each figure is the median of N repetitions, with its anchor measured in the same run.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import platform
import signal
import sys
import time
from pathlib import Path

from benchmarks import history, mix, suite
from benchmarks.harness import BenchError

SECTIONS = ("load", "service", "sampling", "store", "analysis", "report", "plan", "mix", "history", "simulation")


def machine() -> dict:
    import psutil

    import capkit

    versions = {}
    for name in ("locust", "fastapi", "uvicorn", "papermill", "statsmodels", "pandas", "sqlalchemy"):
        try:
            from importlib.metadata import version

            versions[name] = version(name)
        except Exception:  # noqa: BLE001
            versions[name] = "?"
    cpu = platform.processor() or ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cpu": cpu, "cores": os.cpu_count(),
            "memory_gib": round(psutil.virtual_memory().total / 2**30, 1), "python": platform.python_version(),
            "capkit": capkit.__version__, **versions}


def to_markdown(meta: dict, rows: list[dict], elapsed: float) -> str:
    lines = ["# capkit benchmarks", "",
             f"Machine: {meta['cpu']}, {meta['cores']} cores, {meta['memory_gib']} GiB; Python {meta['python']}; "
             f"locust {meta['locust']}, fastapi {meta['fastapi']}, uvicorn {meta['uvicorn']}, "
             f"papermill {meta['papermill']}; {meta['date']}; suite took {elapsed / 60:.1f} min.", "",
             "Each value is the median of the repetitions; the anchor is measured in the same run. Ratios with an "
             "anchor are the median of per-repetition ratios. Rows saying 'at the same time' or 'both at once' ran "
             "with their anchor on the same core (steady while the machine's speed drifts); the others right "
             "after their anchors.", "",
             "| figure | value | anchor | ratio | goal | met |", "|---|---|---|---|---|---|"]
    for r in rows:
        anchor = f"{r['anchor']}: {r['anchor_value']:,.3g}" if r["anchor"] else "–"
        ratio = f"{r['ratio']:.2f}×" if r["ratio"] is not None else "–"
        goal = "–" if r["goal"] is None else (("≥ " if r["better"] == "higher" else "≤ ")
                                              + (f"{r['goal']:g}×" if r["anchor"] else f"{r['goal']:g} {r['unit']}"))
        met = {True: "yes", False: "**no**", None: "–"}[r["met"]]
        lines.append(f"| {r['figure']} | {r['value']:,.4g} {r['unit']} | {anchor} | {ratio} | {goal} | {met} |")
    return "\n".join(lines) + "\n"


def output_dir(only: list[str], out: Path | None) -> Path:
    """``out`` if given; else ``benchmarks/`` for the whole suite and ``benchmarks/partial/`` for
    some sections, so that a partial run does not replace the full results."""
    if out is not None:
        return out
    here = Path(__file__).resolve().parent
    return here if set(only) >= set(SECTIONS) else here / "partial"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--report-reps", type=int, default=5,
                        help="repetitions of the report section (its anchor, a papermill start-up, varies most)")
    parser.add_argument("--seconds", type=float, default=6.0, help="length of each service measurement")
    parser.add_argument("--load-reps", type=int, default=4,
                        help="repetitions of the capkit/bare FastHttpUser pair run at the same time (the goal's ratio)")
    parser.add_argument("--load-seconds", type=float, default=8.0,
                        help="length of each load-generator run (measured from 2 s after its start, when it is steady)")
    parser.add_argument("--only", nargs="*", choices=SECTIONS, default=list(SECTIONS))
    parser.add_argument("--out", type=Path, default=None,
                        help="where results.md/json go (default: benchmarks/, or benchmarks/partial/ with --only, "
                             "so that a partial run does not replace the full one)")
    parser.add_argument("--pg", default=os.environ.get("CAPKIT_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test"),
                        help="PostgreSQL URL for the store ingestion figure ('' to skip)")
    parser.add_argument("--history-runs", type=int, default=1000, help="runs in the big-history store")
    parser.add_argument("--history-rows", type=int, default=10_000_000, help="request rows in the big-history store")
    args = parser.parse_args(argv)
    args.out = output_dir(args.only, args.out)
    # capkit's bytecode, as a normal install has it (site-packages arrive compiled by pip; an
    # editable install under PYTHONDONTWRITEBYTECODE=1 would recompile capkit on every import)
    compileall.compile_dir(str(Path(__file__).resolve().parent.parent / "capkit"), quiet=1)
    # SIGTERM unwinds like Ctrl-C: the sections' finally blocks stop the servers they started
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    t0 = time.time()
    rows: list[dict] = []
    runners = {
        "load": lambda: suite.load_generation(args.reps, args.load_seconds, pair_reps=args.load_reps),
        "service": lambda: suite.service_paths(args.reps, args.seconds),
        "sampling": lambda: suite.sampling_overhead(10.0),
        "store": lambda: suite.store_ingestion(args.pg or None),
        "analysis": suite.analysis_scaling,
        "report": lambda: suite.report_pipeline(args.report_reps),
        "plan": suite.main_job,
        "mix": mix.mix_prediction,
        "history": lambda: history.history(args.pg or None, runs=args.history_runs, rows=args.history_rows),
        "simulation": suite.search_simulation,
    }
    try:
        for name in args.only:
            print(f"bench: {name}…", flush=True)
            section = runners[name]()
            for r in section:
                print(f"  {r['figure']}: {r['value']:,.4g} {r['unit']}"
                      + (f" ({r['ratio']:.2f}× {r['anchor']})" if r["ratio"] is not None else ""), flush=True)
            rows += section
    except BenchError as exc:
        print(f"bench: error: {exc}", file=sys.stderr)
        return 1
    elapsed = time.time() - t0
    meta = machine()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps({"machine": meta, "elapsed_s": elapsed, "rows": rows}, indent=2))
    (args.out / "results.md").write_text(to_markdown(meta, rows, elapsed))
    print(f"bench: wrote {args.out / 'results.md'} in {elapsed / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
