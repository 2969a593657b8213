"""Seeded synthetic runs with known truth, written through the same ingest path as real runs.

Used by tests (the fits must recover the truth) and to build the notebooks' fixture store.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

from capkit.records.seconds import SecondAggregator
from capkit.runs.ingest import Ingestor
from capkit.schemas import RunSpec, RunStatus, StagePlan, stepped
from capkit.store import Store
from capkit.synthetic.draws import ar1, draw_step, outlier_mean


@dataclass
class SyntheticTruth:
    """Known parameters: resource = baseline + per_user × users + noise; latency lognormal.

    The noise is as messy as a real run's (see :mod:`capkit.synthetic.draws`): a per-step offset
    (``step_offset``, sd per metric), AR(1) within the step (``ar``; ``noise`` is its stationary
    sd) and sparse positive outliers (``outlier_rate`` per second, mean ``outlier_scale`` ×
    ``noise``; their expectation is in :meth:`value`). ``step_offset={}, ar=0, outlier_rate=0``
    gives independent normal noise per second. Latency has a per-step factor (``latency_offset``,
    sd of its log, mean one). ``trend`` adds a climb with the run's time (per hour since the first
    step started: a cache filling, an allocator), the same at every load; ``warmup`` a rise that
    levels off, A·(1 − e^(−t/τ)) (a bounded cache filling, the heap growing to its working size);
    ``cold_start`` what the service lacks before its first load (imports, pools and caches opened
    on first use): idle steps before the first loaded step are that much lower.

    Optional truths for the other models: ``usl`` (σ, κ, λ) with ``think_time_s`` makes a closed
    system — throughput X(N) from the USL and mean latency R(N) = N / X(N) − Z, so the p95 curve is
    known (:meth:`p95_ms`); ``breaks`` adds ``extra`` per user above ``users`` (a backtest break);
    ``demand`` makes a metric follow throughput (use per req/s, so it bends where X(N) does) and
    ``pools`` caps a metric at a pool's size (each second's reading too), reported as the reference
    service reports its pools (``model_slots_busy`` and ``model_slots_size``);
    ``drift`` adds a per-second climb within every step (a leak); ``sources`` names the collector
    of a metric that is not the service's; ``endpoints`` shares the requests between names.
    """

    baseline: dict = field(default_factory=lambda: {"cpu_cores": 0.02, "rss_mib": 80.0, "db_connections": 1.0,
                                                     "network_kbps": 5.0})
    per_user: dict = field(default_factory=lambda: {"cpu_cores": 0.02, "rss_mib": 0.5, "db_connections": 0.25,
                                                     "network_kbps": 12.0})
    noise: dict = field(default_factory=lambda: {"cpu_cores": 0.01, "rss_mib": 1.0, "db_connections": 0.3,
                                                  "network_kbps": 3.0})
    step_offset: dict = field(default_factory=lambda: {"cpu_cores": 0.004, "rss_mib": 0.8, "db_connections": 0.1,
                                                        "network_kbps": 1.5})
    ar: float = 0.8
    outlier_rate: float = 0.01
    outlier_scale: float = 6.0
    latency_offset: float = 0.05
    trend: dict = field(default_factory=dict)  # metric -> increase per hour of the run (all loads)
    warmup: dict = field(default_factory=dict)  # metric -> (rise, time constant s): A·(1 − e^(−t/τ)) since the start
    cold_start: dict = field(default_factory=dict)  # metric -> shortfall of the idle steps before the first load
    rps_per_user: float = 1.0
    latency_ms: float = 20.0  # median at 0 users
    latency_per_user: float = 0.03  # median grows by this factor per user
    latency_sigma: float = 0.4
    usl: tuple[float, float, float] | None = None
    think_time_s: float = 1.0
    breaks: dict = field(default_factory=dict)  # metric -> (users, extra per user above it)
    demand: dict = field(default_factory=dict)  # metric -> its use per req/s (the utilization law U = U₀ + D·X)
    pools: dict = field(default_factory=dict)  # metric -> the pool's size: slots held never exceed it
    drift: dict = field(default_factory=dict)  # metric -> increase per second within a step
    sources: dict = field(default_factory=dict)  # metric -> source (default "service")
    endpoints: dict = field(default_factory=lambda: {"POST /api/chat/message": 1.0})
    failure_share: dict = field(default_factory=dict)  # endpoint -> share of 5xx
    rate_limited_share: dict = field(default_factory=dict)  # endpoint -> share of 429
    generator_cpu_per_user: float = 0.0  # > 0 writes generator CPU samples

    def throughput(self, users) -> np.ndarray:
        """True requests/s at ``users``."""
        n = np.asarray(users, dtype=float)
        if self.usl is None:
            return self.rps_per_user * n
        sigma, kappa, lam = self.usl
        return lam * n / (1 + sigma * (n - 1) + kappa * n * (n - 1))

    def mean_ms(self, users) -> np.ndarray:
        """True mean latency (ms) at ``users``."""
        n = np.asarray(users, dtype=float)
        if self.usl is None:
            return self.median_ms(n) * np.exp(self.latency_sigma**2 / 2)
        return 1000 * (n / self.throughput(n) - self.think_time_s)

    def median_ms(self, users) -> np.ndarray:
        n = np.asarray(users, dtype=float)
        if self.usl is None:
            return self.latency_ms * (1 + self.latency_per_user * n)
        return self.mean_ms(n) / np.exp(self.latency_sigma**2 / 2)

    def p95_ms(self, users) -> np.ndarray:
        """True p95 latency (ms) at ``users`` (lognormal: median × e^(1.645 σ))."""
        return self.median_ms(users) * np.exp(1.6448536269514722 * self.latency_sigma)

    def value(self, metric: str, users: float) -> float:
        """True mean of ``metric`` at ``users`` (breaks and the outliers' expectation included,
        drift and trend not): ``value(metric, 0)`` is the baseline a fit should find."""
        v = self.baseline[metric] + outlier_mean(self, metric) + self.per_user[metric] * users
        if metric in self.breaks:
            at, extra = self.breaks[metric]
            v += extra * max(users - at, 0.0)
        if metric in self.demand:
            v += self.demand[metric] * float(self.throughput(users))
        return min(v, self.pools[metric]) if metric in self.pools else v

    def observed(self, metric: str, values: np.ndarray) -> np.ndarray:
        """Per-second readings as the collector sees them: a pool never holds more than its size."""
        return np.minimum(values, self.pools[metric]) if metric in self.pools else values


def synthetic_records(plan: StagePlan, truth: SyntheticTruth, *, seed: int = 0, start: float = 1.7e9,
                      endpoint: str = "POST /api/chat/message", requests_cap: int = 400):
    """(load records, resource sample rows) for ``plan`` as a real run would write them."""
    endpoints = truth.endpoints if endpoint == "POST /api/chat/message" else {endpoint: 1.0}
    names_ = list(endpoints)
    shares = np.asarray(list(endpoints.values()), dtype=float)
    shares = shares / shares.sum()
    load, samples = [], []
    t = start
    for index, (stage, rng) in enumerate(zip(plan.stages, step_streams(seed, len(plan.stages)), strict=True)):
        load.append({"type": "step", "step": index, "users": stage.users, "rate": None,
                     "planned_s": stage.seconds, "started_at": t})
        agg = SecondAggregator()
        seconds = int(stage.seconds)
        draws = draw_step(rng, truth, stage.users, t, seconds, requests_cap)
        _record(agg, rng, truth, draws.times, draws.latencies_ms, names_, shares)
        cold = is_cold(plan, index)
        values = {metric: truth.observed(metric, true_values(truth, metric, stage.users, t - start, seconds, cold)
                                         + draws.noise[metric])
                  for metric in truth.baseline}
        for sec in range(seconds):
            ts = int(t) + sec
            load.append({"type": "tick", "ts": ts, "step": index, "users": stage.users})
            for metric in truth.baseline:
                samples.append({"ts": ts + 0.5, "source": truth.sources.get(metric, "service"), "metric": metric,
                                "value": float(values[metric][sec])})
            for metric, size in truth.pools.items():
                samples.append({"ts": ts + 0.5, "source": "service", "metric": f"{metric.removesuffix('_busy')}_size",
                                "value": float(size)})
            if truth.generator_cpu_per_user > 0:
                samples.append({"ts": ts + 0.5, "source": "generator", "metric": "cpu_cores",
                                "value": float(truth.generator_cpu_per_user * stage.users)})
        load.extend({"type": "req", **row} for row in agg.flush())
        t += stage.seconds
    load.append({"type": "end", "ts": t, "reason": "load finished"})
    return load, samples


def step_streams(seed: int, steps: int) -> list[np.random.Generator]:
    """One independent random stream per step of a run drawn with ``seed`` (both paths use them)."""
    return np.random.default_rng(seed).spawn(steps)


def is_cold(plan: StagePlan, index: int) -> bool:
    """Whether step ``index`` of ``plan`` comes before any load (the service not yet used)."""
    return all(stage.users == 0 for stage in plan.stages[: index + 1])


def true_values(truth: SyntheticTruth, metric: str, users: int, since_start_s: float, seconds: int,
                cold: bool = False) -> np.ndarray:
    """The noiseless value of ``metric`` in each second of a step that starts ``since_start_s``
    after the run's first step: the true mean, the within-step ``drift``, the run's ``trend`` and,
    in a ``cold`` step (before the first load), less the ``cold_start``."""
    sec = np.arange(seconds, dtype=float)
    t = since_start_s + sec + 0.5
    rise, tau = truth.warmup.get(metric, (0.0, 1.0))
    return (truth.value(metric, users) + truth.drift.get(metric, 0.0) * sec
            + truth.trend.get(metric, 0.0) * t / 3600.0 + rise * (1 - np.exp(-t / tau))
            - (truth.cold_start.get(metric, 0.0) if cold else 0.0))


def _record(agg, rng, truth: SyntheticTruth, times, latencies_ms, names_, shares) -> None:
    """Record requests at ``times`` (s) with their latencies, endpoint names and statuses."""
    if len(times) == 0:
        return
    which = rng.choice(len(names_), size=len(times), p=shares)
    draws = rng.random(len(times))
    for ts, lat, k, draw in zip(times, latencies_ms, which, draws, strict=True):
        name = names_[k]
        failed = truth.failure_share.get(name, 0.0)
        status = 500 if draw < failed else 429 if draw < failed + truth.rate_limited_share.get(name, 0.0) else 200
        agg.record(float(ts), name.split()[0], name, float(lat), status, 512, status >= 500)


def write_synthetic_run(store: Store, run_id: str, *, plan: StagePlan | None = None,
                        truth: SyntheticTruth | None = None, seed: int = 0, start: float = 1.7e9,
                        git_sha: str | None = None, llm=None) -> SyntheticTruth:
    """Store a complete synthetic run ``run_id``; return the truth it was drawn from.

    ``llm`` (a :class:`capkit.synthetic.llm.LlmTruth`) adds token-timing records, its SLO in the notes.
    """
    plan = plan or stepped([5, 10, 15, 20, 25], idle_s=20, step_s=20, warmup_s=2)
    truth = truth or SyntheticTruth()
    load, samples = synthetic_records(plan, truth, seed=seed, start=start)
    notes = {}
    if llm is not None:
        from capkit.synthetic.llm import synthetic_llm_records

        end = load.pop()  # the llm records go before the end record, as a real run writes them
        load += synthetic_llm_records(plan, llm, seed=seed + 1000, start=start) + [end]
        notes["slo"] = llm.slo.to_dict() if llm.slo else None
    spec = RunSpec(run_id=run_id, target="synthetic://", scenario="synthetic", plan=plan, notes=notes)
    store.create_run(run_id=run_id, target=spec.target, scenario=spec.scenario,
                     spec=json.loads(spec.model_dump_json()), machine={"host": "synthetic"}, created_at=start,
                     git_sha=git_sha)
    ingest = Ingestor(store, run_id)
    ingest.feed(load)
    store.add_samples(run_id, samples)
    ingest.finish(start + plan.duration_s, last_complete=True)
    store.finish_run(run_id, RunStatus.COMPLETE, None, ended_at=start + plan.duration_s)
    return truth


def fixture_truth(variant: str = "a") -> SyntheticTruth:
    """The notebooks' fixture runs: four components, a known p95 curve, a few 429s; variant ``"b"``
    costs 50 % more CPU per user and has a slower USL λ (the comparison's known difference)."""
    truth = SyntheticTruth(
        usl=(0.02, 0.0005, 0.9), think_time_s=1.0,
        endpoints={"POST /api/chat/message": 0.6, "GET /api/analytics/summary": 0.2,
                   "GET /api/auth/validate": 0.15, "WS /api/ws/chat": 0.05},
        rate_limited_share={"POST /api/chat/message": 0.02}, failure_share={"GET /api/analytics/summary": 0.004})
    if variant == "b":
        truth.per_user = dict(truth.per_user, cpu_cores=truth.per_user["cpu_cores"] * 1.5)
        truth.usl = (0.02, 0.0005, 0.8)
    return truth


def soak_series(seconds: int, *, leak_per_hour: float = 0.0, baseline: float = 200.0, noise_sd: float = 2.0,
                ar: float = 0.95, seed: int = 0, start: float = 1.7e9) -> tuple[np.ndarray, np.ndarray]:
    """(ts, values) of one resource in a soak: ``baseline`` + ``leak_per_hour`` × hours + AR(1)
    noise (coefficient ``ar`` per second, stationary sd ``noise_sd``), the way RSS wanders."""
    rng = np.random.default_rng(seed)
    noise = ar1(rng, seconds, noise_sd, ar)
    ts = start + np.arange(seconds) + 0.5
    return ts, baseline + leak_per_hour * np.arange(seconds) / 3600.0 + noise
