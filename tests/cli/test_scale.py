"""`capkit scale` end to end: a real store, the real CLI in a subprocess, the Scaling plan page executed
by papermill (once, shared by the module), manifests that validate against the Kubernetes schemas;
bad input is one line, exit 2, and writes nothing."""

import json

import pytest
import yaml

from capkit.cli import main
from capkit.schemas import stepped
from capkit.store import open_store
from capkit.synthetic import SyntheticTruth, write_synthetic_run
from tests.conftest import assert_one_line_error, run_cli

CPU_RUN, SHORT_RUN = "cpu-run", "short-run"


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A store with two seeded synthetic runs: CPU 0.02 + 0.02·N of 1 core reaching its critical 90 % at
    44 users between steps of 40 and 50 (measured); and one of 2–6 users, far from every limit."""
    folder = tmp_path_factory.mktemp("scale")
    url = f"sqlite:///{folder / 'capkit.sqlite'}"
    st = open_store(url)
    write_synthetic_run(st, CPU_RUN, plan=stepped([5, 10, 20, 30, 40, 50], idle_s=20, step_s=20, warmup_s=2),
                        truth=SyntheticTruth(), seed=5)
    write_synthetic_run(st, SHORT_RUN, plan=stepped([2, 4, 6], idle_s=20, step_s=20, warmup_s=2),
                        truth=SyntheticTruth(), seed=6, start=1.7e9 + 3600)
    st.engine.dispose()
    return folder, url


@pytest.fixture(scope="module")
def scaled(store):
    folder, url = store
    reports = folder / "reports"
    (reports / CPU_RUN).mkdir(parents=True)
    (reports / CPU_RUN / "index.html").write_text("the run's report<h2>Pages</h2><ul><li>…</li></ul>")  # it stays
    env = {"CAPKIT_STORE_URL": url, "CAPKIT_REPORTS_DIR": str(reports)}
    proc = run_cli("scale", CPU_RUN, "--peak-users", "300", "--growth", "1.3", "--replica-cost", "0.1",
                   "--json", str(folder / "plan.json"), "--bootstrap", "50", env=env)
    return proc, reports / CPU_RUN, folder / "plan.json"


def test_scale_prints_the_plan_and_writes_json_manifests_and_page(scaled):
    proc, out, json_path = scaled
    assert proc.returncode == 0, proc.stderr[-2000:]
    doc = json.loads(json_path.read_text())
    assert doc["run_id"] == CPU_RUN and doc["signal"] == "cpu" and doc["headroom"] == 1
    assert doc["peak_users"] == pytest.approx(390)
    assert doc["replicas_at_peak"] == -(-390 // doc["users_per_replica"]) + 1
    assert doc["replicas_for_risk"] >= doc["replicas_at_peak"] - 1
    assert doc["minutes_over_p95_warning"] is not None and doc["replica_hours"] > 0
    assert doc["cost"] == pytest.approx(0.1 * doc["replica_hours"])
    assert doc["static"]["replica_hours"] == pytest.approx(24 * doc["replicas_at_peak"])
    assert sorted(p.rsplit("/", 1)[1] for p in doc["manifests"]) == ["deployment.yaml", "hpa.yaml"]
    assert f"One replica carries {doc['users_per_replica']} users" in proc.stdout
    assert "Scale on cpu: CPU binds" in proc.stdout
    assert proc.stdout.strip().splitlines()[-1] == f"page: {out / 'scaling_plan.html'}"
    assert (out / "index.html").read_text() == ("the run's report<h2>Pages</h2><ul><li><a href=\"scaling_plan.html\">"
                                                "Scaling plan</a></li><li>…</li></ul>")  # linked, the rest kept


def test_the_manifests_validate_and_carry_the_plan(scaled):
    import kubernetes_validate

    _, out, json_path = scaled
    doc = json.loads(json_path.read_text())
    objects = {p.name: yaml.safe_load(p.read_text()) for p in (out / "k8s").glob("*.yaml")}
    for obj in objects.values():
        kubernetes_validate.validate(obj, "1.30", strict=True)
    hpa, dep = objects["hpa.yaml"], objects["deployment.yaml"]
    assert hpa["spec"]["minReplicas"] == 2 and hpa["spec"]["maxReplicas"] == doc["max_replicas"]
    metric = hpa["spec"]["metrics"][0]
    assert metric["resource"]["name"] == "cpu"
    assert metric["resource"]["target"]["averageUtilization"] == round(doc["target_value"])
    resources = dep["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert resources["limits"] == {"cpu": "1000m", "memory": "1024Mi"}
    assert resources["requests"]["cpu"].endswith("m")


def test_the_page_reads_without_code(scaled):
    _, out, _ = scaled
    html = (out / "scaling_plan.html").read_text()
    for needle in ("Scaling plan", "Over the day", "Autoscaled against static", "CPU binds", "replica-hours"):
        assert needle in html, needle
    assert "from capkit" not in html and "pages.scaling" not in html
    assert (out / "figures" / "scaling_plan.png").exists()
    assert (out / "tables" / "scaling_timeline.csv").exists()
    assert not list(out.parent.glob(".report-*")) and not list(out.glob(".k8s-*"))


@pytest.mark.parametrize("args, needle", [
    (["--traffic", "{missing_columns}"], "needs the columns time,users"),
    (["--traffic", "{negative}"], "users must be numbers ≥ 0; row 3 has -5"),
    (["--headroom", "2"], "headroom '2' is not of the form N+k"),
    (["--traffic", "{negative}", "--peak-users", "10"], "not both"),
])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(store, tmp_path, capsys, monkeypatch, args, needle):
    _, url = store
    (tmp_path / "cols.csv").write_text("time,load\n0,5\n")
    (tmp_path / "neg.csv").write_text("time,users\n0,5\n60,-5\n")
    args = [a.format(missing_columns=tmp_path / "cols.csv", negative=tmp_path / "neg.csv") for a in args]
    monkeypatch.setenv("CAPKIT_STORE_URL", url)
    monkeypatch.setenv("CAPKIT_REPORTS_DIR", str(tmp_path / "reports"))
    code = main(["scale", CPU_RUN, "--json", str(tmp_path / "plan.json"), "--no-page", *args])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and err.startswith("capkit: error: ") and needle in err, err
    assert not (tmp_path / "reports").exists() and not (tmp_path / "plan.json").exists()


def test_a_run_without_measured_capacity_says_why_and_gives_no_count(store, tmp_path):
    _, url = store
    env = {"CAPKIT_STORE_URL": url, "CAPKIT_REPORTS_DIR": str(tmp_path / "reports")}
    proc = run_cli("scale", SHORT_RUN, "--json", str(tmp_path / "plan.json"), "--no-page", "--bootstrap", "50",
                   env=env, timeout=120)
    assert proc.returncode == 2
    assert_one_line_error(proc, "capacity per replica not measured (")
    assert "replicas" not in proc.stdout
    assert not (tmp_path / "reports").exists() and not (tmp_path / "plan.json").exists()
