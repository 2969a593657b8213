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
from capkit.synthetic.draws import ar1


@dataclass
class MixTruth:
    """``cpu = cpu0 + Σ X_c · cpu_per_request_c``, ``rss = rss0 + Σ n_c · mib_per_session_c``, with
    ``X_c = n_c · r_c`` (Poisson counts). Users are a closed system on one core: ``rps_per_user``
    is a user's rate without CPU queueing; with queueing the rates follow the closed system's mean
    value analysis (:meth:`rates`; ``closed=False``: ``r_c = rps_per_user_c`` at any load)."""

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

    closed: bool = True

    def rates(self, n: dict) -> dict[str, float]:
        """Requests/s per user of each class with ``n`` users per class: the closed system's mean
        value analysis (Bard–Schweitzer), one processor-sharing CPU plus a delay per request."""
        if not self.closed:
            return dict(self.rps_per_user)
        n = {c: float(k) for c, k in n.items() if k > 0}
        d = self.cpu_per_request
        delay = {c: 1 / r - d[c] for c, r in self.rps_per_user.items()}
        q = {c: k / 2 for c, k in n.items()}
        x = {}
        for _ in range(1000):
            res = {c: d[c] * (1 + sum(q[k] * (n[k] - (k == c)) / n[k] for k in n)) for c in n}
            x = {c: n[c] / (delay[c] + res[c]) for c in n}
            new = {c: x[c] * res[c] for c in n}
            if all(abs(new[c] - q[c]) < 1e-10 for c in n):
                break
            q = {c: (q[c] + new[c]) / 2 for c in n}
        return {c: x[c] / n[c] if c in n else r for c, r in self.rps_per_user.items()}

    def cpu(self, n: dict) -> float:
        """True mean CPU (cores) with ``n`` users per class."""
        r = self.rates(n)
        return self.cpu0 + sum(n.get(c, 0) * r[c] * d for c, d in self.cpu_per_request.items())

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


def mix_seconds(plan: StagePlan, truth: MixTruth, *, seed: int = 0, default_mix: dict | None = None):
    """Per step: (index, users per class, per second: (requests per class, cpu, rss)). CPU follows
    the requests each second really served; a step offset, AR(1) noise and outliers on top."""
    rng = np.random.default_rng(seed)
    default_mix = default_mix or {"chat": 4, "analytics": 1, "auth": 1, "ws": 1}
    for index, stage in enumerate(plan.stages):
        n = counts(stage.users, stage.mix, default_mix) if stage.users else {c: 0 for c in default_mix}
        length = int(stage.seconds)
        # the one noise model of capkit.synthetic: a step offset, AR(1) within the step, outliers
        noise = {m: ar1(rng, length, sd, truth.ar) + rng.normal(0, truth.step_sd.get(m, 0.0))
                 + np.where(rng.random(length) < truth.outlier_share, 6 * sd, 0.0)
                 for m, sd in truth.second_sd.items()}
        seconds, rates = [], truth.rates(n)
        for i in range(length):
            req = {c: int(rng.poisson(k * rates[c])) for c, k in n.items()}
            means = {"cpu_cores": truth.cpu0 + sum(req[c] * truth.cpu_per_request[c] for c in req),
                     "rss_mib": truth.rss(n)}
            values = {metric: mean + noise[metric][i] for metric, mean in means.items()}
            seconds.append((req, values, rng))
        yield index, stage, n, seconds


def mix_step_table(plan: StagePlan, truth: MixTruth, *, seed: int = 0, default_mix: dict | None = None):
    """The step table :func:`capkit.analysis.fits.demands.class_steps` would read from such a run
    (warm-up trimmed), without the store: for coverage loops over many seeds."""
    import pandas as pd

    rows = []
    for index, stage, n, seconds in mix_seconds(plan, truth, seed=seed, default_mix=default_mix):
        kept = seconds[int(np.ceil(plan.warmup_s)):]
        row = {"step": index, "users": stage.users, "clean": True, "seconds": float(len(kept)), "flags": ""}
        for c in n:
            row[f"X_{c}"] = float(np.mean([req[c] for req, _, _ in kept]))
            row[f"n_{c}"] = float(n[c])
        row["ws_open"] = float(n.get("ws", 0))
        for metric in ("cpu_cores", "rss_mib"):
            row[metric] = float(np.mean([v[metric] for _, v, _ in kept]))
        rows.append(row)
    return pd.DataFrame(rows)


def write_mix_run(store: Store, run_id: str, plan: StagePlan, truth: MixTruth | None = None, *, seed: int = 0,
                  default_mix: dict | None = None, start: float = 1.7e9) -> MixTruth:
    """Store a complete synthetic run of ``plan`` (its stages' ``mix``, else ``default_mix``)."""
    truth = truth or MixTruth()
    default_mix = default_mix or {"chat": 4, "analytics": 1, "auth": 1, "ws": 1}
    load, samples, t = [], [], start
    for index, stage, n, seconds in mix_seconds(plan, truth, seed=seed, default_mix=default_mix):
        load.append({"type": "step", "step": index, "users": stage.users, "rate": None, "planned_s": stage.seconds,
                     "started_at": t, **({"mix": n} if stage.mix else {})})
        agg = SecondAggregator()
        for sec, (req, values, rng) in enumerate(seconds):
            ts = int(t) + sec
            meters = {f"users_{c}": float(k) for c, k in n.items()}
            meters["ws_connections"] = float(n.get("ws", 0))
            load.append({"type": "tick", "ts": ts, "step": index, "users": stage.users, "meters": meters})
            for c, count in req.items():
                names = REFERENCE_CLASSES[c]
                for _ in range(count):
                    name = names[int(rng.integers(len(names)))]
                    agg.record(ts + float(rng.random()), name.split()[0] if " /" in name else "WS", name,
                               float(rng.lognormal(np.log(30), 0.4)), 200,
                               int(rng.poisson(truth.bytes_per_request[c])), False)
            samples.extend({"ts": ts + 0.5, "source": "service", "metric": m, "value": float(v)}
                           for m, v in values.items())
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
