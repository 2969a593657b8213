"""The whole analysis of a run: missing metrics, other collectors, too few steps, parameters, tables."""

import pandas as pd
import pytest

from capkit import analysis as ca
from capkit.analysis.present.export import export_tables
from capkit.analysis.present.sentences import result_summary
from capkit.errors import CapkitError, InsufficientDataError, ParameterError
from capkit.schemas import Interval, NotMeasured
from capkit.synthetic import SyntheticTruth
from tests.analysis.synth import run, store

SMALL = ca.ReportParameters(bootstrap=20)


def test_missing_metrics_show_not_measured_and_never_crash():
    st = store()
    truth = SyntheticTruth(baseline={"cpu_cores": 0.02}, per_user={"cpu_cores": 0.02}, noise={"cpu_cores": 0.01})
    r, _ = run(st, "cpu-only", truth, seed=8)
    p = ca.analyse_run(r, SMALL)
    base = p.resources.baseline.set_index("Resource")
    assert base.loc["Memory (MiB RSS)", "Max capacity"].startswith("not measured")
    assert base.loc["Redis memory (MiB)", "Max capacity"].startswith("not measured")
    assert p.thresholds_table().set_index("Metric").loc["Memory usage", "Warning at"].startswith("not measured")
    assert isinstance(p.resources.fits["rss_mib"], NotMeasured)
    assert p.resources.binding.resource == "cpu_cores"


def test_other_collectors_feed_the_canonical_resources():
    st = store()
    # the names capkit.metrics.postgres and capkit.metrics.redis_info write
    truth = SyntheticTruth(
        baseline={"cpu_cores": 0.02, "pg_backend_cpu_cores": 0.05, "redis_used_memory_mib": 10.0,
                  "redis_hits_per_s": 3.0, "redis_misses_per_s": 7.0},
        per_user={"cpu_cores": 0.02, "pg_backend_cpu_cores": 0.01, "redis_used_memory_mib": 0.5,
                  "redis_hits_per_s": 0.0, "redis_misses_per_s": 0.0},
        noise={"cpu_cores": 0.01, "pg_backend_cpu_cores": 0.005, "redis_used_memory_mib": 0.2,
               "redis_hits_per_s": 0.0, "redis_misses_per_s": 0.0},
        sources={"pg_backend_cpu_cores": "postgres", "redis_used_memory_mib": "redis", "redis_hits_per_s": "redis",
                 "redis_misses_per_s": "redis"})
    r, _ = run(st, "collectors", truth, seed=9)
    p = ca.analyse_run(r, SMALL)
    assert p.cache_hit_rate == pytest.approx(0.3)
    assert p.recommendations["Rule"].str.startswith("cache hit rate").any()
    assert p.resources.fits["redis_memory_mib"].per_user.estimate == pytest.approx(0.5, rel=0.1)
    db = p.thresholds_table().set_index("Metric").loc["DB CPU"]
    assert db["warning_low"] <= 55 <= db["warning_high"]  # (0.6 − 0.05) / 0.01 = 55 users


def test_too_few_clean_steps_is_a_clear_error_and_a_short_run_still_plans():
    st = store()
    r, _ = run(st, "one", SyntheticTruth(generator_cpu_per_user=1.0), users=(5, 10), seed=10)
    with pytest.raises(InsufficientDataError, match="1 clean step.*generator_saturated"):
        ca.analyse_run(r)
    r2, _ = run(st, "two", SyntheticTruth(), users=(5, 10), seed=10, start=1.8e9)
    p = ca.analyse_run(r2, SMALL)  # 3 clean steps (idle + 2): regressions yes, USL no
    assert p.usl is None and "usl" in p.errors and "backtest" in p.errors
    assert isinstance(p.errors["usl"], NotMeasured)
    from capkit.analysis import pages

    assert "not available" in pages.notes_md(p)


@pytest.mark.parametrize("params, needle", [
    ({"run_id": 3}, "run_id=3"), ({"criteria": {"level": 1.5}}, "level"), ({"cpu_cores": "two"}, "cpu_cores='two'"),
    ({"bootstrap": 2.5}, "bootstrap=2.5"), ({"criteria": {"cpu_shares": [0.9, 0.5]}}, "cpu_shares"),
    ({"criteria": {"p95_warning_ms": 3000.0, "p95_critical_ms": 2000.0}}, "p95 warning threshold"),
    ({"criteria": {"p95_ms": 300}}, "p95_ms"),
    ({"latency_warning_ms": 300}, "unknown report parameter(s) latency_warning_ms"),
    ({"think_time_s": 1.0}, "unknown report parameter(s) think_time_s"),
    ({"colour": "red"}, "unknown report parameter(s) colour")])
def test_wrong_parameters_are_one_clear_error(params, needle):
    with pytest.raises(ParameterError) as err:
        ca.ReportParameters.from_notebook(store_url="sqlite:///x", **params)
    assert needle in str(err.value) and "\n" not in str(err.value)
    assert isinstance(err.value, CapkitError)


def test_parameters_round_trip_through_a_notebook_dict():
    p = ca.ReportParameters(target_users=2000, criteria={"cpu_shares": (0.6, 0.8)})
    criteria = ca.ReportParameters().replace(criteria={}).criteria.model_dump(mode="json")
    assert p.overrides() == {"target_users": 2000.0, "criteria": {**criteria, "cpu_shares": [0.6, 0.8]}}
    assert ca.ReportParameters.from_notebook(**p.overrides()) == p


def test_summary_prints_the_answer_in_a_few_lines(result):
    text = result_summary(result)
    assert text.splitlines()[1].startswith("One replica carries about 4")  # CPU 90 % at 44 users, measured
    assert "cpu usage reaches 90 % of its limit (measured" in text and "CPU (cores)" in text and "USL" in text
    assert "Response time (p95) warning (500 ms)" in text
    assert len(text.splitlines()) < 30
    assert isinstance(result.resources.fits["cpu_cores"].capacity, Interval)


def test_export_tables(result, tmp_path):
    written = {p.name for p in export_tables(result, tmp_path)}
    assert {"consolidated_results.csv", "baseline_metrics.csv", "scaling_thresholds.csv", "replicas.csv",
            "recommendations.csv", "backtest_summary.csv", "usl.csv", "latency_crossings.csv"} <= written
    assert list(pd.read_csv(tmp_path / "consolidated_results.csv").columns)[:3] == [
        "Component", "Test scenario", "Throughput"]


def test_the_report_pages_show_the_capacities_the_terminal_and_the_csv_show(result, tmp_path):
    """The pages' Limits table once showed the fit's line (CPU "214 users (152–399)") where the
    terminal and baseline_metrics.csv showed the answer's (CPU "165 users (147–not reached)")."""
    from capkit.analysis.present import tables as display

    export_tables(result, tmp_path)
    csv = pd.read_csv(tmp_path / "baseline_metrics.csv").set_index("Resource")["Max capacity"]
    page = display.baseline_view(result).set_index("Resource")["Max capacity"]
    assert page.to_dict() == csv.to_dict()
    cpu = csv["CPU (cores)"]
    assert "measured" in cpu and cpu != result.resources.baseline.set_index("Resource").loc["CPU (cores)",
                                                                                              "Max capacity"]


def test_network_is_the_services_own_bytes_when_it_exports_them():
    """The loopback interface carries the database's and the collectors' traffic too: a service
    that counts its own response bytes (/metrics) is measured by those instead."""
    st = store()
    truth = SyntheticTruth(
        baseline={"cpu_cores": 0.02, "network_kbps": 500.0, "service_sent_bytes_per_s": 1024.0},
        per_user={"cpu_cores": 0.02, "network_kbps": 50.0, "service_sent_bytes_per_s": 2048.0},
        noise={"cpu_cores": 0.01, "network_kbps": 5.0, "service_sent_bytes_per_s": 50.0},
        sources={"service_sent_bytes_per_s": "prometheus"})
    r, _ = run(st, "own-bytes", truth, seed=13)
    fit = ca.analyse_run(r, SMALL).resources.fits["network_kbps"]
    assert fit.per_user.contains(2.0) and fit.baseline.contains(1.0)  # KB/s from the service's counter
