"""The "mix prediction" section: fit per-class demands on a `capkit run --design mix` run of the
reference service, predict a mix it never ran with `capkit what-if`, then measure that mix.

Rows: the CPU predicted at the lower measured load against the measured step (% off), and the users
per replica at CPU's critical level (90 % of the core) predicted against the measured crossing
(interpolated between two measured steps around it; a crossing they do not bracket is a row saying
so). Goal: within 10 %. About 2 minutes of load."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.harness import ROOT, BenchError

# CPU-heavy chat (30 ms of CPU per answer): CPU binds, and mixes differ by a lot
CPU = {"CAPKIT_MODEL_MAX_CONCURRENT": "64", "CAPKIT_MODEL_TOKENS": "10", "CAPKIT_MODEL_TOKEN_DELAY_MS": "0",
       "CAPKIT_MODEL_CPU_MS_PER_TOKEN": "3", "CAPKIT_RESPONSE_CACHE": "false",
       "CAPKIT_RATE_LIMIT_CHAT": "1000/minute", "CAPKIT_SEED_CONVERSATIONS": "200"}
BASE = "chat=4,analytics=1,auth=1,ws=1"
NEW = "chat=1,analytics=3,auth=2,ws=3"
THINK = ("--think", "0.5,1.0")


def _capkit(*args: str, env: dict) -> subprocess.CompletedProcess:
    import os

    proc = subprocess.run([sys.executable, "-m", "capkit", *args], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, **env})
    if proc.returncode != 0:
        raise BenchError(f"capkit {' '.join(args[:3])}… failed: {proc.stderr.strip().splitlines()[-1:]}")
    return proc


def _run_id(proc) -> str:
    line = next(li for li in proc.stdout.splitlines() if li.startswith("run ") and ": complete" in li)
    return line.split()[1].rstrip(":")


def mix_prediction() -> list[dict]:
    from benchmarks.suite import row
    from capkit.analysis.answer.limits import measured_crossing
    from capkit.analysis.data.read import read_run
    from capkit.analysis.fits.demands import class_steps

    work = Path(tempfile.mkdtemp(prefix="capkit-bench-mix-"))
    env = {**CPU, "CAPKIT_STORE_URL": f"sqlite:///{work / 'store.sqlite'}", "CAPKIT_RUNS_DIR": str(work / "runs"),
           "CAPKIT_DATABASE_URL": f"sqlite:///{work / 'svc.sqlite'}"}
    try:
        fit_id = _run_id(_capkit("run", "--stages", "0x6,8x8,16x8", "--warmup", "3", "--design", "mix", "--mix",
                                 BASE, *THINK, env=env))
        _capkit("what-if", fit_id, "--mix", NEW, "--users", "10", "--json", str(work / "probe.json"), env=env)
        probe = json.loads((work / "probe.json").read_text())
        if probe["binding_limit"] != "cpu_cores":
            raise BenchError(f"the what-if's binding limit is {probe['binding_limit']}, not CPU")
        at = probe["users_per_replica_mean"]
        loads = (max(2, round(0.75 * at)), round(1.2 * at))
        _capkit("what-if", fit_id, "--mix", NEW, "--users", str(loads[0]), "--json", str(work / "low.json"),
                env=env)
        low = json.loads((work / "low.json").read_text())
        measure_id = _run_id(_capkit("run", "--stages", f"0x5,{loads[0]}x14,{loads[1]}x14", "--warmup", "4",
                                     "--mix", NEW, *THINK, env=env))
        table = class_steps(read_run(env["CAPKIT_STORE_URL"], measure_id)).set_index("step")
        cpu_pred = next(r for r in low["resources"] if r["resource"] == "cpu_cores")
        measured = float(table.loc[1, "cpu_cores"])
        rows = [row(f"mix prediction: CPU of mix {NEW} at {loads[0]} users (fitted on a --design mix run of {BASE}) "
                    f"— predicted {cpu_pred['predicted']:.3f} cores, measured {measured:.3f}",
                    100 * abs(cpu_pred["predicted"] - measured) / measured, "% off", goal=10.0, better="lower")]
        loaded = table[table["users"] > 0]
        crossing = measured_crossing(loaded["users"], loaded["cpu_cores"], 0.9 * float(cpu_pred["limit"]))
        if crossing is None or crossing.low <= 0:
            rows.append(row(f"mix prediction: users per replica (CPU at 90 %) — not bracketed by the measured steps "
                            f"{loads[0]}, {loads[1]} (CPU {', '.join(f'{v:.2f}' for v in loaded['cpu_cores'])})",
                            float("nan"), "% off"))
        else:
            rows.append(row(f"mix prediction: users per replica (CPU at 90 %) of mix {NEW} — predicted {at:.1f}, "
                            f"measured {crossing.estimate:.1f}", 100 * abs(at - crossing.estimate) / crossing.estimate,
                            "% off", goal=10.0, better="lower"))
        return rows
    finally:
        shutil.rmtree(work, ignore_errors=True)
