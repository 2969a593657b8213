"""Arrival-rate (open model) stages: the rate is reached; runs that cannot start on time are dropped."""

from __future__ import annotations

from capkit import analysis as ca
from capkit.analysis.data.steps import summarize_steps
from tests.loadrun import run_reference_load

SLOW_LOCUSTFILE = '''
import gevent
from locust import FastHttpUser, task

class Slow(FastHttpUser):
    @task
    def slow(self):
        self.client.get("/healthz", name="GET /healthz")
        gevent.sleep(0.5)  # one user can start at most 2 runs a second
'''


def test_arrival_rate_step_reaches_its_rate(reference_service, store, tmp_path):
    svc = reference_service()
    result = run_reference_load(store, tmp_path, svc, "0x2,r20x6@10", env={"CAPKIT_MIX": "auth=1"})
    assert result.status == "complete", result.reason
    data = ca.read_run(store, result.run_id)
    steps = summarize_steps(data.steps, data.requests, data.samples, warmup_s=data.warmup_s)
    step = steps.loc[1]
    assert step["rate"] == 20 and step["users"] == 10
    print(f"arrival rate: target 20/s, achieved {step['rps']:.2f}/s, dropped {step['dropped']:.0f}")
    assert 19 <= step["rps"] <= 21.5
    assert step["rate_reached"] and "rate_not_reached" not in step["flags"]


def test_runs_without_a_free_user_are_dropped(reference_service, store, tmp_path):
    svc = reference_service()
    locustfile = tmp_path / "slow.py"
    locustfile.write_text(SLOW_LOCUSTFILE)
    result = run_reference_load(store, tmp_path, svc, "r10x5@1", env={}, locustfiles=[locustfile])
    assert result.status == "complete", result.reason
    data = ca.read_run(store, result.run_id)
    steps = summarize_steps(data.steps, data.requests, data.samples, warmup_s=data.warmup_s)
    step = steps.loc[0]
    assert step["rps"] <= 2.5  # one user, 0.5 s per run
    assert step["dropped"] >= 0.6 * 10 * step["seconds"]  # about 8 of every 10 runs a second
    assert "rate_not_reached" in step["flags"] and not step["clean"]


def test_poisson_arrivals_keep_the_rate_with_poisson_scatter(reference_service, store, tmp_path):
    svc = reference_service()
    result = run_reference_load(store, tmp_path, svc, "p40x8@20,r40x8@20", env={"CAPKIT_MIX": "auth=1"})
    assert result.status == "complete", result.reason
    data = ca.read_run(store, result.run_id)
    steps = summarize_steps(data.steps, data.requests, data.samples, warmup_s=data.warmup_s)
    assert data.meta.spec.plan.stages[0].poisson and not data.meta.spec.plan.stages[1].poisson
    per_s = data.requests[data.requests["name"] == "GET /api/auth/validate"].groupby(["step", "ts"])["count"].sum()
    poisson, constant = per_s.loc[0].iloc[1:-1], per_s.loc[1].iloc[1:-1]
    print(f"poisson: {steps.loc[0, 'rps']:.1f}/s, per-second variance {poisson.var():.1f}; "
          f"constant: {steps.loc[1, 'rps']:.1f}/s, variance {constant.var():.1f}")
    assert 30 <= steps.loc[0, "rps"] <= 50  # mean 40/s; 7 s of Poisson counts scatter by ±√40
    assert poisson.var() > 4 * max(constant.var(), 1.0)  # Poisson: variance ≈ mean; constant: ≈ 0
