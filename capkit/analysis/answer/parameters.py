"""The report parameters: one typed object for the CLI, the notebooks and the analysis.

A notebook's ``parameters`` cell holds ``store_url``, ``run_id``, ``output_dir`` and a dict
``parameters`` of overrides; :meth:`ReportParameters.from_notebook` turns them into this object,
so no parameter name is repeated in a notebook.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass, fields, replace

from capkit.errors import ConfigError, ParameterError
from capkit.schemas import DEFAULT_CRITERIA, Criteria, ResourceLimits


def _bad(name, value, want):
    raise ParameterError(f"parameter {name}={value!r} is not {want}")


def _positive(name, value):
    if not _is_num(value) or not math.isfinite(value) or value <= 0:
        _bad(name, value, "a number > 0")
    return float(value)


def _is_num(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


@dataclass(frozen=True)
class ReportParameters:
    """What a capacity analysis of one run is asked (all but ``run_id`` have defaults).

    Parameters
    ----------
    store_url : str or None
        The results store; None is the project's own (see :func:`~capkit.analysis.data.read.resolve_url`);
        ``env:NAME`` reads it from an environment variable (keeps passwords out of notebooks).
    run_id : str or None
        The run; None is the latest.
    baseline_run_id : str or None
        The comparison's baseline; None is the run stored before ``run_id``.
    output_dir : str or None
        Where the tables are written as CSV; None writes nothing.
    cpu_cores, memory_mib, db_connections, network_mbps, redis_memory_mib, model_queue_limit, db_cpu_cores : float
        The limits of one replica (and of the database server).
    criteria : Criteria or None
        The thresholds every decision is judged by (p95 warning and critical, error limit, shares
        of the limits, the confidence level); None is the run's own, stored with it. A notebook's
        ``parameters`` may give it as a dict of the fields to change.
    target_users : float
        Users the replica count is planned for; ``headroom`` spare replicas on top.
    train_share : float
        Backtest: share of the clean user steps to fit on.
    bootstrap, seed : int
        Bootstrap resamples (USL, latency) and their seed.
    """

    store_url: str | None = None
    run_id: str | None = None
    baseline_run_id: str | None = None
    output_dir: str | None = None
    cpu_cores: float = 1.0
    memory_mib: float = 1024.0
    db_connections: float = 60.0
    network_mbps: float = 100.0
    redis_memory_mib: float = 256.0
    model_queue_limit: float = 256.0
    db_cpu_cores: float = 1.0
    criteria: Criteria | None = None
    target_users: float = 500.0
    headroom: int = 1
    train_share: float = 0.6
    bootstrap: int = 200
    seed: int = 0

    def __post_init__(self):
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731 (frozen)
        for name in ("store_url", "run_id", "baseline_run_id", "output_dir"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value):
                _bad(name, value, "None or a non-empty string")
        for name in ("cpu_cores", "memory_mib", "db_connections", "network_mbps", "redis_memory_mib",
                     "model_queue_limit", "db_cpu_cores", "target_users"):
            set_(name, _positive(name, getattr(self, name)))
        if not _is_num(self.train_share) or not 0 < self.train_share < 1:
            _bad("train_share", self.train_share, "a number between 0 and 1 (exclusive)")
        for name in ("bootstrap", "headroom"):
            value = getattr(self, name)
            if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 0:
                _bad(name, value, "a whole number ≥ 0")
        if not isinstance(self.seed, numbers.Integral) or isinstance(self.seed, bool):
            _bad("seed", self.seed, "a whole number")
        if isinstance(self.criteria, dict):
            try:
                set_("criteria", Criteria.of(**self.criteria))
            except ConfigError as exc:
                raise ParameterError(f"parameter {exc}") from None
        elif self.criteria is not None and not isinstance(self.criteria, Criteria):
            _bad("criteria", self.criteria, "None, a Criteria or a dict of its fields")

    @property
    def level(self) -> float:
        """The confidence level of every interval (the criteria's; the default before they are resolved)."""
        return (self.criteria or DEFAULT_CRITERIA).level

    def resolved(self, criteria: Criteria) -> "ReportParameters":
        """These parameters with ``criteria`` (a run's own) where none were given."""
        return self if self.criteria is not None else replace(self, criteria=criteria)

    @classmethod
    def from_notebook(cls, store_url=None, run_id=None, output_dir=None, **parameters) -> "ReportParameters":
        """From a notebook's ``parameters`` cell (its ``parameters`` dict passed as keywords).

        Raises :class:`ParameterError` naming an unknown parameter.
        """
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(parameters) - known)
        if unknown:
            raise ParameterError(f"unknown report parameter(s) {', '.join(unknown)}; "
                                 f"known: {', '.join(sorted(known))}")
        pairs = {k: tuple(v) if isinstance(v, list) else v for k, v in parameters.items()}

        return cls(store_url=store_url, run_id=run_id, output_dir=output_dir, **pairs)

    @classmethod
    def from_limits(cls, limits: ResourceLimits, **others) -> "ReportParameters":
        """The parameters of a run analysed against ``limits`` (plus ``others``)."""
        return cls(cpu_cores=limits.cpu_cores, memory_mib=limits.memory_mib, db_connections=limits.db_connections,
                   network_mbps=limits.network_mbps, redis_memory_mib=limits.redis_memory_mib,
                   model_queue_limit=limits.model_queue, db_cpu_cores=limits.db_cpu_cores, **others)

    @property
    def limits(self) -> ResourceLimits:
        return ResourceLimits(cpu_cores=self.cpu_cores, memory_mib=self.memory_mib,
                              db_connections=self.db_connections, network_mbps=self.network_mbps,
                              redis_memory_mib=self.redis_memory_mib, model_queue=self.model_queue_limit,
                              db_cpu_cores=self.db_cpu_cores)

    def overrides(self) -> dict:
        """The fields that differ from the defaults, minus where to read and write (for a notebook's
        ``parameters`` dict)."""
        default = ReportParameters()
        skip = {"store_url", "run_id", "output_dir"}
        out = {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()
               if k not in skip | {"criteria"} and v != getattr(default, k)}
        if self.criteria is not None:
            out["criteria"] = self.criteria.model_dump(mode="json")
        return out

    def replace(self, **changes) -> "ReportParameters":
        return replace(self, **changes)
