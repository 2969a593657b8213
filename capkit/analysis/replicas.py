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


def replicas_needed(resources, target_users: float, *, headroom: int = 1, latency=None) -> ReplicaPlan:
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
