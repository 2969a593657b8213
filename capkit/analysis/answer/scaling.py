"""From measured capacity to an autoscaling plan: replicas over time, the policy, its replay and its risk.

``scaling_plan(result, traffic, …)`` takes a run's one answer (the capacity per replica at its
planning bound, the binding limit, the per-user costs, the latency model) and a day of traffic, and
returns a :class:`ScalingPlan`:

- the static plan: ``ceil(users / users_per_replica) + headroom`` at every moment and at the peak;
- the fleet's shared database limits at the peak's replicas (connections, DB CPU:
  :func:`~capkit.analysis.answer.replicas.fleet_checks`), "not measured (why)" when the run did not;
- the policy (:class:`Policy`): the signal chosen from the binding limit
  (:mod:`~capkit.analysis.answer.signal`), its target at ``target_share`` of the planning figure,
  min and max replicas, and the pod's requests from the measured idle + per-user CPU and memory;
- the policy replayed over the day beside the static plan (:mod:`~capkit.analysis.answer.autoscale`);
- the peak's breach probability and the replicas for a risk (:mod:`~capkit.analysis.answer.risk`).

A capacity that is not measured or projected gives no plan: :class:`~capkit.errors.InsufficientDataError`
names why (never a replica count without a measurement behind it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from capkit.analysis.answer.autoscale import HpaTiming, Replay, replay_policy, static_replay
from capkit.analysis.answer.replicas import FleetCheck, fleet_checks, fleet_use
from capkit.analysis.answer.risk import CapacityDistribution, Risk, peak_risk
from capkit.analysis.answer.signal import Signal, choose_signal
from capkit.analysis.fits.regression import ResourceFit
from capkit.errors import InsufficientDataError, ParameterError
from capkit.schemas import Basis, Interval, NotMeasured


@dataclass(frozen=True)
class PodResources:
    """A pod's requests and limits: requests from the measured idle + per-user cost at the planned
    users per replica (the upper confidence bound of the fit's mean there, never above the limit),
    limits those the run was measured against."""

    cpu_request: float | NotMeasured  # cores
    memory_request: float | NotMeasured  # MiB
    cpu_limit: float
    memory_limit: float


@dataclass(frozen=True)
class Policy:
    """An autoscaling policy: scale on ``signal`` so that each replica carries ``target_users``."""

    signal: Signal
    target_users: float
    min_replicas: int
    max_replicas: int
    timing: HpaTiming = field(default_factory=HpaTiming)
    cpu_request: float | NotMeasured = NotMeasured("not computed")
    target_why: str = ""  # where target_users comes from, in words

    @property
    def target_value(self) -> float:
        """The target as the autoscaler reads it: % of the pod's request (cpu, memory), else the metric's
        average per pod."""
        value = float(self.signal.value(self.target_users))
        if self.signal.kind == "cpu" and isinstance(self.cpu_request, float):
            return 100.0 * value / self.cpu_request
        return value


@dataclass
class ScalingPlan:
    """Everything ``capkit scale`` writes and the "Scaling plan" page shows."""

    run_id: str
    traffic: object  # Traffic, grown
    growth: float
    headroom: int
    capacity: object  # the answer's capacity Threshold
    users_per_replica: int
    peak_users: float
    replicas_at_peak: int  # static: ceil(peak / users_per_replica) + headroom
    over_time: pd.DataFrame  # t_s, users, replicas (the static plan at each moment)
    fleet: list[FleetCheck]
    fleet_max_replicas: int | NotMeasured
    policy: Policy
    pod: PodResources
    replay: Replay | NotMeasured
    static: Replay | NotMeasured
    risk: Risk
    replica_cost: float | None
    warning_ms: float
    critical_ms: float

    @property
    def database_binds(self) -> FleetCheck | None:
        return next((c for c in self.fleet if c.binds), None)

    def to_json(self, manifests=()) -> dict:
        """The documented machine-readable shape (``capkit scale --json FILE``)."""
        num = lambda v: None if isinstance(v, NotMeasured) or v is None or not math.isfinite(v) else v  # noqa: E731
        replay = lambda r: None if isinstance(r, NotMeasured) else {  # noqa: E731
            "minutes_over_p95_warning": r.minutes_over_warning, "minutes_over_p95_critical": r.minutes_over_critical,
            "replica_hours": r.replica_hours, "cost": r.cost, "peak_replicas": r.peak_replicas}
        auto = replay(self.replay) or {}
        return {
            "run_id": self.run_id, "users_per_replica": self.users_per_replica, "headroom": self.headroom,
            "peak_users": self.peak_users, "growth": self.growth, "replicas_at_peak": self.replicas_at_peak,
            "replicas_for_risk": self.risk.replicas_for_risk, "risk": self.risk.risk,
            "breach_probability": self.risk.breach_probability, "breach_probability_se": self.risk.standard_error,
            "signal": self.policy.signal.metric, "signal_kind": self.policy.signal.kind,
            "signal_why": self.policy.signal.why,
            "target_users_per_replica": self.policy.target_users, "target_value": self.policy.target_value,
            "min_replicas": self.policy.min_replicas, "max_replicas": self.policy.max_replicas,
            "minutes_over_p95_warning": auto.get("minutes_over_p95_warning"),
            "minutes_over_p95_critical": auto.get("minutes_over_p95_critical"),
            "replica_hours": auto.get("replica_hours"), "cost": auto.get("cost"),
            "latency": str(self.replay) if isinstance(self.replay, NotMeasured) else "the run's latency model",
            "static": replay(self.static),
            "fleet": [{"limit": c.resource, "replicas": c.replicas, "limit_value": c.limit,
                       "use_high": c.value.high if isinstance(c.value, Interval) else None,
                       "binds": c.binds, "not_measured": c.value.reason if isinstance(c.value, NotMeasured) else None}
                      for c in self.fleet],
            "fleet_max_replicas": num(self.fleet_max_replicas) if not isinstance(self.fleet_max_replicas,
                                                                                 NotMeasured) else None,
            "manifests": [str(p) for p in manifests],
        }


def replicas_for(users, users_per_replica: int, headroom: int) -> np.ndarray:
    """The static rule: ``ceil(users / users_per_replica)`` (at least one) plus ``headroom``."""
    need = np.ceil(np.asarray(users, float) / users_per_replica - 1e-9)
    return (np.maximum(need, 1) + headroom).astype(int)


def planning_capacity(answer) -> tuple[int, object]:
    """(users per replica at the planning bound — the capacity's lower end, floored — and the capacity
    Threshold); :class:`InsufficientDataError` (why) when it is not measured or projected."""
    cap = answer.capacity
    if cap is None or not isinstance(cap.users, Interval) or not math.isfinite(cap.users.estimate):
        why = str(cap.users) if cap is not None and isinstance(cap.users, NotMeasured) else "no limit was reached"
        raise InsufficientDataError(f"run {answer.run_id}: capacity per replica not measured ({why}); "
                                    f"a scaling plan needs it — measure higher loads (capkit plan searches for it)")
    if cap.basis not in (Basis.MEASURED, Basis.PROJECTED):
        raise InsufficientDataError(f"run {answer.run_id}: capacity per replica not measured ({cap.metric} is "
                                    f"{cap.basis} from the measured loads); measure near it before planning")
    per = math.floor(cap.users.low)
    if per < 1:
        raise InsufficientDataError(f"run {answer.run_id}: one replica cannot carry a single user within "
                                    f"{cap.metric} at its planning bound ({cap.users.low:.2g} users)")
    return per, cap


def fleet_max(resources, peak_users: float, upto: int) -> int | NotMeasured:
    """The most replicas the database's connections allow at ``peak_users`` (each replica holds its idle
    pool), searched up to ``upto``; NotMeasured when the run did not measure connections."""
    fit = resources.fits.get("db_connections")
    if not isinstance(fit, ResourceFit):
        return NotMeasured(str(fit.reason) if isinstance(fit, NotMeasured) else "DB connections not in this run")
    limit = resources.limits.db_connections
    best = 0
    for r in range(1, upto + 1):
        if fleet_use(fit, r, peak_users).high <= limit:
            best = r
        else:
            break
    return best if best < upto else NotMeasured(f"not reached within {upto} replicas")


def pod_resources(result, users_per_replica: int) -> PodResources:
    """Requests at ``users_per_replica`` from the CPU and memory fits (the mean's upper confidence bound)."""
    limits = result.resources.limits

    def request(key):
        fit = result.resources.fits.get(key)
        if not isinstance(fit, ResourceFit):
            return NotMeasured(fit.reason if isinstance(fit, NotMeasured) else f"{key} not in this run")
        return float(min(fit.predict(users_per_replica)["ci_high"].iloc[0], fit.limit))

    return PodResources(request("cpu_cores"), request("rss_mib"), limits.cpu_cores, limits.memory_mib)


def scaling_plan(result, traffic, *, growth: float = 1.0, headroom: int = 1, replica_cost: float | None = None,
                 target_share: float = 0.8, risk: float = 0.01, timing: HpaTiming | None = None,
                 draws: int = 4000, seed: int = 0) -> ScalingPlan:
    """The scaling plan of ``result`` (a CapacityResult) for ``traffic`` × ``growth``.

    Parameters
    ----------
    result : CapacityResult
    traffic : Traffic
    growth : float
        Forecast factor on every row (1.3: 30 % more users next quarter).
    headroom : int
        Spare replicas (N+1 by default).
    replica_cost : float, optional
        Cost of one replica-hour.
    target_share : float
        The autoscaler aims each replica at this share of the planning figure (room for the load that
        arrives while new pods start).
    risk : float
        Breach probability the replicas for risk are planned for.
    timing : HpaTiming, optional
    draws, seed : int
        The Monte-Carlo's draws and seed.
    """
    if not (isinstance(growth, (int, float)) and math.isfinite(growth) and growth > 0):
        raise ParameterError(f"growth={growth!r} must be a number > 0 (1.3: 30 % more users)")
    if not 0 < target_share <= 1:
        raise ParameterError(f"target_share={target_share!r} must be in (0, 1]")
    if replica_cost is not None and not (math.isfinite(replica_cost) and replica_cost >= 0):
        raise ParameterError(f"replica cost {replica_cost!r} must be a number ≥ 0 (per replica-hour)")
    if int(headroom) != headroom or headroom < 0:
        raise ParameterError(f"headroom={headroom!r} must be a whole number ≥ 0")
    upr, cap = planning_capacity(result.answer)
    grown = traffic.scaled(growth, f"× {growth:g} growth") if growth != 1 else traffic
    peak = grown.peak
    at_peak = int(replicas_for(peak, upr, headroom))
    over_time = pd.DataFrame({"t_s": grown.t_s, "users": grown.users,
                              "replicas": replicas_for(grown.users, upr, headroom)})
    fleet = fleet_checks(result.resources, at_peak, peak)
    signal = choose_signal(result, upr)
    if isinstance(signal, NotMeasured):
        raise InsufficientDataError(f"run {result.run_id}: the signal to scale on is {signal}")
    pod = pod_resources(result, upr)
    crit = result.criteria
    dist = CapacityDistribution.of(cap.users)
    q = dist.quantile(risk)
    ceiling = max(at_peak, math.ceil(peak / q - 1e-9) + headroom if q > 0 else at_peak)
    fleet_cap = fleet_max(result.resources, peak, 4 * ceiling + 10)
    target, target_why = pool_target(signal, target_share, upr, crit.pool_shares[0])
    ceiling = max(ceiling, math.ceil(peak / target - 1e-9) + headroom)  # room for the target at the peak, + k
    policy = Policy(signal, target, min_replicas=1 + headroom, max_replicas=ceiling, timing=timing or HpaTiming(),
                    cpu_request=pod.cpu_request, target_why=target_why)
    the_risk = peak_risk(dist, policy, peak, headroom=headroom, static_replicas=at_peak, risk=risk, draws=draws,
                         seed=seed)
    if result.latency is None:
        why = NotMeasured(f"no latency model: {result.errors.get('latency')}")
        auto = static = why
    else:
        # below the lowest measured load the model is not carried downwards: a replica there reads that load's p95
        lowest = float(result.latency.observed["users"].min())
        p95_at = lambda users: result.latency.predict(np.maximum(users, lowest))["p95_ms"].to_numpy()  # noqa: E731
        kw = dict(p95_at=_finite_p95(p95_at), warning_ms=crit.p95_warning_ms, critical_ms=crit.p95_critical_ms,
                  replica_cost=replica_cost)
        auto = replay_policy(grown, policy, **kw)
        static = static_replay(grown, at_peak, **kw)
    return ScalingPlan(result.run_id, grown, float(growth), int(headroom), cap, upr, peak, at_peak, over_time, fleet,
                       fleet_cap, policy, pod, auto, static, the_risk, replica_cost, crit.p95_warning_ms,
                       crit.p95_critical_ms)


def pool_target(signal: Signal, target_share: float, users_per_replica: int, warning_share: float):
    """(target users per replica, why): ``target_share`` of the planning figure — for a pool, no more
    than where it reaches its warning share: a pool reads nearly full above it (it fills along a curve),
    and an autoscaler whose target sits there sees no room for more load (its ratio tops out at
    size / target, inside the tolerance)."""
    share = target_share * users_per_replica
    why = f"{100 * target_share:.0f} % of the planning figure {users_per_replica}"
    if signal.kind == "pods" and math.isfinite(signal.cap):
        warn = float(signal.users_at(warning_share * signal.cap))
        if warn < share:
            return warn, (f"where {signal.resource.replace('_', ' ')} reach their warning share "
                          f"({100 * warning_share:.0f} % in use, {number(warning_share * signal.cap)} of "
                          f"{signal.cap:g}), below {why}: above it the pool reads nearly full and the "
                          f"autoscaler could not see more load")
    return share, why


def number(x: float) -> str:
    return f"{x:.3g}"


def _finite_p95(p95_at):
    """``p95_at`` with no pod ready (users and no replica to serve them) read as an outage: infinite p95."""
    def at(users):
        users = np.asarray(users, float)
        out = np.full(users.shape, np.inf)
        ok = np.isfinite(users)
        if ok.any():
            out[ok] = p95_at(users[ok])
        return out
    return at

