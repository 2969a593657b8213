"""The benchmark sections; each returns rows {figure, value, unit, anchor, anchor_value, ratio, goal, met}."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.harness import (
    LOCUSTFILES,
    ROOT,
    BenchError,
    cores,
    free_port,
    median,
    run_locust,
    start_server,
    together,
    uvicorn_cmd,
)

PLUGIN = ROOT / "capkit" / "loadgen" / "plugin.py"


def row(figure, value, unit, anchor=None, anchor_value=None, goal=None, better="higher", reps=None, ratio=None,
        anchor_reps=None):
    """One figure; ``ratio`` defaults to ``value / anchor_value`` (pass the median of paired ratios);
    ``reps`` and ``anchor_reps`` keep every repetition for the JSON."""
    if ratio is None and anchor_value:
        ratio = value / anchor_value
    met = None
    if goal is not None:
        subject = ratio if anchor_value else value
        met = subject >= goal if better == "higher" else subject <= goal
    return {"figure": figure, "value": value, "unit": unit, "anchor": anchor, "anchor_value": anchor_value,
            "ratio": ratio, "goal": goal, "better": better, "met": met, "reps": reps, "anchor_reps": anchor_reps}


def paired_ratio(values: list[float], anchors: list[float]) -> float:
    """The median of per-repetition ratios, each figure over the anchor measured with it."""
    if len(values) != len(anchors) or not values:
        raise BenchError(f"paired ratio needs as many anchors as values (got {len(values)} and {len(anchors)})")
    return median([v / a for v, a in zip(values, anchors)])


def load_generation(reps: int, seconds: float, users: int = 16, pair_reps: int = 4) -> list[dict]:
    """1. Requests per generator core: capkit's recorded path vs bare FastHttpUser vs HttpUser vs wrk.

    Absolute figures: each generator runs alone on the generator core (as in a real test: one
    process per core) against one fast server on the other core, the variants one after the
    other in each of ``reps`` repetitions (bare and capkit swap places every repetition). The
    HttpUser ratio is the median of those repetitions' ratios: run at the same time on one core,
    HttpUser and FastHttpUser lose unequal shares of their speed to each other.

    The capkit/bare ratio (the goal, near 1) is **paired**: both run at the same time on the
    generator core in each of ``pair_reps`` repetitions, so both see the same machine speed —
    one after the other, one repetition's ratio strayed by up to ±10 % here while the two differ
    by a few %. Generators are measured over their steady part, which leaves Locust's start-up
    (about one CPU-second) out."""
    gen, srv = cores()
    port = free_port()
    server = start_server(uvicorn_cmd("benchmarks.apps:raw_app", port), cpus=srv, health="/")
    work = Path(tempfile.mkdtemp(prefix="capkit-bench-"))
    skip = min(2.0, seconds / 3)

    def bare() -> float:
        return run_locust([LOCUSTFILES / "fast_fasthttp.py"], server.url, users=users, seconds=seconds, cpus=gen,
                          skip=skip).per_core

    def recorded() -> float:
        return run_locust([LOCUSTFILES / "fast_fasthttp.py", PLUGIN], server.url, users=users, seconds=seconds,
                          cpus=gen, shaped=True, skip=skip, env={"CAPKIT_RAW_DIR": str(work)}).per_core

    try:
        results = {"capkit": [], "fasthttp": [], "httpuser": [], "wrk": [], "pair_capkit": [], "pair_fasthttp": []}
        for rep in range(reps):
            # a core that speeds up or slows down over a repetition favours each side in turn
            for name, run in ((("fasthttp", bare), ("capkit", recorded)) if rep % 2 == 0
                              else (("capkit", recorded), ("fasthttp", bare))):
                results[name].append(run())
            results["httpuser"].append(run_locust([LOCUSTFILES / "fast_httpuser.py"], server.url, users=users,
                                                  seconds=seconds, cpus=gen, skip=skip).per_core)
            if shutil.which("wrk"):
                results["wrk"].append(_wrk(server.url, seconds, gen))
        for _ in range(pair_reps):
            pair = together({"capkit": recorded, "fasthttp": bare})
            results["pair_capkit"].append(pair["capkit"])
            results["pair_fasthttp"].append(pair["fasthttp"])
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    capkit, fast, plain = results["capkit"], results["fasthttp"], results["httpuser"]
    pair_capkit, pair_fast = results["pair_capkit"], results["pair_fasthttp"]
    rows = [row("load generation: capkit recorded path (FastHttpUser + plugin), both at once on the generator core",
                median(pair_capkit), "req/s per core", "bare Locust FastHttpUser, at the same time",
                median(pair_fast), goal=0.90, reps=pair_capkit, ratio=paired_ratio(pair_capkit, pair_fast),
                anchor_reps=pair_fast),
            row("load generation: capkit recorded path, alone on the generator core", median(capkit),
                "req/s per core", "bare Locust FastHttpUser alone", median(fast), reps=capkit,
                ratio=paired_ratio(capkit, fast), anchor_reps=fast),
            row("load generation: capkit vs plain HttpUser locustfile, each alone", median(capkit),
                "req/s per core", "Locust HttpUser", median(plain), goal=3.5, reps=capkit,
                ratio=paired_ratio(capkit, plain), anchor_reps=plain)]
    if results["wrk"]:
        rows.append(row("load generation: wrk (C, 1 thread)", median(results["wrk"]), "req/s per core",
                        reps=results["wrk"]))
    return rows


def _wrk(url: str, seconds: float, cpus: set[int]) -> float:
    import os

    cmd = ["wrk", "-t1", "-c16", f"-d{int(seconds)}s", url + "/"]
    popen = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                             preexec_fn=lambda: os.sched_setaffinity(0, cpus))
    out = popen.stdout.read().decode()
    _, _, usage = os.wait4(popen.pid, 0)
    for line in out.splitlines():
        if line.strip().startswith("Requests/sec:"):
            rps = float(line.split()[1])
            return rps * seconds / max(usage.ru_utime + usage.ru_stime, 1e-9)
    raise BenchError(f"wrk printed no Requests/sec: {out[-200:]}")


SERVICE_PATHS = {"auth": "GET /api/auth/validate", "analytics": "GET /api/analytics/summary (cached)",
                 "chat": "POST /api/chat/message (8 tokens)"}


def service_paths(reps: int, seconds: float, users: int = 16) -> list[dict]:
    """2. Reference service req/s per service core vs a bare FastAPI endpoint on the same core.

    Paired: for each path and repetition the reference service and the bare FastAPI app run
    at the same time, both pinned to the service core, each under its own saturating Locust
    load from the generator core; each server's figure is its requests over its own CPU time.
    Two servers sharing a core lose some speed to each other (caches, switches), not necessarily
    alike: the auth route is also measured with each server alone, one after the other."""
    gen, srv = cores()
    work = Path(tempfile.mkdtemp(prefix="capkit-bench-svc-"))
    env = {"CAPKIT_DATABASE_URL": f"sqlite:///{work / 'service.sqlite'}", "CAPKIT_MODEL_TOKENS": "8",
           "CAPKIT_RATE_LIMIT_CHAT": "1000000/minute"}
    results: dict[str, list[float]] = {p: [] for p in SERVICE_PATHS}
    anchors: dict[str, list[float]] = {p: [] for p in SERVICE_PATHS}

    def serve(path: str):
        port = free_port()
        cmd = (uvicorn_cmd("benchmarks.apps:bare_fastapi", port, factory=True) if path == "bare"
               else [sys.executable, "-m", "capkit", "serve", "--port", str(port)])
        return start_server(cmd, cpus=srv, env=env, timeout=60)

    def measure(server, path: str) -> float:
        before = server.cpu_seconds()
        load = run_locust([LOCUSTFILES / "service_paths.py"], server.url, users=users, seconds=seconds, cpus=gen,
                          env={"BENCH_PATH": path})
        used = server.cpu_seconds() - before
        if used <= 0:
            raise BenchError(f"{path}: the server used no CPU time while it answered {load.requests} requests")
        return load.requests / used

    alone: dict[str, list[float]] = {"auth": [], "bare": []}
    try:
        for _ in range(reps):
            for path in SERVICE_PATHS:
                servers = {}
                try:  # started one by one: a server that fails to start leaves none of the pair running
                    for name in ("bare", path):
                        servers[name] = serve(name)
                    got = together({name: lambda s=s, n=name: measure(s, n) for name, s in servers.items()})
                finally:
                    for s in servers.values():
                        s.stop()
                results[path].append(got[path])
                anchors[path].append(got["bare"])
            for path in alone:  # the goal's route once more, each server alone on the core, one after the other
                server = serve(path)
                try:
                    alone[path].append(measure(server, path))
                finally:
                    server.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    goals = {"auth": 0.70}
    rows = [row(f"service: {label}", median(results[p]), "req/s per service core",
                "bare FastAPI endpoint, at the same time", median(anchors[p]), goal=goals.get(p), reps=results[p],
                ratio=paired_ratio(results[p], anchors[p]), anchor_reps=anchors[p])
            for p, label in SERVICE_PATHS.items()]
    rows.append(row("service: GET /api/auth/validate, servers alone on the core one after the other",
                    median(alone["auth"]), "req/s per service core", "bare FastAPI endpoint alone",
                    median(alone["bare"]), reps=alone["auth"], ratio=paired_ratio(alone["auth"], alone["bare"]),
                    anchor_reps=alone["bare"]))
    every_bare = [v for p in SERVICE_PATHS for v in anchors[p]]
    rows.append(row("service: bare FastAPI endpoint (sharing the core with each path)", median(every_bare),
                    "req/s per service core", reps=every_bare))
    return rows


def sampling_overhead(seconds: float) -> list[dict]:
    """3. Resource sampling at 1 Hz and 10 Hz as % of one core (the sampler's own CPU time)."""
    rows = []
    for hz in (1, 10):
        code = (
            "import os, resource, time, subprocess, sys\n"
            "from capkit.metrics import ProcessTreeSampler, LoopbackNetworkSampler, DbTarget\n"
            "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'])\n"
            f"s = ProcessTreeSampler(child.pid, DbTarget(kind='tcp', port=5432)); n = LoopbackNetworkSampler()\n"
            "r0 = resource.getrusage(resource.RUSAGE_SELF); t0 = time.time()\n"
            f"while time.time() - t0 < {seconds}:\n"
            "    s.sample(); n.sample()\n"
            f"    time.sleep({1 / hz})\n"
            "r1 = resource.getrusage(resource.RUSAGE_SELF); child.kill()\n"
            "print((r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime) / (time.time() - t0))\n")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
        share = float(out.stdout.strip()) * 100
        rows.append(row(f"measurement overhead: sampling at {hz} Hz", share, "% of one core",
                        goal=0.5 if hz == 1 else None, better="lower"))
    return rows


def store_ingestion(pg_url: str | None, batches: int = 40, per_batch: int = 200) -> list[dict]:
    """4. Per-second request rows/s into SQLite and PostgreSQL."""
    from capkit.records.seconds import SecondAggregator
    from capkit.store import open_store

    agg = SecondAggregator()
    for i in range(per_batch):
        agg.record(1000.5, "GET", f"endpoint {i}", 12.5, 200, 100, False)
    template = agg.flush()
    rows = []
    targets = [("SQLite", None), ("PostgreSQL", pg_url)] if pg_url else [("SQLite", None)]
    for label, url in targets:
        tmp = Path(tempfile.mkdtemp(prefix="capkit-bench-store-"))
        store = open_store(url or f"sqlite:///{tmp / 'store.sqlite'}")
        store.create_run(run_id="bench", target="bench", scenario="bench", spec={}, machine={})
        t0 = time.perf_counter()
        for b in range(batches):
            store.add_request_stats("bench", [dict(r, ts=1000 + b, step=0, users=1) for r in template])
        elapsed = time.perf_counter() - t0
        store.delete_run("bench")
        store.engine.dispose()
        shutil.rmtree(tmp, ignore_errors=True)
        rows.append(row(f"store ingestion: {label}", batches * per_batch / elapsed, "rows/s"))
    return rows


def analysis_scaling() -> list[dict]:
    """5. 10⁴, 10⁵, 10⁶ samples through step aggregation, fits and projection."""
    from benchmarks.analysis_data import synthetic_frames
    from capkit.analysis.data.steps import per_second_resources
    from capkit.analysis.fits.regression import ResourceFit, fit_resources
    from capkit.schemas import ResourceLimits

    rows = []
    for n in (10_000, 100_000, 1_000_000):
        steps, samples = synthetic_frames(n)
        t0 = time.perf_counter()
        per_second = per_second_resources(samples, steps, warmup_s=2.0)
        fits = fit_resources(per_second, ResourceLimits())
        missing = [r for r in ("cpu_cores", "rss_mib", "db_connections", "network_kbps")
                   if not isinstance(fits.get(r), ResourceFit)]
        if missing:
            raise BenchError(f"analysis of {n:,} samples fitted no model for {', '.join(missing)}")
        elapsed = time.perf_counter() - t0
        rows.append(row(f"analysis: {n:,} samples (aggregation, 4 fits, capacity)", elapsed, "s",
                        goal=5.0 if n == 1_000_000 else None, better="lower"))
    return rows


def report_pipeline(reps: int) -> list[dict]:
    """6. `capkit report` on a stored run vs one trivial papermill notebook run."""
    from capkit.store import open_store
    from capkit.synthetic import write_synthetic_run

    work = Path(tempfile.mkdtemp(prefix="capkit-bench-report-"))
    store_url = f"sqlite:///{work / 'store.sqlite'}"
    write_synthetic_run(open_store(store_url), "bench-run", seed=1)
    trivial = work / "trivial.ipynb"
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("x = 1")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, trivial)
    env = {"CAPKIT_STORE_URL": store_url, "CAPKIT_REPORTS_DIR": str(work / "reports")}
    papermill_args = ["-k", "python3", str(trivial), str(work / "out.ipynb")]
    report_t, trivial_t, lean_t = [], [], []
    try:
        for _ in range(reps):
            report_t.append(_timed([sys.executable, "-m", "capkit", "report", "bench-run"], env))
            trivial_t.append(_timed([sys.executable, "-m", "papermill", *papermill_args], {}))
            # the same papermill run without jsonschema's IRI grammar, which capkit skips (see
            # capkit.report.execute.fast_validation): the anchor's own start-up, for the second ratio
            lean_t.append(_timed([sys.executable, "-c", LEAN_PAPERMILL, *papermill_args], {}))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    # ratios per repetition: the three runs of one repetition follow each other within seconds
    return [row("report pipeline: capkit report (all notebooks + HTML)", median(report_t), "s",
                "one trivial papermill run", median(trivial_t), goal=2.0, better="lower", reps=report_t,
                ratio=paired_ratio(report_t, trivial_t), anchor_reps=trivial_t),
            row("report pipeline: capkit report vs papermill without the IRI-grammar import", median(report_t), "s",
                "trivial papermill run, rfc3987_syntax skipped", median(lean_t), better="lower", reps=report_t,
                ratio=paired_ratio(report_t, lean_t), anchor_reps=lean_t)]


LEAN_PAPERMILL = ("import sys; sys.modules['rfc3987_syntax'] = None; sys.argv[0] = 'papermill'; "
                  "from papermill.cli import papermill; papermill()")


def _timed(cmd: list[str], env: dict) -> float:
    import os

    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env={**os.environ, **env})
    if proc.returncode != 0:
        raise BenchError(f"{' '.join(cmd[:4])}… failed: {proc.stderr.strip().splitlines()[-1:]}")
    return time.perf_counter() - t0


def main_job() -> list[dict]:
    """7. `capkit plan` (the capacity search, with its report) wall time, and its answer's accuracy
    by the truth protocol (benchmarks/truth.py): a confirming grid of two interleaved passes of 30-s
    steps at 0.75…1.25× the search's p95 crossing, the crossing from an OLS fit of log(p95) on
    users over all ten steps; the binding limit's crossing, where the grid brackets it, measured on
    the same steps (the two passes' mean at each load)."""
    import json

    from benchmarks import truth
    from capkit.analysis.answer.limits import measured_crossing

    work = Path(tempfile.mkdtemp(prefix="capkit-bench-plan-"))
    env = truth.scratch_env(work)
    try:
        elapsed = _timed([sys.executable, "-m", "capkit", "plan", "--json", str(work / "answer.json")], env)
        answer = json.loads((work / "answer.json").read_text())
        rows = [row("main job: capkit plan (capacity search + report)", elapsed / 60, "min", goal=4.0,
                    better="lower")]
        p95 = truth.p95_answer(answer)
        if p95["users"] is None:
            raise BenchError(f"the search found no p95 crossing: {answer['stop_reason']}")
        order = truth.interleaved(truth.grid_loads(p95["users"]))
        confirm_env = {**env, "CAPKIT_STORE_URL": f"sqlite:///{work / 'confirm.sqlite'}"}
        _timed([sys.executable, "-m", "capkit", "run", "--stages", truth.stage_plan(order, 30), "--warmup", "5"],
               confirm_env)
        steps = truth.usable_steps(truth.read_steps(confirm_env["CAPKIT_STORE_URL"], order))
        crossing = truth.fit_crossing(steps["users"], steps["p95_ms"])
        grid = f"{order[0][1]}…{order[4][1]} users"
        if crossing.users is None:
            rows.append(row(f"capacity accuracy: p95 500 ms — search {p95['users']:.1f} users, confirming grid "
                            f"{grid}: {crossing.reason}", float("nan"), "% off"))
        else:
            verdict = truth.judge(p95, crossing)
            rows.append(row(f"capacity accuracy: p95 500 ms — search {p95['users']:.1f} "
                            f"({truth.span(p95['low'], p95['high'])}) users, confirming fit {crossing.users:.1f} "
                            f"({truth.span(crossing.low, crossing.high)}); the search's range "
                            f"{'holds' if verdict['range_holds'] else 'misses'} it", abs(verdict["error_pct"]),
                            "% off", goal=10.0, better="lower"))
        binding = answer["binding"]
        if binding["limit"] == "Model slots" and binding["users"] and "model_slots" in steps:
            value = 0.95 * float(steps["model_slots_size"].median())
            measured = measured_crossing(steps["users"], steps["model_slots"], value)
            if measured is None or measured.low <= 0:
                rows.append(row(f"capacity accuracy: Model slots — not bracketed by the confirming grid {grid}",
                                float("nan"), "% off"))
            else:
                error = 100 * abs(binding["users"] - measured.estimate) / measured.estimate
                rows.append(row(f"capacity accuracy: Model slots — search {binding['users']:.1f} users, confirming "
                                f"grid {measured.estimate:.1f}", error, "% off", goal=10.0, better="lower"))
        return rows
    finally:
        shutil.rmtree(work, ignore_errors=True)


def search_simulation(seeds: int = 200) -> list[dict]:
    """8. The search and its answer against known truth as messy as real runs
    (:class:`capkit.synthetic.search.MessyService`: step offsets amplified near the knee, drift,
    bursts of slow requests, carry-over after overloaded steps), the default 4-minute search with
    15-s steps, ``seeds`` seeds per truth: how often the answer's range holds the true p95 crossing
    (its level is 95 %; the goal is 90–98 %), the median error and the median half-width."""
    import numpy as np

    from capkit.analysis.answer.limits import p95_crossing
    from capkit.analysis.design.search import SearchPlanner, SearchRules, simulate_search
    from capkit.synthetic.search import MessyService

    rules = SearchRules(step_s=15, warmup_s=3, idle_s=10)
    rows = []
    for name, truth_kw in (("pool knee", {}), ("low-capacity pool", {"pool": 3.0}),
                           ("coherency knee", {"pool": 1e9, "kappa": 0.0002})):
        truth = MessyService(**truth_kw).crossing()
        held, errors, widths = 0, [], []
        for seed in range(seeds):
            planner = SearchPlanner(rules)
            steps = simulate_search(planner, MessyService(**truth_kw), seed=seed)
            answer = p95_crossing(steps[steps["users"] > 0], 500.0)
            held += answer.low <= truth <= answer.high
            errors.append(abs(answer.estimate - truth) / truth)
            widths.append((answer.high - answer.low) / 2 / answer.estimate)
        label = f"search known truth, {name} (crossing {truth:.0f} users, {seeds} seeds)"
        rows += [row(f"{label}: range holds the truth", 100 * held / seeds, "%", goal=90.0, better="higher"),
                 row(f"{label}: median error", 100 * float(np.median(errors)), "%", goal=5.0, better="lower"),
                 row(f"{label}: median half-width of the range", 100 * float(np.median(widths)), "%",
                     goal=20.0, better="lower")]
    return rows
