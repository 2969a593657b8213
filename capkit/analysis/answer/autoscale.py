"""A replay of an autoscaling policy over a day of traffic (SimPy), beside a static plan.

The autoscaler is Kubernetes' HorizontalPodAutoscaler as its documentation describes it: every
``sync_s`` it averages the metric over the pods (a pod still starting counts as 0, as the HPA
counts an unready pod when scaling up), and wants ``ceil(pods × average / target)`` — nothing when
the ratio is within ``tolerance`` of 1; a scale-down takes the highest recommendation of the last
``stabilization_s`` (a scale-up acts at once); the result is held within [min, max] replicas. A new
pod serves ``pod_start_s`` after it was asked for; a removed pod stops at once (one still starting is
cancelled first). Not modelled: the HPA's rate policies (by default at most double, or +4 pods, per
15 s), metric scrape lag, and load that is not spread evenly across the ready pods.

Between two events (a traffic row, a sync, a pod ready) users and ready pods are constant: each
replica's p95 is the run's latency model at ``users / ready``, so minutes over a threshold and
replica-hours are exact sums over those segments, not samples.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import simpy

from capkit.errors import ParameterError


@dataclass(frozen=True)
class HpaTiming:
    """The autoscaler's clock (Kubernetes' defaults, a typical pod start)."""

    sync_s: float = 15.0  # --horizontal-pod-autoscaler-sync-period
    pod_start_s: float = 60.0  # from the scale-up decision to a ready pod (schedule, pull, start, probe)
    stabilization_s: float = 300.0  # behavior.scaleDown.stabilizationWindowSeconds
    tolerance: float = 0.1  # --horizontal-pod-autoscaler-tolerance

    def __post_init__(self):
        for name in ("sync_s", "pod_start_s", "stabilization_s", "tolerance"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0 or (name == "sync_s" and value <= 0):
                raise ParameterError(f"autoscaler {name}={value!r} must be a number ≥ 0 (sync_s > 0)")


@dataclass
class Replay:
    """A day under one plan: ``timeline`` (``t_s, users, ready, replicas, per_replica, p95_ms``, one row
    per segment, ``duration_s`` long) and its totals."""

    name: str
    timeline: pd.DataFrame
    minutes_over_warning: float
    minutes_over_critical: float
    replica_hours: float
    cost: float | None  # replica-hours × cost per replica-hour (None without a cost)
    peak_replicas: int


def _totals(name, t, users, ready, replicas, end_s, p95_at, warning_ms, critical_ms, replica_cost) -> Replay:
    t, users = np.asarray(t, float), np.asarray(users, float)
    ready, replicas = np.asarray(ready, float), np.asarray(replicas, float)
    keep = np.append(t[1:] > t[:-1], True)  # several events at one instant: the last state holds
    t, users, ready, replicas = t[keep], users[keep], ready[keep], replicas[keep]
    duration = np.diff(np.append(t, end_s))
    with np.errstate(divide="ignore", invalid="ignore"):
        per = np.where(ready > 0, users / np.maximum(ready, 1), np.where(users > 0, np.inf, 0.0))
    p95 = np.asarray(p95_at(per), float)
    frame = pd.DataFrame({"t_s": t, "duration_s": duration, "users": users, "ready": ready, "replicas": replicas,
                          "per_replica": per, "p95_ms": p95})
    over = lambda ms: float(duration[p95 >= ms].sum() / 60.0)  # noqa: E731
    hours = float((replicas * duration).sum() / 3600.0)
    return Replay(name, frame, over(warning_ms), over(critical_ms), hours,
                  None if replica_cost is None else hours * replica_cost, int(replicas.max()))


def static_replay(traffic, replicas: int, *, p95_at, warning_ms: float, critical_ms: float,
                  replica_cost: float | None = None) -> Replay:
    """``replicas`` all day (the static plan: peak replicas)."""
    n = np.full(len(traffic.users), float(replicas))
    return _totals(f"static ({replicas} replicas)", traffic.t_s, traffic.users, n, n, traffic.end_s, p95_at,
                   warning_ms, critical_ms, replica_cost)


def replay_policy(traffic, policy, *, p95_at, warning_ms: float, critical_ms: float,
                  replica_cost: float | None = None) -> Replay:
    """Simulate ``policy`` (:class:`~capkit.analysis.answer.scaling.Policy`) over ``traffic``.

    Parameters
    ----------
    traffic : Traffic
    policy : Policy
        Its signal (the metric per replica), target, min and max replicas, and timing.
    p95_at : callable
        Users per replica (array) → p95 in ms (array): the run's latency model.
    warning_ms, critical_ms : float
        The thresholds whose minutes are counted.
    replica_cost : float, optional
        Cost of a replica-hour.
    """
    timing, signal = policy.timing, policy.signal
    target = float(signal.value(policy.target_users))
    lo, hi = policy.min_replicas, policy.max_replicas
    env = simpy.Environment()
    start = _steady(signal, float(traffic.users[0]), target, lo, hi)
    state = {"users": float(traffic.users[0]), "ready": start}
    starting: list = []
    rows: list[tuple] = []

    def record():
        rows.append((env.now, state["users"], state["ready"], state["ready"] + len(starting)))

    def traffic_process():
        for t, users in zip(traffic.t_s[1:], traffic.users[1:]):
            yield env.timeout(float(t) - env.now)
            state["users"] = float(users)
            record()

    def pod():
        try:
            yield env.timeout(timing.pod_start_s)
        except simpy.Interrupt:
            return
        starting.remove(env.active_process)
        state["ready"] += 1
        record()

    def controller():
        history: list[tuple[float, int]] = []
        while True:
            spec = state["ready"] + len(starting)
            wanted = _wanted(signal, state["users"], state["ready"], spec, target, timing.tolerance)
            history = [(t, w) for t, w in history if t > env.now - timing.stabilization_s] + [(env.now, wanted)]
            desired = wanted if wanted >= spec else max(w for _, w in history)
            desired = _clamp(desired, lo, hi)
            if desired > spec:
                for _ in range(desired - spec):
                    starting.append(env.process(pod()))
            elif desired < spec:
                for _ in range(spec - desired):
                    if starting:
                        starting.pop().interrupt()
                    else:
                        state["ready"] -= 1
            if desired != spec:
                record()
            yield env.timeout(timing.sync_s)

    record()
    env.process(traffic_process())
    env.process(controller())
    env.run(until=traffic.end_s)
    t, users, ready, replicas = (list(c) for c in zip(*rows))
    return _totals("autoscaled", t, users, ready, replicas, traffic.end_s, p95_at, warning_ms, critical_ms,
                   replica_cost)


def _wanted(signal, users: float, ready: int, spec: int, target: float, tolerance: float = 0.0) -> int:
    """The HPA's recommendation: ceil(spec × mean metric / target), a starting pod reading 0; ``spec``
    unchanged within the tolerance."""
    if spec <= 0:
        return 1
    total = ready * float(signal.value(users / ready)) if ready > 0 else 0.0
    ratio = total / spec / target
    if abs(ratio - 1.0) <= tolerance:
        return spec
    return max(math.ceil(spec * ratio - 1e-9), 1)


def _steady(signal, users: float, target: float, lo: int, hi: int) -> int:
    """The replicas the HPA holds at a constant ``users``: the fewest whose recommendation is no more."""
    n = lo
    while n < hi and _wanted(signal, users, n, n, target) > n:
        n += 1
    return n


def _clamp(n: int, lo: int, hi: int) -> int:
    return int(min(max(n, lo), hi))
