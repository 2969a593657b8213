"""Seeded runs of a known per-class truth (demands per request, memory per session), written
through the real ingest path, with the mess of real runs: a persistent offset per step, AR(1)
noise within it, and a few outliers."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

from capkit.records.seconds import SecondAggregator
from capkit.runs.ingest import Ingestor
from capkit.schemas import REFERENCE_CLASSES, RunSpec, RunStatus, StagePlan
from capkit.store import Store


@dataclass
class MixTruth:
    """``cpu = cpu0 + Σ X_c · cpu_per_request_c``, ``rss = rss0 + Σ n_c · mib_per_session_c``, with
    ``X_c = n_c · rps_per_user_c`` (Poisson counts)."""

    rps_per_user: dict = field(default_factory=lambda: {"chat": 0.8, "analytics": 2.0, "auth": 1.5, "ws": 0.7})
    cpu_per_request: dict = field(default_factory=lambda: {"chat": 0.012, "analytics": 0.004, "auth": 0.001,
                                                           "ws": 0.015})
    mib_per_session: dict = field(default_factory=lambda: {"chat": 0.6, "analytics": 0.1, "auth": 0.05,
                                                           "ws": 2.0})
    cpu0: float = 0.02
    rss0: float = 120.0
    step_sd: dict = field(default_factory=lambda: {"cpu_cores": 0.004, "rss_mib": 0.4})
    second_sd: dict = field(default_factory=lambda: {"cpu_cores": 0.03, "rss_mib": 0.6})
    ar: float = 0.6
    outlier_share: float = 0.01
    bytes_per_request: dict = field(default_factory=lambda: {"chat": 900, "analytics": 2400, "auth": 120,
                                                             "ws": 700})

    def cpu(self, n: dict) -> float:
        return self.cpu0 + sum(n.get(c, 0) * self.rps_per_user[c] * d for c, d in self.cpu_per_request.items())

    def rss(self, n: dict) -> float:
        return self.rss0 + sum(n.get(c, 0) * m for c, m in self.mib_per_session.items())


def counts(users: int, mix: dict | None, default: dict) -> dict[str, int]:
    """Users per class (largest remainder), as the Locust shape splits them."""
    mix = mix or default
    total = sum(mix.values())
    exact = {c: users * w / total for c, w in mix.items()}
    out = {c: int(v) for c, v in exact.items()}
    for c in sorted(exact, key=lambda k: (out[k] - exact[k], k))[: users - sum(out.values())]:
        out[c] += 1
    return out


def write_mix_run(store: Store, run_id: str, plan: StagePlan, truth: MixTruth | None = None, *, seed: int = 0,
                  default_mix: dict | None = None, start: float = 1.7e9) -> MixTruth:
    """Store a complete synthetic run of ``plan`` (its stages' ``mix``, else ``default_mix``)."""
    truth = truth or MixTruth()
    default_mix = default_mix or {"chat": 4, "analytics": 1, "auth": 1, "ws": 1}
    rng = np.random.default_rng(seed)
    load, samples, t = [], [], start
    for index, stage in enumerate(plan.stages):
        n = counts(stage.users, stage.mix, default_mix) if stage.users else {c: 0 for c in default_mix}
        load.append({"type": "step", "step": index, "users": stage.users, "rate": None, "planned_s": stage.seconds,
                     "started_at": t, **({"mix": n} if stage.mix else {})})
        offset = {m: rng.normal(0, sd) for m, sd in truth.step_sd.items()}
        noise = {m: 0.0 for m in truth.second_sd}
        agg = SecondAggregator()
        for sec in range(int(stage.seconds)):
            ts = int(t) + sec
            meters = {f"users_{c}": float(k) for c, k in n.items()}
            meters["ws_connections"] = float(n.get("ws", 0))
            load.append({"type": "tick", "ts": ts, "step": index, "users": stage.users, "meters": meters})
            for c, k in n.items():
                names = REFERENCE_CLASSES[c]
                for _ in range(int(rng.poisson(k * truth.rps_per_user[c]))):
                    name = names[int(rng.integers(len(names)))]
                    agg.record(ts + float(rng.random()), name.split()[0] if " /" in name else "WS", name,
                               float(rng.lognormal(np.log(30), 0.4)), 200,
                               int(rng.poisson(truth.bytes_per_request[c])), False)
            for metric, mean in (("cpu_cores", truth.cpu(n)), ("rss_mib", truth.rss(n))):
                sd = truth.second_sd[metric]
                noise[metric] = truth.ar * noise[metric] + rng.normal(0, sd * np.sqrt(1 - truth.ar ** 2))
                value = mean + offset[metric] + noise[metric]
                if rng.random() < truth.outlier_share:
                    value += 6 * sd
                samples.append({"ts": ts + 0.5, "source": "service", "metric": metric, "value": float(value)})
        load.extend({"type": "req", **row} for row in agg.flush())
        t += stage.seconds
    load.append({"type": "end", "ts": t, "reason": "load finished"})
    spec = RunSpec(run_id=run_id, target="synthetic://", scenario="synthetic", plan=plan,
                   notes={"mix": ",".join(f"{c}={w:g}" for c, w in default_mix.items())})
    store.create_run(run_id=run_id, target=spec.target, scenario=spec.scenario,
                     spec=json.loads(spec.model_dump_json()), machine={"host": "synthetic"}, created_at=start)
    ingest = Ingestor(store, run_id)
    ingest.feed(load)
    store.add_samples(run_id, samples)
    ingest.finish(start + plan.duration_s, last_complete=True)
    store.finish_run(run_id, RunStatus.COMPLETE, None, ended_at=start + plan.duration_s)
    return truth
