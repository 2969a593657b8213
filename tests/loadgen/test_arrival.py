"""Arrival-rate (open model) stages: the rate is reached; runs that cannot start on time are dropped."""

from __future__ import annotations

from capkit import analysis as ca
from capkit.analysis.steps import summarize_steps
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
