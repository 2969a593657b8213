"""The capacity search against the real reference service: its answer agrees with a confirming
fixed-step run at the same settings, the binding limit follows the configuration, bad input is one line.

Short steps keep these to ~4 min; the full-length comparison is `make bench`'s "capacity accuracy".
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from capkit.analysis.answer.limits import measured_crossing, p95_crossing, valid_steps
from tests.conftest import assert_one_line_error, run_cli

# 8 model slots held ~0.2 s per answer (10 tokens × 20 ms): the slots fill near 40 chat users and p95
# passes 500 ms near 50 — a knee low enough for short steps, high enough for 10 % to be a few users
SLOTS = {"CAPKIT_MODEL_MAX_CONCURRENT": "8", "CAPKIT_MODEL_TOKENS": "10", "CAPKIT_MODEL_TOKEN_DELAY_MS": "20",
         "CAPKIT_MODEL_CPU_MS_PER_TOKEN": "0.1"}
# CPU binds first: 30 ms of CPU per answer, slots and delay out of the way
CPU = {"CAPKIT_MODEL_MAX_CONCURRENT": "64", "CAPKIT_MODEL_TOKENS": "10", "CAPKIT_MODEL_TOKEN_DELAY_MS": "0",
       "CAPKIT_MODEL_CPU_MS_PER_TOKEN": "3"}
LOAD = ("--mix", "chat=1", "--think", "0.5,1.0")


def _env(tmp_path, model: dict) -> dict:
    return {"CAPKIT_STORE_URL": f"sqlite:///{tmp_path / 'capkit.sqlite'}", "CAPKIT_RUNS_DIR": str(tmp_path / "runs"),
            "CAPKIT_DATABASE_URL": f"sqlite:///{tmp_path / 'service.sqlite'}", "CAPKIT_SEED_CONVERSATIONS": "200",
            "CAPKIT_RESPONSE_CACHE": "false", "CAPKIT_RATE_LIMIT_CHAT": "1000/minute", **model}


def _answer(path):
    return json.loads(path.read_text())


def _threshold(answer: dict, metric: str, level: str) -> dict:
    return next(t for t in answer["thresholds"] if t["metric"] == metric and t["severity"] == level)


def test_search_agrees_with_a_confirming_run_within_10_percent(tmp_path):
    env = _env(tmp_path, SLOTS)
    search = run_cli("run", "--search", "--budget", "100s", "--step-seconds", "8", *LOAD, "--json",
                     str(tmp_path / "search.json"), env=env, timeout=300)
    assert search.returncode == 0, search.stderr[-2000:]
    found = _answer(tmp_path / "search.json")
    p95 = _threshold(found, "Response time (p95)", "warning")
    slots = _threshold(found, "Model slots", "critical")
    assert p95["basis"] == "measured" and slots["basis"] == "measured", found
    assert (p95["high"] - p95["low"]) / 2 / p95["users"] <= 0.20  # honest, and not as wide as the axis
    assert found["binding"]["limit"] == "Model slots" and "One replica carries about" in search.stdout
    # confirm: six fixed steps of 9 s from 0.88× the lower answer to 1.12× the higher (p95 and the
    # slots), at the same settings
    lo, hi = min(p95["users"], slots["users"]), max(p95["users"], slots["users"])
    users = sorted({max(2, round(u)) for u in np.linspace(0.88 * lo, 1.12 * hi, 6)})
    stages = "0x4," + ",".join(f"{u}x9" for u in users)
    confirm = run_cli("run", "--stages", stages, "--warmup", "2", *LOAD, "--json", str(tmp_path / "confirm.json"),
                      env={**env, "CAPKIT_STORE_URL": f"sqlite:///{tmp_path / 'confirm.sqlite'}"}, timeout=300)
    assert confirm.returncode == 0, confirm.stderr[-2000:]
    from capkit import analysis as ca
    from capkit.analysis.answer.capacity import resource_capacity

    steps = valid_steps(resource_capacity(ca.read_run(f"sqlite:///{tmp_path / 'confirm.sqlite'}")).steps)
    truth_p95 = p95_crossing(steps, 500.0)  # a fit over all six steps: one step is one draw
    truth_slots = measured_crossing(steps["users"], steps["model_slots"], 0.95 * 8)
    print(f"search: p95 500 ms at {p95['users']:.1f} ({p95['low']:g}–{p95['high']:g}), slots at "
          f"{slots['users']:.1f}; confirming run: {truth_p95}, {truth_slots}")
    assert truth_p95 is not None and abs(p95["users"] - truth_p95.estimate) / truth_p95.estimate <= 0.10
    assert truth_slots is not None and truth_slots.low > 0, "the confirming steps do not bracket the slots' answer"
    assert abs(slots["users"] - truth_slots.estimate) / truth_slots.estimate <= 0.10


def test_a_cpu_heavy_configuration_binds_on_cpu(tmp_path):
    env = _env(tmp_path, CPU)
    proc = run_cli("run", "--search", "--budget", "45s", "--step-seconds", "6", *LOAD, "--json",
                   str(tmp_path / "a.json"), env=env, timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    answer = _answer(tmp_path / "a.json")
    assert answer["binding"]["limit"] == "CPU usage", answer["binding"]
    cpu = _threshold(answer, "CPU usage", "critical")
    assert cpu["basis"] == "measured" and math.isfinite(cpu["users"])


@pytest.mark.parametrize("args, needle", [
    (("--search", "--budget", "20s"), "too short"),
    (("--search", "--budget", "soon"), "not a duration"),
    (("--search", "--profile", "smoke"), "leave out --profile"),
    (("--budget", "3m"), "--budget goes with --search"),
    (("--target", "http://127.0.0.1:9", "--limit", "pool=10", "--stages", "0x2,1x2"), "no --metric pool=SERIES"),
    (("--target", "http://127.0.0.1:9", "--metric", "pool=x", "--limit", "pool=0", "--stages", "0x2,1x2"),
     "VALUE > 0")])
def test_bad_search_input_is_one_line_and_writes_nothing(tmp_path, args, needle):
    env = _env(tmp_path, {})
    proc = run_cli("run", *args, env=env, timeout=60)
    assert proc.returncode == 2
    assert_one_line_error(proc, needle)
    assert not (tmp_path / "capkit.sqlite").exists() and not (tmp_path / "runs").exists()
