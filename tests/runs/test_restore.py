"""`capkit load RUN_DIR`: raw files rebuild the stored run exactly; bad folders are refused whole."""

import json

import pytest

from capkit.schemas import RunSpec, stepped
from capkit.store import open_store
from capkit.synthetic import SyntheticTruth, synthetic_records
from tests.conftest import run_cli


def _raw_run(folder, *, end=True):
    plan = stepped([3, 6], idle_s=6, step_s=6, warmup_s=1)
    load, samples = synthetic_records(plan, SyntheticTruth(), seed=2)
    if not end:
        load = [r for r in load if r["type"] != "end"]
    folder.mkdir(parents=True)
    (folder / "run.json").write_text(RunSpec(run_id="raw-run", target="http://x", plan=plan).model_dump_json())
    (folder / "load.jsonl").write_text("".join(json.dumps(r) + "\n" for r in load) + '{"type": "req", "ts"')
    (folder / "resources.jsonl").write_text("".join(json.dumps(r) + "\n" for r in samples))
    return load, samples


def test_load_rebuilds_the_run(tmp_path):
    load, samples = _raw_run(tmp_path / "raw-run")
    env = {"CAPKIT_STORE_URL": f"sqlite:///{tmp_path / 'store.sqlite'}"}
    proc = run_cli("load", str(tmp_path / "raw-run"), env=env)
    assert proc.returncode == 0, proc.stderr
    assert "loaded run raw-run (complete): 3 steps" in proc.stdout
    store = open_store(env["CAPKIT_STORE_URL"], create=False)
    assert store.get_run("raw-run").status == "complete"
    assert store.steps("raw-run")["users"].tolist() == [0, 3, 6]
    assert store.count("request_stats", "raw-run") == sum(r["type"] == "req" for r in load)  # torn line skipped
    assert store.count("resource_samples", "raw-run") == len(samples)
    again = run_cli("load", str(tmp_path / "raw-run"), env=env)
    assert again.returncode == 2 and "--replace" in again.stderr
    assert run_cli("load", str(tmp_path / "raw-run"), "--replace", env=env).returncode == 0
    assert store.count("resource_samples", "raw-run") == len(samples)


def test_a_run_without_its_end_is_loaded_as_incomplete(tmp_path):
    _raw_run(tmp_path / "raw-run", end=False)
    env = {"CAPKIT_STORE_URL": f"sqlite:///{tmp_path / 'store.sqlite'}"}
    assert run_cli("load", str(tmp_path / "raw-run"), env=env).returncode == 0
    run = open_store(env["CAPKIT_STORE_URL"], create=False).get_run("raw-run")
    assert run.status == "incomplete" and "end record" in run.reason


@pytest.mark.parametrize("damage, needle", [("missing", "is not a folder"), ("empty", "holds no capkit run"),
                                            ("spec", "not a capkit run spec")])
def test_bad_folders_are_refused_before_anything_is_written(tmp_path, damage, needle):
    folder = tmp_path / "raw-run"
    if damage != "missing":
        folder.mkdir()
    if damage == "spec":
        (folder / "run.json").write_text('{"not": "a spec"}')
        (folder / "load.jsonl").write_text("")
    proc = run_cli("load", str(folder), env={"CAPKIT_STORE_URL": f"sqlite:///{tmp_path / 'store.sqlite'}"})
    assert proc.returncode == 2 and needle in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "store.sqlite").exists()
