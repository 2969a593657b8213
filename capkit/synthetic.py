"""Seeded synthetic runs with known truth, written through the same ingest path as real runs.

Used by tests (the fits must recover the truth) and to build the notebooks' fixture store.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

from capkit.ingest import Ingestor
from capkit.load.recorder import SecondAggregator
from capkit.schemas import RunSpec, StagePlan, stepped
from capkit.store import Store


@dataclass
class SyntheticTruth:
    """Known parameters: resource = baseline + per_user × users + N(0, noise²); latency lognormal."""

    baseline: dict = field(default_factory=lambda: {"cpu_cores": 0.02, "rss_mib": 80.0, "db_connections": 1.0,
                                                     "network_kbps": 5.0})
    per_user: dict = field(default_factory=lambda: {"cpu_cores": 0.02, "rss_mib": 0.5, "db_connections": 0.25,
                                                     "network_kbps": 12.0})
    noise: dict = field(default_factory=lambda: {"cpu_cores": 0.01, "rss_mib": 1.0, "db_connections": 0.3,
                                                  "network_kbps": 3.0})
    rps_per_user: float = 1.0
    latency_ms: float = 20.0  # median at 0 users
    latency_per_user: float = 0.03  # median grows by this factor per user
    latency_sigma: float = 0.4


def synthetic_records(plan: StagePlan, truth: SyntheticTruth, *, seed: int = 0, start: float = 1.7e9,
                      endpoint: str = "POST /api/chat/message", requests_cap: int = 400):
    """(load records, resource sample rows) for ``plan`` as a real run would write them."""
    rng = np.random.default_rng(seed)
    load, samples = [], []
    t = start
    for index, stage in enumerate(plan.stages):
        load.append({"type": "step", "step": index, "users": stage.users, "rate": None,
                     "planned_s": stage.seconds, "started_at": t})
        for sec in range(int(stage.seconds)):
            ts = int(t) + sec
            load.append({"type": "tick", "ts": ts, "step": index, "users": stage.users})
            count = min(int(rng.poisson(truth.rps_per_user * stage.users)), requests_cap)
            if count:
                agg = SecondAggregator()
                median = truth.latency_ms * (1 + truth.latency_per_user * stage.users)
                for lat in rng.lognormal(np.log(median), truth.latency_sigma, count):
                    agg.record(ts + 0.5, endpoint.split()[0], endpoint, float(lat), 200, 512, False)
                load.extend({"type": "req", **row} for row in agg.flush())
            for metric, base in truth.baseline.items():
                value = base + truth.per_user[metric] * stage.users + rng.normal(0, truth.noise[metric])
                samples.append({"ts": ts + 0.5, "source": "service", "metric": metric, "value": float(value)})
        t += stage.seconds
    load.append({"type": "end", "ts": t, "reason": "load finished"})
    return load, samples


def write_synthetic_run(store: Store, run_id: str, *, plan: StagePlan | None = None,
                        truth: SyntheticTruth | None = None, seed: int = 0, start: float = 1.7e9) -> SyntheticTruth:
    """Store a complete synthetic run ``run_id``; return the truth it was drawn from."""
    plan = plan or stepped([5, 10, 15, 20, 25], idle_s=20, step_s=20, warmup_s=2)
    truth = truth or SyntheticTruth()
    load, samples = synthetic_records(plan, truth, seed=seed, start=start)
    spec = RunSpec(run_id=run_id, target="synthetic://", scenario="synthetic", plan=plan)
    store.create_run(run_id=run_id, target=spec.target, scenario=spec.scenario,
                     spec=json.loads(spec.model_dump_json()), machine={"host": "synthetic"}, created_at=start)
    ingest = Ingestor(store, run_id)
    ingest.feed(load)
    store.add_samples(run_id, samples)
    ingest.finish(start + plan.duration_s, last_complete=True)
    store.finish_run(run_id, "complete", None, ended_at=start + plan.duration_s)
    return truth
