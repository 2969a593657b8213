"""Thresholds, replicas, recommendations, components, gates and bad input of the capacity plan."""

import math

import pandas as pd
import pytest

from capkit import analysis as ca
from capkit.errors import CapkitError, InsufficientDataError, ParameterError
from capkit.schemas import ResourceLimits
from capkit.synthetic import SyntheticTruth
from tests.analysis.synth import run, store


@pytest.fixture(scope="module")
def plan():
    st = store()
    truth = SyntheticTruth(endpoints={"POST /api/chat/message": 0.5, "GET /api/analytics/summary": 0.3,
                                      "GET /api/auth/validate": 0.1, "WS /api/ws/chat": 0.1},
                           rate_limited_share={"POST /api/chat/message": 0.05})
    r, _ = run(st, "p", truth, seed=5)
    return ca.capacity_plan(r, ResourceLimits(cpu_cores=1.0), bootstrap=50, target_users=100)


def test_scaling_thresholds_cross_where_the_truth_does(plan):
    t = plan.thresholds.set_index("Metric")
    # CPU truth 0.02 + 0.02 N: 70 % of 1 core at 34 users, 90 % at 44
    assert t.loc["CPU usage", "warning_low"] <= 34 <= t.loc["CPU usage", "warning_high"]
    assert t.loc["CPU usage", "critical_low"] <= 44 <= t.loc["CPU usage", "critical_high"]
    assert t.loc["DB CPU", "Warning at"] == "not measured"
    assert list(plan.thresholds["Action"])[0] == "Scale out API replicas"


def test_thresholds_that_make_no_sense_are_refused(plan):
    with pytest.raises(ParameterError, match="0 < warning < critical"):
        ca.scaling_thresholds(plan.report, cpu=(0.9, 0.7))
    with pytest.raises(ParameterError, match="two numbers"):
        ca.scaling_thresholds(plan.report, memory="high")


def test_replicas_with_headroom(plan):
    cpu = plan.report.fits["cpu_cores"]
    rp = ca.replicas_needed(plan.report, 100, headroom=1)
    assert rp.deciding.startswith("CPU")
    assert rp.replicas == math.ceil(100 / math.floor(cpu.capacity_low)) + 1
    assert "N+1" in rp.summary()
    with pytest.raises(ParameterError):
        ca.replicas_needed(plan.report, -5)


def test_consolidated_table_has_every_component(plan):
    table = plan.components.set_index("Component")
    assert list(table.index) == ["Chat API", "Analytics API", "Authentication", "WebSocket"]
    assert "429" in table.loc["Chat API", "Error rate"]
    assert table.loc["Authentication", "Status"].startswith("✅")


@pytest.mark.parametrize("name, component", [
    ("POST /api/chat/message", "chat"), ("POST /api/chat/stream", "chat"), ("chat: ttft", "chat"),
    ("ws: first token", "websocket"), ("ws: connect", "websocket"),
    ("GET /api/analytics/summary", "analytics"), ("POST /api/auth/token", "auth"),
    ("WS /api/ws/chat", "websocket"), ("websocket connect", "websocket"), ("GET /healthz", "other")])
def test_component_of(name, component):
    assert ca.component_of(name) == component


def test_derived_stream_rows_are_not_counted_as_requests():
    st = store()
    truth = SyntheticTruth(endpoints={"POST /api/chat/message": 0.5, "STREAM chat: tokens/s": 0.5})
    r, _ = run(st, "stream", truth, seed=12)
    rep = ca.capacity_report(r)
    table = ca.component_table(r.requests, r.steps, rep.steps, warmup_s=r.warmup_s)
    assert list(table["Component"]) == ["Chat API"]
    assert table["rps"].iloc[0] == pytest.approx(rep.steps["rps"].iloc[-1])


def test_recommendation_rules(plan):
    rules = plan.recommendations["Rule"].tolist()
    assert rules[0] == "binding constraint → its action"
    assert "CPU" in plan.recommendations["Finding"].iloc[0]
    assert any(r.startswith("429 share") for r in rules)


def test_generator_saturation_and_low_cache_hit_rate_rules():
    st = store()
    r, _ = run(st, "sat", SyntheticTruth(generator_cpu_per_user=0.04), seed=6)  # ≥ 0.9 cores from 25 users
    rep = ca.capacity_report(r)
    rec = ca.recommendations(rep, cache_hit_rate=0.2)
    assert "generator_saturated" in rep.steps.set_index("users").loc[25, "flags"]
    assert rec["Recommendation"].str.contains("--processes").any()
    assert rec["Recommendation"].str.contains("Cache").any()


def test_db_connections_near_the_limit_recommend_pooling():
    st = store()
    truth = SyntheticTruth()
    truth.per_user = dict(truth.per_user, db_connections=2.0)  # 51 of 60 connections at 25 users
    r, _ = run(st, "db", truth, seed=7)
    rec = ca.recommendations(ca.capacity_report(r, ResourceLimits(db_connections=60)))
    assert rec["Recommendation"].str.contains("PgBouncer").any()


def test_missing_metrics_show_not_measured_and_never_crash():
    st = store()
    truth = SyntheticTruth(baseline={"cpu_cores": 0.02}, per_user={"cpu_cores": 0.02}, noise={"cpu_cores": 0.01})
    r, _ = run(st, "cpu-only", truth, seed=8)
    p = ca.capacity_plan(r, bootstrap=20)
    base = p.report.baseline.set_index("Resource")
    assert base.loc["Memory (MiB RSS)", "Max capacity"] == "not measured"
    assert base.loc["Redis memory (MiB)", "Max capacity"] == "not measured"
    assert p.thresholds.set_index("Metric").loc["Memory usage", "Warning at"] == "not measured"
    assert p.report.binding.resource == "cpu_cores"


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
    p = ca.capacity_plan(r, bootstrap=20)
    assert p.cache_hit_rate == pytest.approx(0.3)
    assert p.recommendations["Rule"].str.startswith("cache hit rate").any()
    assert p.report.fits["redis_memory_mib"].per_user == pytest.approx(0.5, rel=0.1)
    db = p.thresholds.set_index("Metric").loc["DB CPU"]
    assert db["warning_low"] <= 55 <= db["warning_high"]  # (0.6 − 0.05) / 0.01 = 55 users


def test_too_few_clean_steps_is_a_clear_error_and_a_short_run_still_plans():
    st = store()
    r, _ = run(st, "one", SyntheticTruth(generator_cpu_per_user=1.0), users=(5, 10), seed=10)
    with pytest.raises(InsufficientDataError, match="1 clean step.*generator_saturated"):
        ca.capacity_plan(r)
    r2, _ = run(st, "two", SyntheticTruth(), users=(5, 10), seed=10, start=1.8e9)
    p = ca.capacity_plan(r2, bootstrap=20)  # 3 clean steps (idle + 2): regressions yes, USL no
    assert p.usl is None and "usl" in p.errors and "backtest" in p.errors
    assert "not available" in ca.notes_md(p)


@pytest.mark.parametrize("params, needle", [
    ({"run_id": 3}, "run_id=3"), ({"level": 1.5}, "level=1.5"), ({"cpu_cores": "two"}, "cpu_cores='two'"),
    ({"bootstrap": 2.5}, "bootstrap=2.5"), ({"cpu_thresholds": [0.9, 0.5]}, "cpu_thresholds"),
    ({"latency_warning_ms": 3000.0, "latency_critical_ms": 2000.0}, "p95 thresholds"),
    ({"think_time_s": -1}, "think_time_s=-1")])
def test_wrong_parameters_are_one_clear_error(params, needle):
    with pytest.raises(ParameterError) as err:
        ca.check_parameters(**{"store_url": "sqlite:///x", "run_id": "r", **params})
    assert needle in str(err.value) and "\n" not in str(err.value)
    assert isinstance(err.value, CapkitError)


def test_gates_and_junit(plan):
    results = ca.evaluate_gates(plan.report, ca.GateThresholds(max_p95_ms=1.0, min_capacity=10))
    by = {r.name: r for r in results}
    assert not by["p95"].passed and by["error_rate"].passed and by["capacity"].passed
    xml = ca.junit_xml(results)
    assert 'tests="3" failures="1"' in xml and "<failure" in xml
    with pytest.raises(ParameterError, match="max_error_rate"):
        ca.GateThresholds(max_error_rate=-0.1)


def test_regression_gate_fails_on_a_significant_capacity_loss():
    st = store()
    a, _ = run(st, "base", SyntheticTruth(), seed=1)
    worse = SyntheticTruth()
    worse.per_user = dict(worse.per_user, cpu_cores=0.03)
    b, _ = run(st, "cand", worse, seed=2, start=1.7e9 + 5000)
    ra, rb = ca.capacity_report(a), ca.capacity_report(b)
    by = {r.name: r for r in ca.evaluate_gates(rb, ca.GateThresholds(max_regression=0.1), baseline=ra)}
    assert not by["regression_cpu_cores"].passed and by["regression_cpu_cores"].value > 0.25
    assert by["regression_network_kbps"].passed
    same = {r.name: r for r in ca.evaluate_gates(ra, ca.GateThresholds(max_regression=0.1), baseline=ra)}
    assert all(r.passed for r in same.values() if r.name.startswith("regression"))


def test_export_plan_tables(plan, tmp_path):
    written = {p.name for p in ca.export_plan_tables(plan, tmp_path)}
    assert {"consolidated_results.csv", "baseline_metrics.csv", "scaling_thresholds.csv", "replicas.csv",
            "recommendations.csv", "backtest_summary.csv", "usl.csv", "latency_crossings.csv"} <= written
    assert list(pd.read_csv(tmp_path / "consolidated_results.csv").columns)[:3] == [
        "Component", "Test scenario", "Throughput"]


@pytest.mark.parametrize("draw", ["plot_resource_fits", "plot_usl", "plot_latency_model", "plot_backtest"])
def test_report_figures_are_drawn_once_when_shown(plan, draw):
    """IPython's post-execute hook (pyplot.draw_all) draws every stale figure, and Agg draws at
    once, just before the inline backend draws the same figure to show it: report figures come
    back up to date, so only the showing draws them. A later change marks them stale again."""
    import io

    import matplotlib
    import matplotlib.pyplot as plt

    from capkit.analysis import plots

    fig = getattr(plots, draw)(plan.report if draw == "plot_resource_fits" else plan)
    draws = []
    fig.canvas.mpl_connect("draw_event", draws.append)
    interactive = matplotlib.is_interactive()
    matplotlib.interactive(True)  # as in a notebook once the inline backend is active
    try:
        plt.draw_all()
        assert draws == []
        fig.savefig(io.BytesIO(), format="png")  # what showing it does
        assert len(draws) == 1
        fig.axes[0].set_xlim(0, 10)
        plt.draw_all()
        assert len(draws) == 2
    finally:
        matplotlib.interactive(interactive)
        plt.close(fig)
