"""Decisions fail closed: a gate with nothing measured behind it fails with its reason, never passes."""

from dataclasses import replace

from capkit.analysis.answer.capacity import resource_capacity
from capkit.analysis.answer.gates import GateThresholds, evaluate_gates
from capkit.schemas import NotMeasured
from capkit.synthetic import SyntheticTruth
from tests.analysis.synth import run, store


def _resources(truth=None, seed=21, **kw):
    r, _ = run(store(), "r", truth or SyntheticTruth(), seed=seed, **kw)
    return resource_capacity(r)


def test_the_capacity_gate_fails_when_no_resource_was_fitted():
    """Today's code passed it (capacity = inf) when nothing limits: now "not measured", failing."""
    res = _resources()
    bare = replace(res, fits={name: NotMeasured("not in this run") for name in res.fits})
    (gate,) = evaluate_gates(bare, GateThresholds(max_p95_ms=None, max_error_rate=None, min_capacity=10))
    assert not gate.passed and gate.message.startswith("not measured")


def test_a_resource_fitted_in_the_baseline_but_not_in_the_candidate_fails_the_regression_gate():
    base = _resources()
    cand = replace(base, fits={**base.fits, "cpu_cores": NotMeasured("the CPU collector failed")})
    gates = {g.name: g for g in evaluate_gates(cand, GateThresholds(max_p95_ms=None, max_error_rate=None),
                                               baseline=base)}
    assert not gates["regression_cpu_cores"].passed
    assert "not measured in this run (the CPU collector failed)" in gates["regression_cpu_cores"].message


def test_an_overloaded_flagged_top_step_fails_the_p95_gate():
    """The top step breaches p95 and is flagged for errors: it is left out of the fits, but the p95
    gate reads every step with users, so it fails (today's code read the clean steps only)."""
    truth = SyntheticTruth(latency_per_user=0.5, failure_share={"POST /api/chat/message": 0.0})
    res = _resources(truth)
    top = res.steps["users"].idxmax()
    steps = res.steps.copy()
    steps.loc[top, ["flags", "clean", "p95_ms"]] = ["errors", False, 5000.0]
    (gate,) = evaluate_gates(replace(res, steps=steps), GateThresholds(max_p95_ms=2000, max_error_rate=None))
    assert not gate.passed and "flagged: errors" in gate.message
