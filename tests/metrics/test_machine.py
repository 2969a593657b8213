"""The machine sampler reads real /proc counters; a step's summary sets the service and the load
generator apart from what else ran on the machine."""

from __future__ import annotations

import time

import pandas as pd

from capkit.analysis.data.steps import summarize_steps
from capkit.metrics.machine import MachineSampler


def test_the_machine_sampler_sees_a_busy_core():
    sampler = MachineSampler()
    end = time.monotonic() + 0.5
    while time.monotonic() < end:  # this process keeps one core busy
        pass
    sample = sampler.sample()
    assert sample["machine_busy_cores"] >= 0.8, sample
    assert sample.get("machine_steal_cores", 0.0) >= 0.0
    assert sampler.source == "machine"


def test_a_step_names_the_cpu_that_was_neither_the_service_nor_the_generator():
    steps = pd.DataFrame([{"step": 0, "users": 10, "planned_s": 10, "started_at": 100.0, "ended_at": 110.0,
                           "complete": True}])
    rows = []
    for ts in range(101, 110):
        rows += [{"ts": ts + 0.5, "source": "service", "metric": "cpu_cores", "value": 0.6},
                 {"ts": ts + 0.5, "source": "generator", "metric": "cpu_cores", "value": 0.3},
                 {"ts": ts + 0.5, "source": "machine", "metric": "machine_busy_cores", "value": 1.4},
                 {"ts": ts + 0.5, "source": "machine", "metric": "machine_steal_cores", "value": 0.05}]
    requests = pd.DataFrame(columns=["ts", "step", "users", "method", "name", "count", "failures", "rate_limited",
                                     "latency_sum_ms", "bytes", "hdr"])
    row = summarize_steps(steps, requests, pd.DataFrame(rows), warmup_s=0).iloc[0]
    assert abs(row["other_cpu_cores"] - 0.5) < 1e-9 and abs(row["machine_steal_cores"] - 0.05) < 1e-9
