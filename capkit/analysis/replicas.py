"""Replicas needed for a target user count, with N+1 headroom, and the limit that decides it."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from capkit.analysis.regression import ResourceFit
from capkit.errors import ParameterError
from capkit.schemas import RESOURCES, Interval, NotMeasured


@dataclass
class ReplicaPlan:
    """How many replicas carry ``target_users`` with ``headroom`` spare, and why.

    ``replicas`` is :class:`~capkit.schemas.NotMeasured` when no measured limit decides it: a
    replica count with nothing measured behind it is never given.
    """

    target_users: float
    headroom: int
    replicas: float | NotMeasured  # inf when one replica cannot carry a single user within a limit
    deciding: str | None  # label of the deciding limit
    table: pd.DataFrame

    def summary(self) -> str:
        if isinstance(self.replicas, NotMeasured):
            return f"{self.target_users:,.0f} users: replicas unknown — {self.replicas.reason}."
        if math.isinf(self.replicas):
            return f"{self.target_users:,.0f} users: one replica cannot carry a single user within {self.deciding}."
        return (f"{self.target_users:,.0f} users need {self.replicas:.0f} replicas "
                f"(N+{self.headroom}), decided by {self.deciding}.")


def replicas_needed(resources, target_users: float, *, headroom: int = 1, latency=None, answer=None) -> ReplicaPlan:
    """Per limit: users one replica carries at the planning bound, and replicas for ``target_users``.

    Parameters
    ----------
    resources : ResourceCapacity
        Its resource fits; each replica carries at most ``capacity.low`` users of a resource.
    target_users : float
        Concurrent users to carry (> 0).
    headroom : int
        Spare replicas on top (N+1 by default: one may fail or be deployed).
    latency : LatencyModel, optional
        Adds the p95 warning crossing (its lower bound) as a per-replica limit.
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
        return _from_answer(answer, target, headroom)
    rows = []
    for resource, fit in resources.fits.items():
        if isinstance(fit, ResourceFit) and isinstance(fit.capacity, Interval):
            label, unit = RESOURCES[resource]
            rows.append({"limit": f"{label} ({fit.limit:g} {unit})", "per_replica": fit.capacity.low})
    if latency is not None:
        crossing = latency.crossing("warning")
        if math.isfinite(crossing.estimate):
            rows.append({"limit": f"p95 latency ({latency.threshold_ms('warning'):g} ms warning)",
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
        why = ("no limit was fitted" if not rows else
               "no measured limit is reached within the data's support")
        return ReplicaPlan(target, headroom, NotMeasured(why), None, table)
    top = finite.sort_values("replicas", kind="stable").iloc[-1]
    return ReplicaPlan(target, headroom, float(top["replicas"]), str(top["limit"]), table)


def _from_answer(answer, target: float, headroom: int) -> ReplicaPlan:
    from capkit.analysis.answer import CAPACITY_KEYS
    from capkit.schemas import Basis

    rows = []
    for t in answer.thresholds:
        if t.key not in CAPACITY_KEYS or (t.key == "p95" and t.level != "warning") or \
                (t.key not in ("p95", "errors") and t.level != "critical"):
            continue
        if not isinstance(t.users, Interval) or not math.isfinite(t.users.estimate):
            continue
        per = math.floor(t.users.low)
        rows.append({"limit": f"{t.metric} ({t.describe_level()})", "per_replica": per, "basis": str(t.basis),
                     "replicas": (math.ceil(target / per) + headroom) if per >= 1 else math.inf})
    table = pd.DataFrame(rows, columns=["limit", "per_replica", "basis", "replicas"])
    cap = answer.capacity
    if cap is None or not isinstance(cap.users, Interval) or not math.isfinite(cap.users.estimate):
        return ReplicaPlan(target, headroom, NotMeasured("no limit of a replica was measured or projected"), None,
                           table)
    if cap.basis not in (Basis.MEASURED, Basis.PROJECTED):
        return ReplicaPlan(target, headroom, NotMeasured(f"the capacity ({cap.metric}) is {cap.basis} from "
                                                         f"the measured loads; measure near it"), None, table)
    per = math.floor(cap.users.low)
    replicas = (math.ceil(target / per) + headroom) if per >= 1 else math.inf
    return ReplicaPlan(target, headroom, float(replicas), f"{cap.metric} ({cap.describe_level()}, {cap.basis})",
                       table)
