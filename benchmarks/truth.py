"""The truth protocol: is capkit's capacity answer ("one replica carries N users before p95 reaches
500 ms") where a longer, independent measurement puts it?

Each repeat runs the capacity search in a scratch store, then a **confirming grid**: two passes of
steps (30 s by default) at 0.75, 0.875, 1.0, 1.125 and 1.25 × the answer, the first ascending and
the second descending, and fits log(p95) on users over all ten steps. The crossing is where that
line reaches log 500 ms; its range is where the fit's 95 % confidence band of the mean crosses it.
One confirming step alone is too noisy to judge by: neighbouring steps of one run gave 486, 348,
413 and 663 ms at 80, 82, 89 and 90 users.

Why descending in the second pass: each load's two steps then sit symmetrically about the run's
middle, so a drift that is linear in time (a core's speed, a cache warming, tables growing) moves
every load's mean alike and leaves the slope and the crossing alone; a shuffled order cancels it
only on average. The two passes at the same load also show that drift directly (``drift``: the
mean of log(p95 second pass / first pass)). The descending pass starts at the highest load; the
warm-up trimmed from each step lets the queue of a closed model settle.

This module is the judge: its fit is its own, small and apart from capkit's answer code.

    python -m benchmarks.truth --service reference|datasette|kinto --repeats 5 [--step-seconds 30]

Results: ``benchmarks/truth-results.md`` and ``.json`` (one section per service, a new run of a
service replaces its section).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
GRID = (0.75, 0.875, 1.0, 1.125, 1.25)
THRESHOLD_MS = 500.0
P95 = "Response time (p95)"
SERVICES = ("reference", "datasette", "kinto")


# ---- the grid ------------------------------------------------------------------------------------

def grid_loads(answer: float, factors=GRID) -> list[int]:
    """The confirming loads: ``factors`` × ``answer``, rounded to whole users, ascending and
    distinct (a small answer cannot make a grid: at least 3 distinct loads are needed)."""
    if not (answer and math.isfinite(answer)) or answer <= 0:
        raise ValueError(f"no grid around an answer of {answer!r} users")
    loads = sorted({max(1, round(answer * f)) for f in factors})
    if len(loads) < 3:
        raise ValueError(f"an answer of {answer:g} users gives only {len(loads)} distinct loads")
    return loads


def interleaved(loads: list[int]) -> list[tuple[int, int]]:
    """(pass, users) in run order: pass 1 ascending, pass 2 descending (see the module's doc)."""
    up = sorted(loads)
    return [(1, u) for u in up] + [(2, u) for u in reversed(up)]


def stage_plan(order: list[tuple[int, int]], step_seconds: float, idle_seconds: float = 10) -> str:
    """``capkit run --stages``: an idle step, then one step per (pass, users)."""
    return ",".join([f"0x{idle_seconds:g}"] + [f"{u}x{step_seconds:g}" for _, u in order])


# ---- the fit -------------------------------------------------------------------------------------

@dataclass
class Crossing:
    """Where the fitted p95 reaches the threshold (``users``) and its range (``low``, ``high``);
    ``users`` is None, with ``reason``, when the grid holds no crossing; ``low``/``high`` are None
    when the band does not cross on that side (a range unbounded there)."""

    users: float | None
    low: float | None
    high: float | None
    reason: str | None
    slope: float | None  # d log(p95) / d user
    intercept: float | None
    n: int


def fit_crossing(users, p95_ms, threshold_ms: float = THRESHOLD_MS, level: float = 0.95) -> Crossing:
    """OLS of log(p95) on users over every step; the crossing of log ``threshold_ms`` when it falls
    within the loads measured, with the range where the ``level`` confidence band of the mean
    crosses it (the inverse of the band, as Fieller's interval for a ratio)."""
    from scipy import stats

    x = np.asarray(users, float)
    y = np.asarray(p95_ms, float)
    ok = np.isfinite(x) & np.isfinite(y) & (y > 0)
    x, y = x[ok], np.log(y[ok])
    n = len(x)
    if n < 3 or np.ptp(x) == 0:
        return Crossing(None, None, None, f"{n} usable step(s) over {len(set(x.tolist()))} load(s): no fit",
                        None, None, n)
    xbar, ybar = x.mean(), y.mean()
    sxx = float(((x - xbar) ** 2).sum())
    b = float(((x - xbar) * (y - ybar)).sum() / sxx)
    a = float(ybar - b * xbar)
    s2 = float(((y - a - b * x) ** 2).sum() / (n - 2))
    t = float(stats.t.ppf(0.5 + level / 2, n - 2))
    level_y = math.log(threshold_ms)
    lo_x, hi_x = float(x.min()), float(x.max())
    ms = lambda u: math.exp(a + b * u)  # noqa: E731
    if b <= 0:
        return Crossing(None, None, None, f"p95 does not rise with load over {lo_x:g}–{hi_x:g} users "
                        f"(fitted {ms(lo_x):.0f} → {ms(hi_x):.0f} ms)", b, a, n)
    cross = (level_y - a) / b
    if cross < lo_x:
        return Crossing(None, None, None, f"p95 is above {threshold_ms:g} ms over the whole grid: fitted "
                        f"{ms(lo_x):.0f} ms at {lo_x:g} users, the crossing is below the grid", b, a, n)
    if cross > hi_x:
        return Crossing(None, None, None, f"p95 stays below {threshold_ms:g} ms over the whole grid: fitted "
                        f"{ms(hi_x):.0f} ms at {hi_x:g} users, the crossing is above the grid", b, a, n)
    # (ybar - L + b u)² = t² s² (1/n + u²/Sxx), u = x - xbar
    d = ybar - level_y
    qa = b * b - t * t * s2 / sxx
    qb = 2 * b * d
    qc = d * d - t * t * s2 / n
    if qa <= 0:  # the slope is not told from zero at this level: the band never closes on a side
        return Crossing(cross, None, None, "slope not significant: the range is unbounded", b, a, n)
    disc = max(qb * qb - 4 * qa * qc, 0.0)
    r1, r2 = sorted(((-qb - math.sqrt(disc)) / (2 * qa) + xbar, (-qb + math.sqrt(disc)) / (2 * qa) + xbar))
    return Crossing(cross, r1, r2, None, b, a, n)


def usable_steps(steps):
    """The loaded steps that describe the service: complete, with requests and a p95, the load
    reached and the generator not saturated (steps with errors count: they are overload)."""
    if steps.empty:
        return steps
    ok = (steps["users"] > 0) & steps["complete"].astype(bool) & (steps["requests"] > 0) & (steps["p95_ms"] > 0)
    flags = steps["flags"].fillna("")
    for bad in ("generator_saturated", "users_not_reached", "no_requests", "workers_lost"):
        ok &= ~flags.str.contains(bad)
    return steps[ok]


def drift(steps) -> float | None:
    """Mean over loads of log(p95 second pass / first pass); None without both passes."""
    if steps.empty or "pass" not in steps:
        return None
    wide = steps.pivot_table(index="users", columns="pass", values="p95_ms", aggfunc="mean")
    if 1 not in wide or 2 not in wide:
        return None
    ratio = np.log(wide[2] / wide[1]).dropna()
    return float(ratio.mean()) if len(ratio) else None


def pool_crossing(steps, size: float | None, share: float = 0.95) -> Crossing:
    """Where the binding pool reaches ``share`` of its ``size`` on the grid: per load, the mean of its
    steps (both passes), interpolated between the last load below and the first at or above it (a
    pool fills along a curve and stays full: no line through it); its range from the same on each
    pass alone (None on a side where a pass does not bracket it)."""
    if size is None or not size > 0 or steps.empty or "model_slots" not in steps:
        return Crossing(None, None, None, "no pool size or no pool readings", None, None, 0)
    level = share * size

    def first(rows) -> float | None:
        by = rows.groupby("users")["model_slots"].mean().dropna().sort_index()
        at = by[by >= level]
        if at.empty or at.index[0] == by.index[0]:
            return None  # not reached, or reached already at the lowest load: not bracketed
        hi_u = at.index[0]
        lo_u = by.index[by.index < hi_u][-1]
        lo_v, hi_v = by[lo_u], by[hi_u]
        return float(lo_u + (level - lo_v) * (hi_u - lo_u) / (hi_v - lo_v)) if hi_v > lo_v else float(hi_u)

    est = first(steps)
    if est is None:
        return Crossing(None, None, None, f"the grid does not bracket {100 * share:g} % of {size:g} slots",
                        None, None, len(steps))
    passes = [first(steps[steps["pass"] == p]) for p in (1, 2)] if "pass" in steps else []
    seen = [v for v in passes if v is not None]
    return Crossing(est, min(seen + [est]), max(seen + [est]), None, None, None, len(steps))


def judge(answer: dict, crossing: Crossing) -> dict:
    """The answer (``users``, ``low``, ``high``) against the confirming crossing."""
    if answer.get("users") is None or crossing.users is None:
        return {"error_pct": None, "within_10": False, "within_15": False, "range_holds": False}
    err = 100 * (answer["users"] - crossing.users) / crossing.users
    low, high = answer.get("low"), answer.get("high")
    holds = low is not None and high is not None and low <= crossing.users <= high
    return {"error_pct": err, "within_10": abs(err) <= 10, "within_15": abs(err) <= 15, "range_holds": holds}


def summary(repeats: list[dict]) -> dict:
    judged = [r for r in repeats if r.get("error_pct") is not None]
    errs = [abs(r["error_pct"]) for r in judged]
    pools = [r["pool"] for r in repeats if (r.get("pool") or {}).get("pool_error_pct") is not None]
    return {"pool_judged": len(pools), "pool_within_10": sum(p["pool_within_10"] for p in pools),
            "pool_range_holds": sum(p["pool_range_holds"] for p in pools),
            "repeats": len(repeats), "judged": len(judged),
            "within_10": sum(r["within_10"] for r in judged), "within_15": sum(r["within_15"] for r in judged),
            "range_holds": sum(r["range_holds"] for r in judged),
            "median_abs_error_pct": float(np.median(errs)) if errs else None,
            "max_abs_error_pct": float(max(errs)) if errs else None}


# ---- the runs ------------------------------------------------------------------------------------

def scratch_env(work: Path) -> dict:
    return {"CAPKIT_STORE_URL": f"sqlite:///{work / 'store.sqlite'}", "CAPKIT_RUNS_DIR": str(work / "runs"),
            "CAPKIT_REPORTS_DIR": str(work / "reports"), "CAPKIT_DATABASE_URL": f"sqlite:///{work / 'svc.sqlite'}"}


def capkit(args: list[str], env: dict, log: Path, timeout: float) -> float:
    t0 = time.time()
    with open(log, "ab") as out:
        proc = subprocess.run([sys.executable, "-m", "capkit", *args], env={**os.environ, **env}, stdout=out,
                              stderr=subprocess.STDOUT, timeout=timeout)
    if proc.returncode != 0:
        tail = log.read_text(errors="replace")[-1500:]
        raise RuntimeError(f"capkit {' '.join(args[:2])} exited {proc.returncode}:\n{tail}")
    return time.time() - t0


def p95_answer(answer: dict) -> dict:
    """The search's p95 crossing (warning threshold) from ``--json``, with its range and basis."""
    for t in answer.get("thresholds", []):
        if t["metric"] == P95 and t["severity"] == "warning":
            return {"users": t["users"], "low": t["low"], "high": t["high"], "basis": t["basis"]}
    return {"users": None, "low": None, "high": None, "basis": "none"}


def read_steps(store_url: str, order: list[tuple[int, int]]):
    """The confirming run's steps (capkit's step summary), each loaded step tagged with its pass."""
    from capkit import analysis as ca
    from capkit.analysis.answer.capacity import resource_capacity

    run = ca.read_run(store_url)
    try:
        steps = resource_capacity(run).steps
    except Exception:  # noqa: BLE001  fewer than 2 clean steps: the summary is still what we read
        from capkit.analysis.data.steps import summarize_steps

        steps = summarize_steps(run.steps, run.requests, run.samples, warmup_s=run.warmup_s)
    sizes = run.samples[run.samples["metric"] == "model_slots_size"] if "metric" in run.samples else []
    size = float(sizes["value"].median()) if len(sizes) else None
    steps = steps.sort_values("step").reset_index(drop=True)
    steps.attrs["model_slots_size"] = size
    loaded = steps.index[steps["users"] > 0]
    steps["pass"] = 0
    if len(loaded) == len(order):
        steps.loc[loaded, "pass"] = [p for p, _ in order]
    return steps


def one_repeat(service: str, index: int, args, work: Path) -> dict:
    """Search, then the confirming grid, on a fresh service (third-party) or a fresh plan (reference)."""
    env = scratch_env(work)
    log = work / "capkit.log"
    rec: dict = {"repeat": index, "service": service, "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}
    running = None
    try:
        target: list[str] = []
        if service != "reference":
            from benchmarks.thirdparty.services import LOCUSTFILE, start

            running = start(service, log=work / "server.log")
            target = ["--target", running.url, "--locustfile", str(LOCUSTFILE[service]), "--pid", str(running.pid)]
        search = (["plan"] if service == "reference" else ["run", "--search", *target])
        search += ["--json", str(work / "answer.json")]
        if args.budget:
            search += ["--budget", args.budget]
        if args.search_step_seconds and service != "reference":
            search += ["--step-seconds", f"{args.search_step_seconds:g}"]
        rec["search_command"] = "capkit " + " ".join(search)
        rec["search_s"] = capkit(search, env, log, timeout=1800)
        answer = json.loads((work / "answer.json").read_text())
        rec["answer"] = p95_answer(answer)
        rec["capacity"] = {k: answer["capacity"].get(k) for k in ("limit", "users", "low", "high")}
        rec["binding"] = {k: answer["binding"].get(k) for k in ("limit", "users", "low", "high", "basis")}
        rec["stop_reason"] = answer.get("stop_reason")
        if rec["answer"]["users"] is None:
            rec["crossing"] = asdict(Crossing(None, None, None, "the search gave no p95 crossing", None, None, 0))
            return rec | judge(rec["answer"], Crossing(None, None, None, None, None, None, 0))
        order = interleaved(grid_loads(rec["answer"]["users"]))
        confirm_env = {**env, "CAPKIT_STORE_URL": f"sqlite:///{work / 'confirm.sqlite'}"}
        grid = ["run", *target, "--stages", stage_plan(order, args.step_seconds), "--warmup", f"{args.warmup:g}"]
        rec["grid_command"] = "capkit " + " ".join(grid)
        rec["grid_s"] = capkit(grid, confirm_env, log, timeout=args.step_seconds * 12 + 600)
        steps = read_steps(confirm_env["CAPKIT_STORE_URL"], order)
        use = usable_steps(steps)
        crossing = fit_crossing(use["users"], use["p95_ms"])
        rec["crossing"] = asdict(crossing)
        rec["drift"] = drift(use)
        keep = [c for c in ("step", "pass", "users", "p95_ms", "p95_low_ms", "p95_high_ms", "rps", "error_rate",
                            "cpu_cores", "model_slots", "flags", "clean") if c in steps]
        if rec["binding"].get("limit") == "Model slots":  # the binding pool, judged as the p95 answer is
            pool = pool_crossing(use, steps.attrs.get("model_slots_size"))
            rec["pool_crossing"] = asdict(pool)
            rec["pool"] = {f"pool_{k}": v for k, v in judge(rec["binding"], pool).items()}
        rec["steps"] = json.loads(steps[keep].assign(usable=steps.index.isin(use.index)).to_json(orient="records"))
        return rec | judge(rec["answer"], crossing)
    finally:
        if running is not None:
            running.stop()


# ---- the report ----------------------------------------------------------------------------------

def _users(v) -> str:
    return "–" if v is None else f"{v:.1f}"


def span(low, high) -> str:
    return f"{'−∞' if low is None else f'{low:.1f}'}–{'∞' if high is None else f'{high:.1f}'}"


def to_markdown(results: dict) -> str:
    lines = ["# Capacity accuracy: the truth protocol", "",
             "Written by `python -m benchmarks.truth` (see [docs/accuracy.md](../docs/accuracy.md)). Each repeat: "
             "the capacity search, then a confirming grid of two passes (ascending, then descending) of steps at "
             "0.75–1.25× the search's p95 answer; the confirming crossing is where an OLS fit of log(p95) on users "
             "over all the steps reaches 500 ms, its range where the fit's 95 % band of the mean does. Error: "
             "(search − confirming) / confirming.", ""]
    for name in SERVICES:
        if name not in results:
            continue
        res = results[name]
        s = res["summary"]
        lines += [f"## {name}", "", f"`{res['command']}` — {res['date']}, {res['machine']}; "
                  f"step {res['step_seconds']:g} s, warm-up {res['warmup']:g} s."
                  + (f" {res['note']}" if res.get("note") else ""), "",
                  f"**{s['judged']} of {s['repeats']} repeats judged; within 10 %: {s['within_10']}, within 15 %: "
                  f"{s['within_15']}; the answer's range holds the confirming crossing: {s['range_holds']}**"
                  + (f"; median |error| {s['median_abs_error_pct']:.1f} %, max {s['max_abs_error_pct']:.1f} %."
                     if s["median_abs_error_pct"] is not None else ".")
                  + (f" Binding pool (model slots at 95 %): {s['pool_judged']} judged, within 10 %: "
                     f"{s['pool_within_10']}, range holds: {s['pool_range_holds']}." if s.get("pool_judged") else ""),
                  "",
                  "| # | search p95 answer (range) | basis | capacity; binding limit | confirming crossing (range) "
                  "| error | range holds | drift pass 2/1 | steps in run order: users → p95 ms |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for r in res["repeats"]:
            if "error" in r:
                said = [x.strip() for x in r["error"].splitlines() if x.strip()]
                why = said[0] + (f" … {said[-1]}" if len(said) > 1 else "")
                lines.append(f"| {r['repeat']} | failed: {why[:200].replace('|', '/')} | | | | | | | |")
                continue
            a, c = r["answer"], r["crossing"]
            conf = (f"{c['users']:.1f} ({span(c['low'], c['high'])})" if c["users"] is not None
                    else f"none: {c['reason']}")
            cap, bind = r.get("capacity") or {}, r.get("binding") or {}
            limits = f"{cap.get('limit')} {_users(cap.get('users'))}" + (
                f"; {bind['limit']} {_users(bind.get('users'))} ({span(bind.get('low'), bind.get('high'))})"
                if bind.get("limit") else "")
            pc = r.get("pool_crossing")
            if pc and pc.get("users") is not None:
                pj = r["pool"]
                limits += (f" vs grid {pc['users']:.1f} ({span(pc['low'], pc['high'])}), "
                           f"{pj['pool_error_pct']:+.1f} %, {'holds' if pj['pool_range_holds'] else 'misses'}")
            err = "–" if r["error_pct"] is None else f"{r['error_pct']:+.1f} %"
            dr = "–" if r.get("drift") is None else f"{math.exp(r['drift']):.2f}×"
            steps = " ".join(f"{s['users']}→" + ("–" if s["p95_ms"] is None else f"{s['p95_ms']:.0f}")
                             + ("" if s.get("usable", True) else "✗")
                             for s in r.get("steps", []) if s["users"] > 0)
            lines.append(f"| {r['repeat']} | {_users(a['users'])} ({span(a['low'], a['high'])}) | {a['basis']} | "
                         f"{limits} | {conf} | {err} | "
                         f"{'yes' if r['range_holds'] else 'no'} | {dr} | {steps} |")
        lines.append("")
    return "\n".join(lines)


def machine() -> str:
    cpu = ""
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {os.cpu_count()} cores"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="capacity answer against a confirming grid (the truth protocol)")
    parser.add_argument("--service", choices=SERVICES, required=True)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--step-seconds", type=float, default=30.0, help="length of each confirming step")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds trimmed from the start of each step")
    parser.add_argument("--budget", default=None, help="the search's time budget (capkit's default: 4m)")
    parser.add_argument("--search-step-seconds", type=float, default=None,
                        help="the search's step length (third-party services; capkit's default: 15)")
    parser.add_argument("--out", type=Path, default=HERE, help="where truth-results.md and .json go")
    parser.add_argument("--keep", action="store_true", help="keep each repeat's scratch store")
    parser.add_argument("--append", action="store_true",
                        help="add these repeats to the service's earlier ones in the results (same settings only)")
    args = parser.parse_args(argv)
    argv_text = " ".join(sys.argv[1:] if argv is None else argv)
    repeats = []
    for i in range(1, args.repeats + 1):
        work = Path(tempfile.mkdtemp(prefix=f"capkit-truth-{args.service}-"))
        print(f"truth: {args.service} repeat {i}/{args.repeats} in {work}", flush=True)
        try:
            rec = one_repeat(args.service, i, args, work)
        except Exception as exc:  # noqa: BLE001  a failed repeat is a result too
            rec = {"repeat": i, "service": args.service, "error": f"{type(exc).__name__}: {exc}",
                   "error_pct": None, "within_10": False, "within_15": False, "range_holds": False}
        finally:
            if not args.keep:
                shutil.rmtree(work, ignore_errors=True)
        repeats.append(rec)
        a, c = rec.get("answer") or {}, rec.get("crossing") or {}
        print(f"truth: repeat {i}: search {_users(a.get('users'))} ({span(a.get('low'), a.get('high'))}), "
              f"confirming {_users(c.get('users'))} ({span(c.get('low'), c.get('high'))})"
              f"{' ' + c['reason'] if c.get('reason') else ''}"
              f"{', error %+.1f %%' % rec['error_pct'] if rec.get('error_pct') is not None else ''}"
              f"{' — ' + rec['error'] if 'error' in rec else ''}", flush=True)
    out_json = args.out / "truth-results.json"
    results = json.loads(out_json.read_text()) if out_json.exists() else {}
    earlier = results.get(args.service) if args.append else None
    if earlier and (earlier["step_seconds"], earlier["warmup"]) == (args.step_seconds, args.warmup):
        for n, rec in enumerate(repeats, start=len(earlier["repeats"]) + 1):
            rec["repeat"] = n
        repeats = earlier["repeats"] + repeats
        argv_text = earlier["command"].removeprefix("python -m benchmarks.truth ") + f" (+ {argv_text})"
    results[args.service] = {"command": f"python -m benchmarks.truth {argv_text}", "machine": machine(),
                             "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                             "step_seconds": args.step_seconds, "warmup": args.warmup,
                             "repeats": repeats, "summary": summary(repeats)}
    if earlier and earlier.get("note") and args.append:
        results[args.service]["note"] = earlier["note"]
    args.out.mkdir(parents=True, exist_ok=True)
    out_json.write_text(json.dumps(results, indent=2) + "\n")
    (args.out / "truth-results.md").write_text(to_markdown(results))
    s = results[args.service]["summary"]
    print(f"truth: {args.service}: {s['judged']}/{s['repeats']} judged, within 10 %: {s['within_10']}, "
          f"within 15 %: {s['within_15']}, range holds: {s['range_holds']} → {args.out / 'truth-results.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
