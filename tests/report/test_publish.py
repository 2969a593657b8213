"""`capkit report` (all pages in one kernel, --compare) and `capkit check` (CI gates) end to end."""

import xml.etree.ElementTree as ET

import psutil
import pytest

from capkit.analysis.present.sentences import regime_sentence
from capkit.errors import ReportError
from tests.conftest import FIXTURE_RUN, FIXTURE_RUN_B, FIXTURE_STORE, run_cli

PAGES = ("overview", "capacity_report", "scalability", "capacity_plan", "llm_serving", "comparison")


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    reports = tmp_path_factory.mktemp("reports")
    env = {"CAPKIT_STORE_URL": f"sqlite:///{FIXTURE_STORE}", "CAPKIT_REPORTS_DIR": str(reports)}
    proc = run_cli("report", FIXTURE_RUN, "--compare", FIXTURE_RUN_B, "--bootstrap", "50", env=env)
    return proc, reports / FIXTURE_RUN


def test_report_exits_zero_with_every_page(published):
    proc, folder = published
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().endswith("index.html")
    for page in PAGES:
        html = (folder / f"{page}.html").read_text()
        assert "from capkit import" not in html and "plan_for" not in html  # no code cells
        assert str(FIXTURE_STORE) not in html  # the store URL stays out of published pages
        assert str(FIXTURE_STORE) not in (folder / f"{page}.ipynb").read_text()
    assert not list(folder.glob(".merged*"))


def test_report_pages_carry_the_seed_tables(published):
    _, folder = published
    index = (folder / "index.html").read_text()
    assert "Consolidated results" in index and "Baseline Metrics" in index and "Chat API" in index
    assert "Backtest" in index and "p95 latency (ms)" in index
    assert "Per active user" in (folder / "capacity_report.html").read_text()
    plan = (folder / "capacity_plan.html").read_text()
    for needle in ("Scaling thresholds", "Scale out API replicas", "Replicas", "Recommendations", "Backtest"):
        assert needle in plan, needle
    scal = (folder / "scalability.html").read_text()
    assert "Universal Scalability Law" in scal and "σ (contention)" in scal
    # the page names the regime the fit of this run has (5 steps of the fixture: σ and κ within
    # noise of 0, so "linear"; the truth, σ 0.02 > κ 0.0005, would need more steps to show)
    from capkit import analysis as ca

    usl = ca.analyse_run(ca.read_run(f"sqlite:///{FIXTURE_STORE}", FIXTURE_RUN), ca.ReportParameters(bootstrap=50)).usl
    assert regime_sentence(usl).split(" (")[0] in scal.lower()
    assert "CPU per user" in (folder / "comparison.html").read_text()
    # the fixture run has no token timing: the LLM page says so instead of showing empty numbers
    assert "not measured (no token timing in this run)" in (folder / "llm_serving.html").read_text()
    tables = {p.name for p in (folder / "tables").glob("*.csv")}
    assert {"consolidated_results.csv", "baseline_metrics.csv", "scaling_thresholds.csv", "replicas.csv",
            "backtest_summary.csv", "comparison.csv", "endpoint_details.csv"} <= tables
    figures = {p.name.rsplit("-", 1)[0] for p in (folder / "figures").glob("*.png")}
    assert {"capacity_report", "scalability", "capacity_plan", "comparison"} <= figures


def test_unknown_compare_run_is_one_line_and_leaves_nothing(tmp_path):
    """The report kernel starts while the runs are checked: a failed check stops it and removes
    its folder, and the reports folder it had to create."""
    reports = tmp_path / "reports"
    env = {"CAPKIT_STORE_URL": f"sqlite:///{FIXTURE_STORE}", "CAPKIT_REPORTS_DIR": str(reports)}
    proc = run_cli("report", FIXTURE_RUN, "--compare", "nope", env=env, timeout=60)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [
        proc.stderr.strip()] and "'nope'" in proc.stderr
    assert not list(tmp_path.iterdir())
    assert [p.pid for p in psutil.process_iter() if str(reports) in _cwd(p)] == []  # no kernel left


def _cwd(proc) -> str:
    try:
        return proc.cwd()
    except psutil.Error:
        return ""


def test_wrong_parameter_type_fails_the_report_with_one_clear_message(tmp_path):
    from capkit.report.publish import publish_report

    with pytest.raises(ReportError) as err:
        publish_report(FIXTURE_RUN, store_url=f"sqlite:///{FIXTURE_STORE}", reports_dir=tmp_path,
                       overrides={"bootstrap": "high"}, notebooks=("overview.ipynb",))
    assert err.value.ename == "ParameterError" and "bootstrap='high'" in str(err.value)
    assert not (tmp_path / FIXTURE_RUN).exists()


def test_check_fails_on_a_capacity_regression_and_writes_junit(tmp_path):
    junit = tmp_path / "gates.xml"
    proc = run_cli("check", FIXTURE_RUN_B, "--store", f"sqlite:///{FIXTURE_STORE}", "--baseline", FIXTURE_RUN,
                   "--max-p95-ms", "5000", "--junit", str(junit), timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert "FAIL  regression_cpu_cores" in proc.stdout
    assert proc.stderr.strip().startswith("capkit: error: run fixture-run-b breached 1 gate(s)")
    suite = ET.parse(junit).getroot()
    assert suite.get("failures") == "1"
    assert [c.get("name") for c in suite.iter("testcase") if c.find("failure") is not None] == [
        "regression_cpu_cores"]


def test_check_passes_and_refuses_nonsense(tmp_path):
    store = f"sqlite:///{FIXTURE_STORE}"
    ok = run_cli("check", FIXTURE_RUN, "--store", store, "--max-p95-ms", "5000", "--min-capacity", "10",
                 timeout=120)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    bad = run_cli("check", FIXTURE_RUN, "--store", store, "--max-error-rate", "2", timeout=120)
    assert bad.returncode == 2 and "max_error_rate=2.0 makes no sense" in bad.stderr
    unknown = run_cli("check", "nope", "--store", store, "--junit", str(tmp_path / "j.xml"), timeout=120)
    assert unknown.returncode == 2 and "not in the results store" in unknown.stderr
    assert 'name="analysis"' in (tmp_path / "j.xml").read_text()


def test_two_kernels_started_together_keep_to_their_own_sockets(tmp_path):
    """Each report kernel has its own IPC socket path: two started at once by one process (the
    default relative ``kernel-ipc-<n>`` path was shared) each run their own notebook."""
    from concurrent.futures import ThreadPoolExecutor
    from pathlib import Path

    import nbformat

    from capkit.report.execute import execute_notebook
    from capkit.report.kernel import start_kernel, stop_kernel

    notebooks = []
    for name in ("a", "b"):
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_code_cell("name = None", metadata={"tags": ["parameters"]}),
                    nbformat.v4.new_code_cell("import os; print(name, os.getpid())")]
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(nb, tmp_path / f"{name}.ipynb")
        notebooks.append(tmp_path / f"{name}.ipynb")
    kms = [start_kernel(tmp_path, {}), start_kernel(tmp_path, {})]
    try:
        assert kms[0].ip != kms[1].ip and all(Path(km.ip).is_absolute() for km in kms)
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(lambda args: execute_notebook(args[0], args[0], {"name": args[0].stem}, km=args[1]),
                          zip(notebooks, kms)))
    finally:
        for km in kms:
            stop_kernel(km)
    printed = [nbformat.read(p, as_version=4).cells[-1].outputs[0]["text"].split() for p in notebooks]
    assert [p[0] for p in printed] == ["a", "b"] and printed[0][1] != printed[1][1]  # two kernels answered
    assert not [p for km in kms for p in Path(km.ip).parent.glob(Path(km.ip).name + "-*")]  # sockets removed
