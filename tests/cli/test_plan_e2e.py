"""`capkit plan --profile smoke` end to end: real service, real Locust, real store, real papermill."""

import json
import os
import sqlite3
import subprocess

import psutil
import pytest

from capkit.store import open_store
from tests.conftest import run_cli


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("plan")
    env = {"CAPKIT_STORE_URL": f"sqlite:///{work / 'capkit.sqlite'}", "CAPKIT_RUNS_DIR": str(work / "runs"),
           "CAPKIT_REPORTS_DIR": str(work / "reports"), "CAPKIT_DATABASE_URL": f"sqlite:///{work / 'service.sqlite'}"}
    before = {p.pid for p in psutil.Process(os.getpid()).children(recursive=True)}
    # a planning bound other than the default: `capkit report` must read it back from the run
    proc = run_cli("plan", "--profile", "smoke", "--p95-ms", "300", env=env, timeout=240)
    leftovers = [p for p in psutil.process_iter(["cmdline"])
                 if str(work) in " ".join(p.info["cmdline"] or []) and p.pid not in before]
    return work, proc, leftovers


def test_plan_exits_zero_and_prints_the_table(smoke_run):
    work, proc, _ = smoke_run
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout
    assert "step 1/6 · 0 users" in out and "req/s" in out and "p95" in out
    header = next(line for line in out.splitlines() if line.startswith("Resource "))
    assert header.split() == ["Resource", "Baseline", "(idle)", "Per", "active", "user", "Max", "capacity"]
    assert "\nCPU (cores) " in out
    # the answer: measured or projected near the smoke steps, else it says it was not measured
    assert "One replica carries about " in out or "Capacity per replica not measured" in out
    assert "|" not in header and "nan" not in out and "inf " not in out
    assert "report: " in out and out.strip().endswith("index.html")


def test_steps_are_stored_and_cpu_rises_with_users(smoke_run):
    work, proc, _ = smoke_run
    store = open_store(f"sqlite:///{work / 'capkit.sqlite'}", create=False)
    run = store.list_runs().iloc[0]
    assert run["status"] == "complete"
    steps = store.steps(run["run_id"])
    assert steps["users"].tolist() == [0, 4, 8, 12, 16, 20]
    assert steps["complete"].astype(bool).all()
    from capkit import analysis as ca
    from capkit.analysis.answer.capacity import resource_capacity

    report = resource_capacity(ca.read_run(store, run["run_id"]))
    user_steps = report.steps[report.steps["users"] > 0]
    assert user_steps["requests"].gt(0).all()
    idle_cpu = report.steps.loc[report.steps["users"] == 0, "cpu_cores"].iloc[0]
    assert user_steps["cpu_cores"].iloc[-1] > idle_cpu
    assert report.fits["cpu_cores"].per_user.estimate > 0
    assert report.fits["cpu_cores"].significant  # the interval of 5 user steps and the idle one excludes 0
    store.engine.dispose()


def test_report_files_exist_and_carry_the_table(smoke_run):
    work, proc, _ = smoke_run
    run_id = sqlite3.connect(work / "capkit.sqlite").execute("select run_id from runs").fetchone()[0]
    folder = work / "reports" / run_id
    index = (folder / "index.html").read_text()
    assert "Baseline Metrics" in index and "CPU (cores)" in index
    page = (folder / "capacity_report.html").read_text()
    assert "Per active user" in page and "from capkit import" not in page  # no code cells
    for html_page in folder.glob("*.html"):
        text = html_page.read_text()
        assert "PosixPath" not in text and "Traceback" not in text, html_page.name
    assert (folder / "tables" / "baseline_metrics.csv").exists()
    assert list((folder / "figures").glob("*.png"))
    assert (work / "runs" / run_id / "load.jsonl").exists()


def test_the_baseline_table_and_the_answer_read_a_pool_at_the_same_crossing(smoke_run):
    """A pool fills along a curve and stays full: the Baseline Metrics table reads it where the
    answer and the thresholds do, at its critical share, not at a size it only approaches."""
    import pandas as pd

    work, proc, _ = smoke_run
    run_id = sqlite3.connect(work / "capkit.sqlite").execute("select run_id from runs").fetchone()[0]
    folder = work / "reports" / run_id
    answer = json.loads((folder / "tables" / "capacity.json").read_text())
    baseline = pd.read_csv(folder / "tables" / "baseline_metrics.csv").set_index("Resource")
    slots = next(t for t in answer["thresholds"] + answer["not_measured"]
                 if t["metric"] == "Model slots" and t["severity"] == "critical")
    text = baseline.loc["Model slots (in use)", "Max capacity"]
    if slots.get("users") is None:
        assert "users" not in text.split(" at ")[0], text
    else:
        assert text.startswith(f"{slots['users']:,.0f} users") and "(95 %)" in text, (text, slots)


def _published_p95(folder) -> dict:
    answer = json.loads((folder / "tables" / "capacity.json").read_text())
    criteria = json.loads((folder / "tables" / "criteria.json").read_text())
    p95 = {t["severity"]: t["value"] for t in answer["thresholds"] + answer["not_measured"]
           if t["metric"] == "Response time (p95)" and "value" in t}
    return {"criteria": (criteria["p95_warning_ms"], criteria["p95_critical_ms"]), "thresholds": p95}


def test_report_reads_the_runs_own_criteria_and_takes_the_same_flags(smoke_run):
    """`capkit plan --p95-ms 300` then `capkit report`: the report judges by 300 ms, the run's own
    criteria; `capkit report --p95-ms 250` overrides them for that report only."""
    work, proc, _ = smoke_run
    assert proc.returncode == 0, proc.stderr[-2000:]
    run_id = sqlite3.connect(work / "capkit.sqlite").execute("select run_id from runs").fetchone()[0]
    folder = work / "reports" / run_id
    assert _published_p95(folder) == {"criteria": (300.0, 2000.0), "thresholds": {"warning": 300.0,
                                                                                  "critical": 2000.0}}
    env = {"CAPKIT_STORE_URL": f"sqlite:///{work / 'capkit.sqlite'}", "CAPKIT_REPORTS_DIR": str(work / "again")}
    again = run_cli("report", "--bootstrap", "20", env=env, timeout=240)
    assert again.returncode == 0, again.stderr[-2000:]
    assert _published_p95(work / "again" / run_id)["criteria"] == (300.0, 2000.0)
    other = run_cli("report", run_id, "--bootstrap", "20", "--p95-ms", "250", env=env, timeout=240)
    assert other.returncode == 0, other.stderr[-2000:]
    assert _published_p95(work / "again" / run_id)["thresholds"]["warning"] == 250.0
    bad = run_cli("report", run_id, "--p95-ms", "2500", env=env)
    assert bad.returncode != 0 and "below the critical one" in bad.stderr and "Traceback" not in bad.stderr


def test_no_token_reaches_the_store_or_the_run_files(smoke_run):
    work, _, _ = smoke_run
    found = subprocess.run(["grep", "-rlaE", "eyJ[A-Za-z0-9_-]{10,}\\.eyJ", str(work / "runs"), str(work / "reports"),
                            str(work / "capkit.sqlite")], capture_output=True, text=True)
    assert found.stdout == ""  # no JWT in the raw files, logs, store or report


def test_nothing_is_left_running(smoke_run):
    _, _, leftovers = smoke_run
    assert leftovers == []
