"""`capkit import locust-csv`: a real Locust CSV round-trips; foreign or truncated CSVs are refused."""

from __future__ import annotations

import csv
import subprocess
import sys

import pytest

from capkit import analysis as ca
from capkit.analysis.data.steps import summarize_steps
from capkit.runs.locust_csv import infer_steps
from capkit.store import open_store
from tests.conftest import run_cli

SHAPED = '''
from locust import FastHttpUser, LoadTestShape, between, task


class Plain(FastHttpUser):
    wait_time = between(0.02, 0.05)

    @task
    def health(self):
        self.client.get("/healthz", name="GET /healthz")

    @task
    def missing(self):
        self.client.get("/no-such-page", name="GET /no-such-page")  # 404: Locust failures


class Steps(LoadTestShape):
    def tick(self):
        t = self.get_run_time()
        for end, users in ((5, 2), (10, 4)):
            if t < end:
                return users, 50
        return None
'''


@pytest.fixture
def env(tmp_path):
    return {"CAPKIT_STORE_URL": f"sqlite:///{tmp_path / 'capkit.sqlite'}", "CAPKIT_RUNS_DIR": str(tmp_path / "runs")}


@pytest.fixture
def locust_csv(reference_service, tmp_path):
    svc = reference_service()
    (tmp_path / "shaped.py").write_text(SHAPED)
    prefix = tmp_path / "out" / "run"
    prefix.parent.mkdir()
    proc = subprocess.run([sys.executable, "-m", "locust", "-f", str(tmp_path / "shaped.py"), "--headless",
                           "--host", svc.url, "--csv", str(prefix), "--csv-full-history", "--only-summary"],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path, start_new_session=True)
    assert proc.returncode in (0, 1), proc.stderr[-2000:]  # 1: Locust saw failures (the 404s)
    return prefix


def _locust_totals(prefix):
    rows = {r["Name"]: r for r in csv.DictReader(open(f"{prefix}_stats.csv"))}
    return rows


def test_locust_csv_round_trips(locust_csv, env, tmp_path):
    proc = run_cli("import", "locust-csv", str(locust_csv), env=env)
    assert proc.returncode == 0, proc.stderr
    assert "(users 2, 4)" in proc.stdout
    store = open_store(env["CAPKIT_STORE_URL"], create=False)
    data = ca.read_run(store)
    store.engine.dispose()
    assert data.meta.scenario == "locust-csv" and data.meta.status == "complete"
    assert data.steps["users"].tolist() == [2, 4]
    totals = _locust_totals(locust_csv)
    req = data.requests
    for name in ("GET /healthz", "GET /no-such-page"):
        r = req[req["name"] == name]
        assert r["count"].sum() == int(totals[name]["Request Count"])
        assert r["failures"].sum() == int(totals[name]["Failure Count"])
        mean = r["latency_sum_ms"].sum() / r["count"].sum()
        assert mean == pytest.approx(float(totals[name]["Average Response Time"]), rel=0.01)
    steps = summarize_steps(data.steps, data.requests, data.samples, warmup_s=data.warmup_s)
    assert steps["rps"].iloc[1] > steps["rps"].iloc[0] > 0  # 4 users do more than 2
    assert steps["p95_ms"].notna().all() and (steps["p95_ms"] >= steps["p50_ms"]).all()
    assert steps["error_rate"].between(0.3, 0.7).all()

    # the same CSV cut short is refused before anything is written (another store)
    cut = tmp_path / "cut"
    cut.mkdir()
    check_truncated_csv_is_refused(locust_csv, {**env, "CAPKIT_STORE_URL": f"sqlite:///{cut / 'capkit.sqlite'}"}, cut)


def _refused(proc, env, tmp_path, *needles):
    assert proc.returncode != 0
    err = proc.stderr.strip()
    assert len(err.splitlines()) == 1 and err.startswith("capkit: error: ") and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err
    assert not (tmp_path / "capkit.sqlite").exists()  # refused before the store was touched


def check_truncated_csv_is_refused(locust_csv, env, tmp_path):
    path = tmp_path / "cut_stats_history.csv"
    text = open(f"{locust_csv}_stats_history.csv").read()
    path.write_text(text[: len(text) - 7])
    _refused(run_cli("import", "locust-csv", str(tmp_path / "cut"), env=env), env, tmp_path, "truncated")
    lines = text.splitlines()
    path.write_text("\n".join(lines[:-1] + [",".join(lines[-1].split(",")[:5])]) + "\n")
    _refused(run_cli("import", "locust-csv", str(tmp_path / "cut"), env=env), env, tmp_path, "fields")


@pytest.mark.parametrize("content, needle", [
    ("a,b,c\n1,2,3\n", "not a Locust stats history CSV"),
    ("", "empty"),
])
def test_foreign_csv_is_refused(env, tmp_path, content, needle):
    (tmp_path / "x_stats_history.csv").write_text(content)
    _refused(run_cli("import", "locust-csv", str(tmp_path / "x"), env=env), env, tmp_path, needle)


def test_missing_csv_is_refused(env, tmp_path):
    _refused(run_cli("import", "locust-csv", str(tmp_path / "nope"), env=env), env, tmp_path, "does not exist")


def test_steps_from_user_counts():
    series = [(t, u) for t, u in [(0, 0), (1, 0), (2, 0), (3, 2), (4, 4), (5, 5), (6, 5), (7, 5), (8, 5),
                                  (9, 7), (10, 10), (11, 10), (12, 10), (13, 10), (14, 0)]]
    steps = infer_steps(series, 3)
    assert [(s["users"], s["started_at"], s["ended_at"]) for s in steps] == [(0, 0, 3), (5, 3, 9), (10, 9, 14)]
