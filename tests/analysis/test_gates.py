"""CI gates: pass/fail, JUnit XML, a significant capacity loss, and failing closed."""

import pytest

from capkit.analysis.answer.capacity import resource_capacity
from capkit.analysis.answer.gates import GateThresholds, evaluate_gates, junit_xml
from capkit.errors import ParameterError
from capkit.synthetic import SyntheticTruth
from tests.analysis.synth import run, store


def test_gates_and_junit(result):
    results = evaluate_gates(result.resources, GateThresholds(max_p95_ms=1.0, min_capacity=10))
    by = {r.name: r for r in results}
    assert not by["p95"].passed and by["error_rate"].passed and by["capacity"].passed
    xml = junit_xml(results)
    assert 'tests="3" failures="1"' in xml and "<failure" in xml
    with pytest.raises(ParameterError, match="max_error_rate"):
        GateThresholds(max_error_rate=-0.1)


def test_regression_gate_fails_on_a_significant_capacity_loss():
    st = store()
    a, _ = run(st, "base", SyntheticTruth(), seed=1)
    worse = SyntheticTruth()
    worse.per_user = dict(worse.per_user, cpu_cores=0.03)
    b, _ = run(st, "cand", worse, seed=2, start=1.7e9 + 5000)
    ra, rb = resource_capacity(a), resource_capacity(b)
    by = {r.name: r for r in evaluate_gates(rb, GateThresholds(max_regression=0.1), baseline=ra)}
    assert not by["regression_cpu_cores"].passed and by["regression_cpu_cores"].value > 0.25
    assert by["regression_network_kbps"].passed
    same = {r.name: r for r in evaluate_gates(ra, GateThresholds(max_regression=0.1), baseline=ra)}
    assert all(r.passed for r in same.values() if r.name.startswith("regression"))
