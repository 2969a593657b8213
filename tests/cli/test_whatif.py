"""`capkit what-if` on stored known-truth runs: the answer (text and --json) for a mix never run,
and bad input as one line, exit 2, nothing written."""

from __future__ import annotations

import json

import pytest

from capkit.analysis.answer.whatif import mix_design
from capkit.schemas import StagePlan
from capkit.store import open_store
from capkit.synthetic.mix import MixTruth, write_mix_run
from tests.conftest import assert_one_line_error, run_cli

BASE = {"chat": 4, "analytics": 1, "auth": 1, "ws": 1}


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    folder = tmp_path_factory.mktemp("whatif")
    url = f"sqlite:///{folder / 'capkit.sqlite'}"
    store = open_store(url)
    write_mix_run(store, "design", mix_design(StagePlan.parse("0x20,15x20,30x20", warmup_s=3), BASE), MixTruth(),
                  seed=2, default_mix=BASE)
    write_mix_run(store, "fixed", StagePlan.parse("0x20,10x20,20x20,30x20,40x20", warmup_s=3), MixTruth(),
                  seed=2, default_mix=BASE, start=1.8e9)
    return folder, {"CAPKIT_STORE_URL": url}


def test_what_if_answers_for_a_mix_never_run(stored, tmp_path):
    _, env = stored
    out = tmp_path / "a" / "whatif.json"
    proc = run_cli("what-if", "design", "--mix", "chat=8,analytics=1,ws=2", "--users", "40", "--json", str(out),
                   env=env)
    assert proc.returncode == 0, proc.stderr
    assert "binding limit: CPU" in proc.stdout
    answer = json.loads(out.read_text())
    # 40 users from a run whose clean steps carried at most 30: beyond 1.25×, so extrapolated
    assert answer["measured_users"] == 30 and answer["basis"] == "extrapolated"
    assert "extrapolated from per-class demands: beyond 1.25× the 30 users the run measured" in proc.stdout
    want = "projected" if answer["users_per_replica"] <= 1.25 * 30 else "extrapolated"
    assert answer["users_per_replica_basis"] == want
    assert f"{answer['users_per_replica']:,.0f} (plan; mean" in proc.stdout and f", {want}" in proc.stdout
    assert answer["binding_limit"] == "cpu_cores" and answer["users_per_replica"] > 0
    cpu = next(r for r in answer["resources"] if r["resource"] == "cpu_cores")
    assert cpu["low"] < cpu["predicted"] < cpu["high"] and cpu["limit"] == 1.0
    truth = MixTruth()
    true = truth.cpu({c: 40 * w / 11 for c, w in {"chat": 8, "analytics": 1, "ws": 2}.items()})
    assert cpu["low"] <= true <= cpu["high"]
    by_rate = run_cli("what-if", "design", "--mix", "chat=8,analytics=1,ws=2", "--rate", f"{answer['rate']:.6f}",
                      env=env)
    assert by_rate.returncode == 0 and f"{answer['users']:,.1f} users" in by_rate.stdout, by_rate.stdout


@pytest.mark.parametrize("run_id, mix, needle", [
    ("design", "chat=1,video=2", "unknown class video"),
    ("design", "chat=0,analytics=0", "sum to zero"),
    ("design", "chat=x", "not CLASS=WEIGHT"),
    ("fixed", "chat=1,analytics=5", "no mix variation"),
])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(stored, tmp_path, run_id, mix, needle):
    _, env = stored
    out = tmp_path / "whatif.json"
    proc = run_cli("what-if", run_id, "--mix", mix, "--json", str(out), env=env)
    assert proc.returncode == 2
    assert_one_line_error(proc, needle)
    assert not out.exists()


@pytest.mark.parametrize("args, needle", [
    (("--search", "--design", "mix"), "fixed grid"),
    (("--stages", "0x5,10x5", "--design", "mix", "--mix", "chat=1"), "two or more classes"),
    (("--stages", "0x5,r10x5", "--design", "mix"), "not arrival rates"),
])
def test_bad_design_input_is_one_line_before_any_load(tmp_path, args, needle):
    env = {"CAPKIT_STORE_URL": f"sqlite:///{tmp_path / 'capkit.sqlite'}", "CAPKIT_RUNS_DIR": str(tmp_path / "runs")}
    proc = run_cli("run", *args, env=env, timeout=60)
    assert proc.returncode == 2
    assert_one_line_error(proc, needle)
    assert not (tmp_path / "runs").exists()


def test_what_if_within_the_measured_load_is_projected(stored, tmp_path):
    _, env = stored
    out = tmp_path / "w.json"
    proc = run_cli("what-if", "design", "--mix", "chat=8,analytics=1,ws=2", "--users", "25", "--json", str(out),
                   env=env)
    assert proc.returncode == 0, proc.stderr
    answer = json.loads(out.read_text())
    assert answer["basis"] == "projected" and "— projected from per-class demands;" in proc.stdout
