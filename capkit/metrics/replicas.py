"""The service under test as one or more replicas: each one's process tree and cgroup, and their sum.

With one replica (a single service) every sample is the ``service`` source's, as always. With a
fleet each replica's samples go under its own source (``replica1``, ``replica2`` …) and their sum
under ``service``, with ``replicas_alive``: a replica that dies is a loss the analysis flags, not
the end of the run.
"""

from __future__ import annotations

from dataclasses import dataclass

from capkit.metrics.cgroups import Cgroup, CgroupCollector
from capkit.metrics.process import DbTarget, ProcessTreeSampler

# how a replica's metric becomes the fleet's: summed, unless named here
FLEET_MAX = ("cpu_max_process", "cpu_demand_max_process")
FLEET_MEAN = ("cpu_throttled_share",)


@dataclass(frozen=True)
class Replica:
    """One replica: its source name in the samples, its root PID and the cgroup holding its limits."""

    name: str
    pid: int
    cgroup: Cgroup | None = None


class ReplicaSampler:
    """Samples every replica (:class:`ProcessTreeSampler` plus :class:`CgroupCollector`).

    Parameters
    ----------
    replicas : list of Replica
        One (a single service, sampled as ``service``) or more (a fleet).
    db : DbTarget, optional
        Where the replicas' database connections go.
    fleet : bool
        Sample per replica and summed, with ``replicas_alive``, even for one replica.
    """

    def __init__(self, replicas: list[Replica], db: DbTarget | None = None, *, fleet: bool | None = None):
        self.replicas = list(replicas)
        self.fleet = len(self.replicas) > 1 if fleet is None else fleet
        self._trees = {r.name: ProcessTreeSampler(r.pid, db) for r in self.replicas}
        self._groups = {r.name: CgroupCollector(r.cgroup, source=r.name) for r in self.replicas
                        if r.cgroup is not None}
        self._lost: set[str] = set()

    def alive_names(self) -> list[str]:
        return [r.name for r in self.replicas if r.name not in self._lost and self._trees[r.name].alive()]

    def alive(self) -> bool:
        """True while any replica runs."""
        return bool(self.alive_names())

    def newly_lost(self) -> list[str]:
        """Replicas whose process is gone since the last call."""
        alive = set(self.alive_names())
        gone = [r.name for r in self.replicas if r.name not in alive and r.name not in self._lost]
        self._lost.update(gone)
        return gone

    def oom_killed(self) -> list[str]:
        """Replicas in whose cgroup the kernel has OOM-killed a process."""
        return [name for name, group in self._groups.items() if group.oom_kills() > 0]

    def limit_of(self, name: str) -> Cgroup | None:
        return next((r.cgroup for r in self.replicas if r.name == name), None)

    def rows(self, now: float) -> list[dict]:
        """One sample of every replica (and, for a fleet, their sum) as resource rows."""
        per: dict[str, dict[str, float]] = {}
        for replica in self.replicas:
            values = self._trees[replica.name].sample() if replica.name not in self._lost else {}
            group = self._groups.get(replica.name)
            if group is not None and values:
                values.update(group.sample())
            if values:
                per[replica.name] = values
        rows = []
        if self.fleet:
            for name, values in per.items():
                rows.extend({"ts": now, "source": name, "metric": m, "value": float(v)} for m, v in values.items())
        totals = _combine(list(per.values()))
        if self.fleet:
            totals["replicas_alive"] = float(len(self.alive_names()))
        if not per:
            rows.append({"ts": now, "source": "service", "metric": "missed_ProcessTreeSampler", "value": 1.0})
        rows.extend({"ts": now, "source": "service", "metric": m, "value": float(v)} for m, v in totals.items())
        return rows


class SumOf:
    """One collector per replica, sampled once per interval: their sum under ``source``, and each
    replica's own values through :meth:`parts` (collectors that repeat what this one last read)."""

    def __init__(self, collectors: list, source: str):
        self.collectors = list(collectors)
        self.source = source
        self.last: list[dict[str, float]] = [{} for _ in self.collectors]

    def sample(self) -> dict[str, float]:
        self.last = [c.sample() for c in self.collectors]
        return _combine([values for values in self.last if values])

    def parts(self, name) -> list:
        """Collectors of each replica's last values, with source ``name(i)``; list them after this one."""
        return [_Part(self, i, name(i)) for i in range(len(self.collectors))]

    def close(self) -> None:
        for collector in self.collectors:
            collector.close()


class _Part:
    def __init__(self, whole: SumOf, index: int, source: str):
        self.whole, self.index, self.source = whole, index, source

    def sample(self) -> dict[str, float]:
        return dict(self.whole.last[self.index])

    def close(self) -> None:
        pass


def _combine(samples: list[dict[str, float]]) -> dict[str, float]:
    out: dict[str, float] = {}
    names = {m for s in samples for m in s}
    for metric in names:
        values = [s[metric] for s in samples if metric in s]
        if metric in FLEET_MAX:
            out[metric] = max(values)
        elif metric in FLEET_MEAN:
            out[metric] = sum(values) / len(values)
        else:
            out[metric] = sum(values)
    return out


__all__ = ["Replica", "ReplicaSampler", "SumOf"]
