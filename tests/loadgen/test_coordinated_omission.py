"""Coordinated omission: under an arrival-rate step, a target that stalls 1 s every 3 s shows the
stall in the latency from the intended start, and (with one user) hardly at all in Locust's latency."""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from capkit import analysis as ca
from capkit.analysis.data.steps import summarize_steps
from capkit.runs.processes import free_port
from tests.loadrun import run_reference_load

GET = '''
from locust import FastHttpUser, task

class Get(FastHttpUser):
    @task
    def get(self):
        self.client.get("/", name="GET /")
'''


@dataclass
class _Target:
    url: str
    pid: int


@pytest.fixture
def stalling_server():
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(Path(__file__).with_name("stall_server.py")), str(port)])
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                httpx.get(url, timeout=2)
                break
            except httpx.HTTPError:
                time.sleep(0.05)
        yield _Target(url, proc.pid)
    finally:
        proc.kill()
        proc.wait(5)


def test_corrected_latency_includes_the_stall_and_locust_latency_does_not(stalling_server, store, tmp_path):
    locustfile = tmp_path / "get.py"
    locustfile.write_text(GET)
    # 100 runs/s by one user: during a stall the one request in flight waits; the runs scheduled
    # meanwhile queue (backlog up to 5 s, so none is dropped) and start late when it ends
    result = run_reference_load(store, tmp_path, stalling_server, "r100x10@1", env={"CAPKIT_MAX_LATENESS_S": "5"},
                                locustfiles=[locustfile], warmup_s=1.0)
    assert result.status == "complete", result.reason
    data = ca.read_run(store, result.run_id)
    step = summarize_steps(data.steps, data.requests, data.samples, warmup_s=data.warmup_s,
                           corrected=data.corrected).loc[0]
    print(f"stall: uncorrected p50/p95/p99 {step['p50_ms']:.1f}/{step['p95_ms']:.1f}/{step['p99_ms']:.1f} ms, "
          f"corrected {step['corrected_p50_ms']:.1f}/{step['corrected_p95_ms']:.1f}/{step['corrected_p99_ms']:.1f} ms,"
          f" {step['rps']:.1f} req/s, dropped {step['dropped']:.0f}")
    assert step["corrected_p99_ms"] >= 900
    assert step["p99_ms"] < 300
    assert step["corrected_p95_ms"] > 3 * step["p95_ms"]
    assert step["rps"] >= 80 and step["dropped"] == 0  # the late runs were sent, not lost
