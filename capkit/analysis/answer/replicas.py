"""Replicas needed for a target user count, with N+1 headroom, and the limit that decides it.

Two kinds of limit. A replica's own (CPU, memory, network, model queue, the p95 warning) divide:
each replica carries at most so many users, so more replicas carry more. The database's
(connections, DB CPU) are shared by every replica: each replica holds its idle pool however few
users it serves, so the fleet uses ``replicas × baseline + users × per_user`` and more replicas
only add to it. Those are checked for the whole fleet at the replica count the others need; when
they bind, the plan says so and names the mitigation instead of adding replicas.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from capkit.analysis.fits.regression import ResourceFit, solve_users
from capkit.errors import ParameterError
from capkit.schemas import DEFAULT_CRITERIA, RESOURCES, Interval, NotMeasured

# limits of the one database every replica shares: (label, unit)
SHARED = {"db_connections": ("DB connections", "connections"), "db_cpu_cores": ("DB CPU", "cores")}
MITIGATION = "PgBouncer (transaction pooling) or a bigger database plan"


@dataclass(frozen=True)
class FleetCheck:
    """One shared database limit checked for ``replicas`` replicas carrying ``users`` together.

    ``value`` is the fleet's use: the estimate, and the bounds of the prediction (the idle
    baseline of every replica plus the per-user cost of every user; parameter uncertainty is
    shared by the replicas, each replica's own scatter is not). ``binds`` compares the upper
    bound with ``limit``; ``max_users`` is how many users that many replicas carry within it.
    ``value`` is :class:`~capkit.schemas.NotMeasured` when the resource was not fitted.
    """

    resource: str
    replicas: int
    users: float
    limit: float
    value: Interval | NotMeasured
    max_users: float = math.nan

    @property
    def label(self) -> str:
        return f"fleet {SHARED[self.resource][0]} at {self.replicas} replicas"

    @property
    def binds(self) -> bool:
        return isinstance(self.value, Interval) and self.value.high > self.limit

    def describe(self) -> str:
        """``fleet DB connections at 3 replicas: 47 of 60`` (the upper bound, the planning figure)."""
        unit = SHARED[self.resource][1]
        if isinstance(self.value, NotMeasured):
            return f"{self.label}: {self.value}"
        return (f"{self.label}: {_num(self.value.high)} of {self.limit:g} {unit} "
                f"(estimate {_num(self.value.estimate)})")


def _num(x: float) -> str:
    return f"{x:.3g}" if abs(x) < 100 else f"{x:,.0f}"


@dataclass
class ReplicaPlan:
    """How many replicas carry ``target_users`` with ``headroom`` spare, and why.

    ``replicas`` is :class:`~capkit.schemas.NotMeasured` when no measured limit decides it: a
    replica count with nothing measured behind it is never given. ``fleet`` holds the checks of
    the shared database limits at that count; ``database_binds`` is the first that binds (then
    more replicas do not help, :data:`MITIGATION` does).
    """

    target_users: float
    headroom: int
    replicas: float | NotMeasured  # inf when one replica cannot carry a single user within a limit
    deciding: str | None  # label of the deciding limit
    table: pd.DataFrame
    fleet: list[FleetCheck] = field(default_factory=list)

    @property
    def database_binds(self) -> FleetCheck | None:
        return next((check for check in self.fleet if check.binds), None)

    def summary(self) -> str:
        binds = self.database_binds
        db = (f"the database binds — {binds.describe()}; more replicas do not help: {MITIGATION}."
              if binds else "")
        if isinstance(self.replicas, NotMeasured):
            return (f"{self.target_users:,.0f} users: replicas unknown — {self.replicas.reason}"
                    + (f"; and {db}" if db else "."))
        if math.isinf(self.replicas):
            return f"{self.target_users:,.0f} users: one replica cannot carry a single user within {self.deciding}."
        if binds:
            return (f"{self.target_users:,.0f} users: {self.replicas:.0f} replicas (N+{self.headroom}) by "
                    f"{self.deciding} are not enough: {db}")
        return (f"{self.target_users:,.0f} users need {self.replicas:.0f} replicas "
                f"(N+{self.headroom}), decided by {self.deciding}.")


def fleet_use(fit: ResourceFit, replicas: int, users: float) -> Interval:
    """What ``replicas`` replicas carrying ``users`` together use of a shared resource.

    Each replica is at ``users / replicas``; the sum is ``replicas × baseline + users × per_user``
    (+ the time term per replica). Its variance: the parameters' (shared) plus each replica's
    residual scatter (independent), so the bounds are those of a prediction, at ``fit.level``.
    """
    x = np.array([replicas, users] + ([replicas * fit.t_mid_h] if len(fit.params) == 3 else []), dtype=float)
    mean = float(x @ fit.params)
    sd = math.sqrt(max(float(x @ fit.cov @ x), 0.0) + replicas * fit.resid_sd**2)
    t = float(stats.t.ppf(0.5 + fit.level / 2, max(fit.df_resid, 1.0)))
    return Interval(mean, mean - t * sd, mean + t * sd, fit.level)


def fleet_checks(resources, replicas: int, target_users: float, *, db_cpu=None) -> list[FleetCheck]:
    """Check every shared database limit (:data:`SHARED`) for ``replicas`` replicas carrying
    ``target_users``; a limit not measured in the run gives a check whose value says why."""
    fits = {"db_connections": resources.fits.get("db_connections", NotMeasured("not in this run")),
            "db_cpu_cores": db_cpu if db_cpu is not None else resources.db_cpu_fit()}
    out = []
    for resource, fit in fits.items():
        limit = resources.limits.limit_for(resource)
        if not isinstance(fit, ResourceFit):
            out.append(FleetCheck(resource, replicas, target_users, limit, fit))
            continue
        users = solve_users(lambda n, f=fit: fleet_use(f, replicas, n).high, limit)
        out.append(FleetCheck(resource, replicas, target_users, limit, fleet_use(fit, replicas, target_users), users))
    return out


def _fleet_rows(checks: list[FleetCheck]) -> list[dict]:
    return [{"limit": check.label, "per_replica": math.nan, "replicas": math.nan, "fleet": check.describe(),
             "fleet_value": check.value.high if isinstance(check.value, Interval) else math.nan,
             "fleet_limit": check.limit, "fleet_max_users": check.max_users,
             "binds": check.binds}
            for check in checks]


def replicas_needed(resources, target_users: float, *, headroom: int = 1, latency=None,
                    db_cpu: ResourceFit | NotMeasured | None = None, answer=None,
                    p95_ms: float = DEFAULT_CRITERIA.p95_warning_ms) -> ReplicaPlan:
    """Per limit: users one replica carries at the planning bound, and replicas for ``target_users``;
    then the database's limits checked for the whole fleet at that count.

    Parameters
    ----------
    resources : ResourceCapacity
        Its resource fits; each replica carries at most ``capacity.low`` users of a resource.
    target_users : float
        Concurrent users to carry (> 0).
    headroom : int
        Spare replicas on top (N+1 by default: one may fail or be deployed).
    latency : LatencyModel, optional
        Adds the crossing of ``p95_ms`` (its lower bound) as a per-replica limit.
    db_cpu : ResourceFit or NotMeasured, optional
        The DB CPU fit; by default fitted from the run's PostgreSQL backend CPU, when sampled.
    answer : CapacityAnswer, optional
        The run's one answer: each replica carries at most the lower end of its capacity, and every
        threshold that ends a replica's useful load is a row with its basis. An extrapolated or
        unmeasured capacity gives "unknown" replicas, never a number.

    Returns
    -------
    ReplicaPlan
    """
    try:
        target = float(target_users)
        headroom = int(headroom)
    except (TypeError, ValueError):
        raise ParameterError(f"target_users must be a number and headroom a whole number, got "
                             f"{target_users!r}, {headroom!r}") from None
    if not math.isfinite(target) or target <= 0 or headroom < 0:
        raise ParameterError(f"target_users must be > 0 and headroom ≥ 0, got {target_users!r}, {headroom!r}")
    if answer is not None:
        table, replicas, deciding = _from_answer(answer, target, headroom)
    else:
        rows = []
        for resource, fit in resources.fits.items():
            if resource in SHARED:  # the database's: checked for the fleet below, never per replica
                continue
            if isinstance(fit, ResourceFit) and isinstance(fit.capacity, Interval):
                label, unit = RESOURCES[resource]
                rows.append({"limit": f"{label} ({fit.limit:g} {unit})", "per_replica": fit.capacity.low})
        if latency is not None:
            crossing = latency.users_at(p95_ms)
            if math.isfinite(crossing.estimate):
                rows.append({"limit": f"p95 latency ({p95_ms:g} ms warning)",
                             "per_replica": crossing.low})
        for row in rows:
            cap = row["per_replica"]
            row["per_replica"] = math.floor(cap) if math.isfinite(cap) else math.inf
            if math.isinf(cap):
                row["replicas"] = math.nan
            elif row["per_replica"] < 1:
                row["replicas"] = math.inf
            else:
                row["replicas"] = math.ceil(target / row["per_replica"]) + headroom
        table = pd.DataFrame(rows, columns=["limit", "per_replica", "replicas"])
        finite = table.dropna(subset=["replicas"])
        if finite.empty:
            why = ("no per-replica limit was fitted" if not rows else
                   "no measured limit is reached within the data's support")
            replicas, deciding = NotMeasured(why), None
        else:
            top = finite.sort_values("replicas", kind="stable").iloc[-1]
            replicas, deciding = float(top["replicas"]), str(top["limit"])
    # the fleet at the count the replica limits need; with none, at the fewest any plan runs
    # (1 + headroom): if the database binds there it binds at every count
    at = int(replicas) if isinstance(replicas, float) and math.isfinite(replicas) else 1 + headroom
    fleet = [] if isinstance(replicas, float) and math.isinf(replicas) else fleet_checks(
        resources, at, target, db_cpu=db_cpu)
    if fleet:
        parts = [table.assign(fleet="", binds=False), pd.DataFrame(_fleet_rows(fleet))]
        table = pd.concat([part for part in parts if not part.empty], ignore_index=True)
    return ReplicaPlan(target, headroom, replicas, deciding, table, fleet)


def _from_answer(answer, target: float, headroom: int):
    """(table, replicas, deciding) from the run's one answer: the limits that end a replica's
    useful load (p95 warning, errors, CPU and memory at their critical level), each with its basis."""
    from capkit.analysis.answer.limits import CAPACITY_KEYS
    from capkit.schemas import Basis

    rows = []
    for t in answer.thresholds:
        if t.key not in CAPACITY_KEYS or t.key in SHARED or (t.key == "p95" and t.severity != "warning") or \
                (t.key not in ("p95", "errors") and t.severity != "critical"):
            continue
        if not isinstance(t.users, Interval) or not math.isfinite(t.users.estimate):
            continue
        per = math.floor(t.users.low)
        rows.append({"limit": f"{t.metric} ({t.describe_value()})", "per_replica": per, "basis": str(t.basis),
                     "replicas": (math.ceil(target / per) + headroom) if per >= 1 else math.inf})
    table = pd.DataFrame(rows, columns=["limit", "per_replica", "basis", "replicas"])
    cap = answer.capacity
    if cap is None or not isinstance(cap.users, Interval) or not math.isfinite(cap.users.estimate):
        return table, NotMeasured("no limit of a replica was measured or projected"), None
    if cap.basis not in (Basis.MEASURED, Basis.PROJECTED):
        return table, NotMeasured(f"the capacity ({cap.metric}) is {cap.basis} from the measured loads; "
                                  f"measure near it"), None
    per = math.floor(cap.users.low)
    replicas = float(math.ceil(target / per) + headroom) if per >= 1 else math.inf
    return table, replicas, f"{cap.metric} ({cap.describe_value()}, {cap.basis})"
