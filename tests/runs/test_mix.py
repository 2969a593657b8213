"""--design mix against the real reference service: each step runs the users per class it was
given (checked on the measured per-endpoint throughput), and the demands fitted on it predict the
CPU of a mix it never ran, which a second run then measures (within 10 %).

Short steps (~90 s of load in all); the full-length comparison is `make bench`'s "mix prediction"."""

from __future__ import annotations

import json

from capkit.analysis.data.read import read_run
from capkit.analysis.data.steps import endpoint_table
from capkit.analysis.fits.demands import class_steps
from capkit.schemas import REFERENCE_CLASSES
from capkit.store import open_store
from tests.conftest import run_cli

# CPU-heavy chat (30 ms of CPU per answer, no token delay): CPU differs a lot between mixes
CPU = {"CAPKIT_MODEL_MAX_CONCURRENT": "64", "CAPKIT_MODEL_TOKENS": "10", "CAPKIT_MODEL_TOKEN_DELAY_MS": "0",
       "CAPKIT_MODEL_CPU_MS_PER_TOKEN": "3"}
BASE = "chat=4,analytics=1,ws=1"
NEW = "chat=1,analytics=2,ws=3"


def _env(tmp_path) -> dict:
    return {"CAPKIT_STORE_URL": f"sqlite:///{tmp_path / 'capkit.sqlite'}", "CAPKIT_RUNS_DIR": str(tmp_path / "runs"),
            "CAPKIT_DATABASE_URL": f"sqlite:///{tmp_path / 'service.sqlite'}", "CAPKIT_SEED_CONVERSATIONS": "200",
            "CAPKIT_RESPONSE_CACHE": "false", "CAPKIT_RATE_LIMIT_CHAT": "1000/minute", **CPU}


def _run_id(proc) -> str:
    line = next(li for li in proc.stdout.splitlines() if li.startswith("run ") and ": complete" in li)
    return line.split()[1].rstrip(":")


def test_mix_design_runs_its_mix_and_predicts_a_new_mix_within_10_percent(tmp_path):
    env = _env(tmp_path)
    # 8-s steps: with 5-s ones the prediction's interval was ±17 %, wider than the 10 % asked, and one
    # CI run measured 10.4 % off (inside that interval)
    design = run_cli("run", "--stages", "0x4,8x8,16x8", "--warmup", "2", "--design", "mix", "--mix", BASE,
                     "--think", "0.5,1.0", env=env, timeout=240)
    assert design.returncode == 0, design.stderr[-2000:]
    fit_id = _run_id(design)
    store = open_store(env["CAPKIT_STORE_URL"], create=False)
    run = read_run(store, fit_id)
    table = class_steps(run).set_index("step")
    assert len(table) == 9 and table["clean"].all(), table["flags"].tolist()
    # each step ran the users per class it was given ...
    for index, stage in enumerate(run.meta.spec.plan.stages):
        if stage.mix:
            shares = {c: table.loc[index, f"n_{c}"] / stage.users for c in stage.mix}
            for c, w in stage.mix.items():
                assert abs(shares[c] - w) <= 1.0 / stage.users, (index, c, shares, stage.mix)
    # ... and the requests show it: a class whose users the tilt at least doubles serves its largest
    # share of requests in its own step (chat's tilt, 4/6 → 5/6 of the users, is within the noise of
    # 5-s steps: its users per class are checked above)
    endpoints = endpoint_table(run.requests, run.steps, warmup_s=run.warmup_s)
    for level, steps in ((8, [1, 2, 3, 4]), (16, [5, 6, 7, 8])):
        for tilted, cls in zip(steps[1:], ("chat", "analytics", "ws"), strict=True):
            if table.loc[tilted, f"n_{cls}"] < 2 * table.loc[steps[0], f"n_{cls}"]:
                continue
            share = {}
            for s in steps:
                e = endpoints[endpoints["step"] == s]
                mine = e[e["name"].isin(REFERENCE_CLASSES[cls])]["rps"].sum()
                share[s] = mine / e[e["name"].isin(sum(REFERENCE_CLASSES.values(), ()))]["rps"].sum()
            assert max(share, key=share.get) == tilted, (level, cls, share)

    answer_path = tmp_path / "whatif.json"
    what_if = run_cli("what-if", fit_id, "--mix", NEW, "--users", "18", "--json", str(answer_path), env=env,
                      timeout=120)
    assert what_if.returncode == 0, what_if.stderr
    answer = json.loads(answer_path.read_text())
    assert answer["binding_limit"] == "cpu_cores" and answer["users_per_replica"] > 0
    predicted = next(r for r in answer["resources"] if r["resource"] == "cpu_cores")

    measure = run_cli("run", "--stages", "0x4,18x10", "--warmup", "3", "--mix", NEW, "--think", "0.5,1.0",
                      env=env, timeout=240)
    assert measure.returncode == 0, measure.stderr[-2000:]
    measured_table = class_steps(read_run(store, _run_id(measure))).set_index("step")
    assert measured_table.loc[1, "clean"], measured_table.loc[1, "flags"]
    measured = float(measured_table.loc[1, "cpu_cores"])
    off = abs(predicted["predicted"] - measured) / measured
    print(f"CPU for {NEW} at 18 users: predicted {predicted['predicted']:.3f} ({predicted['low']:.3f}–"
          f"{predicted['high']:.3f}), measured {measured:.3f}, {100 * off:.1f} % off")
    assert off <= 0.10, (predicted, measured)
    assert predicted["low"] <= measured <= predicted["high"], (predicted, measured)
