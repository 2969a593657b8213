"""Data contracts shared by the packages: stage plans, run specs and metadata, limits, and the
result types every range and every missing number is given as (:class:`Interval`, :class:`NotMeasured`)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator

from capkit.errors import ConfigError


class Stage(BaseModel):
    """One step of a stepped load: ``users`` held for ``seconds`` (``users=0`` is the idle step)."""

    model_config = ConfigDict(frozen=True)

    users: int = Field(ge=0, le=100_000)
    seconds: float = Field(gt=0, le=86_400)
    rate: float | None = Field(None, ge=0, description="open model: requests/s instead of users")
    poisson: bool = Field(False, description="with rate: exponential gaps (Poisson arrivals) instead of constant")
    trace: bool = Field(False, description="with rate: the arrivals of the run's --trace (rate: their mean)")
    mix: dict[str, float] | None = Field(None, description="users per class in this step's proportions "
                                                           "(--design mix); None: the scenario weights")


class StagePlan(BaseModel):
    """An ordered list of stages plus the warm-up trimmed from the start of each."""

    model_config = ConfigDict(frozen=True)

    stages: tuple[Stage, ...]
    warmup_s: float = Field(2.0, ge=0)
    spawn_rate: float = Field(50.0, gt=0)
    seed: int = Field(0, description="seed of the Poisson arrival gaps")
    burstiness: float = Field(1.0, gt=0, description="pRATE stages: gamma gaps of this shape (1: Poisson; "
                                                     "CV = 1/sqrt(burstiness), vLLM's --burstiness)")
    soak_s: float = Field(0.0, ge=0, description="the last stage is a soak of this length (leak detection)")

    @field_validator("stages")
    @classmethod
    def _not_empty(cls, v):
        if not v:
            raise ValueError("a stage plan needs at least one stage")
        return v

    def with_soak(self, seconds: float) -> "StagePlan":
        """This plan with a soak appended: the last stage's load held ``seconds`` more."""
        last = self.stages[-1]
        soak = Stage(users=last.users, seconds=seconds, rate=last.rate)
        return self.model_copy(update={"stages": (*self.stages, soak), "soak_s": float(seconds)})

    @property
    def duration_s(self) -> float:
        return sum(s.seconds for s in self.stages)

    def to_spec(self) -> str:
        return ",".join(f"trace{s.seconds:g}@{s.users}" if s.trace else
                        f"{'p' if s.poisson else 'r'}{s.rate:g}x{s.seconds:g}@{s.users}" if s.rate is not None
                        else f"{s.users}x{s.seconds:g}" for s in self.stages)

    @property
    def open_model(self) -> bool:
        """True when some stage is an arrival rate (requests/s) rather than a user count."""
        return any(s.rate is not None for s in self.stages)

    @classmethod
    def parse(cls, spec: str, *, warmup_s: float = 2.0, spawn_rate: float = 50.0, seed: int = 0) -> "StagePlan":
        """Parse ``"0x20,5x30,10x30"`` (USERSxSECONDS, comma separated).

        An arrival-rate stage is ``rRATExSECONDS[@USERS]``: RATE requests (task runs) per second
        for SECONDS, issued by a pool of USERS users (default ``max(10, 2 × RATE)``); runs that
        find no free user in time are dropped and counted. ``pRATExSECONDS[@USERS]`` is the same
        with Poisson arrivals (exponential gaps, seeded by ``seed``). Raises :class:`ConfigError` with one line
        naming the bad item.
        """
        stages = []
        for item in (spec or "").split(","):
            item = item.strip()
            stages.append(_parse_stage(item))
        for stage in stages[1:]:
            if stage.users <= 0:
                raise ConfigError("stage plan: only the first stage may be idle (0 users); later stages need users > 0")
        if warmup_s >= min(s.seconds for s in stages):
            raise ConfigError(f"warm-up {warmup_s:g} s must be shorter than the shortest stage")
        return cls(stages=tuple(stages), warmup_s=warmup_s, spawn_rate=spawn_rate, seed=seed)


def _parse_stage(item: str) -> Stage:
    rate = None
    body = item
    try:
        if body.startswith(("r", "p")):
            body, _, vus = body[1:].partition("@")
            rate_s, sep, seconds = body.partition("x")
            if not sep:
                raise ValueError
            rate = float(rate_s)
            if not math.isfinite(rate) or rate <= 0:
                raise ValueError
            users = int(vus) if vus else max(10, math.ceil(2 * rate))
            stage = Stage(users=users, seconds=float(seconds), rate=rate, poisson=item.startswith("p"))
            if users <= 0:
                raise ValueError
        else:
            users, sep, seconds = body.partition("x")
            if not sep:
                raise ValueError
            stage = Stage(users=int(users), seconds=float(seconds))
    except (ValueError, TypeError):
        raise ConfigError(
            f"stage plan item {item!r} is not USERSxSECONDS (USERS ≥ 0, SECONDS > 0), rRATExSECONDS[@USERS] "
            f"or pRATExSECONDS[@USERS] (Poisson) "
            f"(example: --stages 0x20,5x30,10x30 or 0x10,r20x30,r40x30)"
        ) from None
    if not math.isfinite(stage.seconds):
        raise ConfigError(f"stage plan item {item!r} has a non-finite duration")
    return stage


def stepped(users: list[int], *, idle_s: float, step_s: float, warmup_s: float) -> StagePlan:
    """An idle step then one step per user count, each held ``step_s`` seconds."""
    stages = [Stage(users=0, seconds=idle_s)] + [Stage(users=u, seconds=step_s) for u in users]
    return StagePlan(stages=tuple(stages), warmup_s=warmup_s)


def time_share(plan: StagePlan) -> float:
    """Share of the plan's load variance, over its loaded steps, that a quadratic in time explains.

    The loaded steps are the ones the resource fits use (an idle step before the first load is a
    cold service, left out: :mod:`capkit.analysis.fits.regression`). A ramp (≈ 1) lets anything that
    grows with time pass for a per-user cost; an up-and-down pass (5, 15, 25, 30, 20, 10: 0.90)
    still lets a drift that levels off (a cache filling to its bound, the heap growing to its
    working size) pass for one, since its high loads sit in the middle of the run, where a bent
    drift stands above its straight line; an order with a share near 0 leaves the per-user cost
    unbiased by any drift up to a quadratic, and the regression's residuals carry the rest."""
    import numpy as np  # here, not at import: the load processes read this module too

    ends = np.cumsum([s.seconds for s in plan.stages])
    mids = ends - np.array([s.seconds for s in plan.stages]) / 2
    loaded = np.array([s.users > 0 for s in plan.stages])
    users = np.array([s.users for s in plan.stages], dtype=float)[loaded]
    t = mids[loaded]
    if len(users) < 2 or users.var() == 0:
        return 0.0
    basis = np.column_stack([np.ones_like(t), t, t**2])
    resid = users - basis @ np.linalg.lstsq(basis, users, rcond=None)[0]
    return float(1 - resid.var() / users.var())


# The profiles of `capkit plan`: smoke for tests (≤ 60 s, a plain ramp), quick by default
# (≤ 4 min) and full. quick and full visit their levels in an order whose load a quadratic in time
# explains < 1 % of (:func:`time_share`, over the loaded steps; the least of every order, ties to
# the smaller jumps, then to the lower first step), so that load is confounded neither with time
# nor with a drift that levels off.
PROFILES: dict[str, StagePlan] = {
    "smoke": stepped([4, 8, 12, 16, 20], idle_s=4, step_s=5, warmup_s=1),
    "quick": stepped([10, 30, 20, 15, 5, 25], idle_s=15, step_s=25, warmup_s=5),
    "full": stepped([10, 60, 80, 20, 5, 30, 50, 40], idle_s=30, step_s=60, warmup_s=10),
}


def profile_plan(name: str) -> StagePlan:
    try:
        return PROFILES[name]
    except KeyError:
        raise ConfigError(f"unknown profile {name!r}; choose one of: {', '.join(PROFILES)}") from None


class ResourceLimits(BaseModel):
    """The limit of each resource a capacity is measured against."""

    cpu_cores: float = Field(1.0, gt=0, description="cores given to the service")
    memory_mib: float = Field(1024.0, gt=0)
    db_connections: float = Field(60.0, gt=0)
    network_mbps: float = Field(100.0, gt=0)
    redis_memory_mib: float = Field(256.0, gt=0)
    model_queue: float = Field(256.0, gt=0, description="model queue size (waiting requests)")
    db_cpu_cores: float = Field(1.0, gt=0, description="cores of the database server (DB CPU thresholds)")
    model_slots: float | None = Field(None, gt=0, description="concurrent generations; None: as the service reports")
    db_pool: float | None = Field(None, gt=0, description="connections the service's pool hands out; None: as reported")
    custom: dict[str, float] = Field(default_factory=dict, description="limits of a target's own series (--limit)")

    def limit_for(self, resource: str) -> float:
        """The limit of ``resource``; NaN for a pool whose size is neither given nor reported."""
        if resource in self.custom:
            return self.custom[resource]
        return {
            "cpu_cores": self.cpu_cores,
            "rss_mib": self.memory_mib,
            "db_connections": self.db_connections,
            "network_kbps": self.network_mbps * 1e6 / 8 / 1024,
            "redis_memory_mib": self.redis_memory_mib,
            "model_queue": self.model_queue,
            "db_cpu_cores": self.db_cpu_cores,
            "model_slots": self.model_slots if self.model_slots is not None else math.nan,
            "db_pool": self.db_pool if self.db_pool is not None else math.nan,
        }[resource]


class Criteria(BaseModel):
    """What "one replica carries the load" means: the thresholds every decision is judged by.

    The defaults are written here once. A run stores its criteria in its spec
    (:attr:`RunSpec.criteria`); the search, the answer, the gates and the report read them from
    there (``capkit report`` overrides them with the same flags as ``capkit plan``).

    ``level`` is the confidence level of every interval; a threshold's warning or critical rank is
    its *severity*, never its level.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    p95_warning_ms: float = Field(500.0, gt=0, description="p95 latency that ends the ramp: the planning bound")
    p95_critical_ms: float = Field(2000.0, gt=0, description="p95 latency of the critical threshold and the CI gate")
    max_error_rate: float = Field(0.05, gt=0, lt=1, description="failures / requests a step may have (429s apart)")
    cpu_shares: tuple[float, float] = Field((0.70, 0.90), description="warning, critical share of the CPU limit")
    memory_shares: tuple[float, float] = Field((0.75, 0.90), description="warning, critical share of the memory limit")
    db_cpu_shares: tuple[float, float] = Field((0.60, 0.85), description="warning, critical share of the DB's cores")
    pool_shares: tuple[float, float] = Field((0.80, 0.95), description="warning, critical (full) share of a pool")
    level: float = Field(0.95, gt=0, lt=1, description="confidence level of every interval")

    @field_validator("cpu_shares", "memory_shares", "db_cpu_shares", "pool_shares")
    @classmethod
    def _shares(cls, value, info):
        warning, critical = value
        if not (0 < warning < critical <= 1):
            raise ValueError(f"{info.field_name} must be (warning, critical) with 0 < warning < critical ≤ 1, "
                             f"got ({warning:g}, {critical:g})")
        return value

    def model_post_init(self, _context) -> None:
        if self.p95_warning_ms >= self.p95_critical_ms:
            raise ValueError(f"the p95 warning threshold ({self.p95_warning_ms:g} ms) must be below the critical "
                             f"one ({self.p95_critical_ms:g} ms): raise --p95-critical-ms or lower --p95-ms")

    @classmethod
    def of(cls, base: "Criteria | None" = None, **changes) -> "Criteria":
        """``base`` (default: the defaults) with ``changes`` (``None`` values ignored); a bad value
        raises one :class:`~capkit.errors.ConfigError` line naming it."""
        from pydantic import ValidationError

        data = {**(base or cls()).model_dump(), **{k: v for k, v in changes.items() if v is not None}}
        try:
            return cls(**data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(map(str, first["loc"]))
            why = first["msg"].removeprefix("Value error, ")
            raise ConfigError(f"criteria: {where + ': ' if where else ''}{why}") from None
        except ValueError as exc:
            raise ConfigError(f"criteria: {exc}") from None

    @property
    def p95_ms(self) -> tuple[float, float]:
        """(warning, critical) p95 thresholds."""
        return self.p95_warning_ms, self.p95_critical_ms


DEFAULT_CRITERIA = Criteria()


class PodLimits(BaseModel):
    """Pod-like limits of each replica of the service under test (``--cpu-limit``,
    ``--memory-limit-mib`` given for a service capkit starts): a CFS quota and a memory limit.

    ``enforced`` is False where cgroups could not be written (a single service then runs pinned,
    as without limits, and the run says so)."""

    cpu_cores: float | None = Field(None, gt=0)
    memory_mib: float | None = Field(None, gt=0)
    enforced: bool = False


class FleetSpec(BaseModel):
    """How a ``--replicas N`` run was set up: what a replica plan is checked against."""

    replicas: int = Field(ge=1)
    balancer: str = "haproxy"
    balance: str = "leastconn"
    db_connection_limit: int | None = Field(None, ge=1, description="the fleet's PostgreSQL role's CONNECTION LIMIT")
    pgbouncer: bool = False
    pgbouncer_pool_size: int | None = None
    redis_prefix: str | None = None
    shared_model_slots: int | None = Field(None, description="--shared-model: the backend's concurrent generations")
    shared_model_rate_limit: str | None = Field(None, description="--shared-model: its rate limit for the fleet")


class RunSpec(BaseModel):
    """What a run was asked to do, stored with it."""

    run_id: str
    target: str
    scenario: str = "reference"
    plan: StagePlan
    sample_interval_s: float = Field(1.0, gt=0, le=60)
    processes: int = Field(1, ge=1, le=64)
    service_cores: float | None = None
    criteria: Criteria = Field(default_factory=Criteria)  # runs stored before it existed read the defaults
    notes: dict = Field(default_factory=dict)
    limits: PodLimits | None = None  # each replica's limits (None: none asked for)
    fleet: FleetSpec | None = None  # a --replicas run (None: one service, no balancer)


# the reference scenarios' request classes (a mix's names) and the endpoints each one's tasks
# call (request rows' ``name``): a class's throughput is its endpoints' requests per second. Logins
# and WebSocket connects are session set-up, not a class's work.
REFERENCE_CLASSES: dict[str, tuple[str, ...]] = {
    "chat": ("POST /api/chat/message", "POST /api/chat/stream"),
    "analytics": ("GET /api/analytics/summary", "GET /api/analytics/trends", "GET /api/analytics/users",
                  "GET /api/analytics/models"),
    "auth": ("GET /api/auth/validate",),
    "ws": ("ws: message",),
    "openai": ("POST /v1/chat/completions",),
}

RESOURCES: dict[str, tuple[str, str]] = {
    # column in the step table -> (label, unit)
    "cpu_cores": ("CPU", "cores"),
    "rss_mib": ("Memory", "MiB RSS"),
    "db_connections": ("DB connections", "connections"),
    "network_kbps": ("Network", "KB/s"),
    "redis_memory_mib": ("Redis memory", "MiB"),
    "model_queue": ("Model queue", "waiting requests"),
    "model_slots": ("Model slots", "in use"),
    "db_pool": ("DB pool", "connections checked out"),
}
def resource_label(resource: str) -> tuple[str, str]:
    """(label, unit) of a resource: a canonical one of :data:`RESOURCES`, or a target's own series."""
    return RESOURCES.get(resource, (resource, "as mapped"))


# concurrency pools: their size comes from the service (``<name>_size`` series) unless given
POOL_RESOURCES = ("model_slots", "db_pool")
# what to do when a resource is the binding limit
BINDING_ACTIONS = {
    "cpu_cores": "Scale out API replicas (CPU is the binding constraint); profile the hot path per request",
    "rss_mib": "Scale out or raise the memory limit; check per-user memory (sessions, caches) for leaks",
    "db_connections": "Use connection pooling (PgBouncer) and cache frequent queries",
    "network_kbps": "Compress responses or add bandwidth; network is the binding constraint",
    "redis_memory_mib": "Set TTLs on all keys and monitor evictions; Redis memory binds first",
    "model_queue": "Queue requests with fallback models, cache responses, or move to a dedicated inference server",
    "model_slots": "Raise model concurrency (CAPKIT_MODEL_MAX_CONCURRENT) or add a model server",
    "db_pool": "Raise the DB pool (CAPKIT_DB_POOL_SIZE / _MAX_OVERFLOW) within the database's limit, or add PgBouncer",
    "p95": "Investigate bottlenecks, enable aggressive caching",
}



class RunStatus(StrEnum):
    """What became of a run (stored as its value)."""

    RUNNING = "running"
    COMPLETE = "complete"
    INCOMPLETE = "incomplete"


# how an incomplete run's reason begins when the service's process died under load (the analysis
# reads the failure's load from the run's last step)
SERVICE_EXITED = "the service under test exited"


@dataclass(frozen=True)
class RunMeta:
    """A stored run's metadata (the ``runs`` row), typed."""

    run_id: str
    created_at: float
    ended_at: float | None
    status: RunStatus
    reason: str | None
    target: str
    scenario: str | None
    git_sha: str | None
    spec: RunSpec
    machine: dict

    @classmethod
    def from_row(cls, row: dict) -> "RunMeta":
        """From a ``runs`` row whose ``spec`` and ``machine`` are still JSON text or already decoded."""
        import json

        spec, machine = row["spec"], row.get("machine") or {}
        spec = RunSpec.model_validate_json(spec) if isinstance(spec, str) else RunSpec.model_validate(spec)
        machine = json.loads(machine) if isinstance(machine, str) else dict(machine)
        return cls(run_id=row["run_id"], created_at=float(row["created_at"]),
                   ended_at=None if row.get("ended_at") is None else float(row["ended_at"]),
                   status=RunStatus(row["status"]), reason=row.get("reason"), target=row["target"],
                   scenario=row.get("scenario"), git_sha=row.get("git_sha"), spec=spec, machine=machine)


@dataclass(frozen=True)
class Interval:
    """A number with its range: ``estimate`` within ``[low, high]`` at confidence ``level``.

    Bounds may be infinite (a limit never reached within the data's support). ``str()`` gives
    the short form used in tables, ``64 (59–70)``.
    """

    estimate: float
    low: float
    high: float
    level: float = 0.95

    @property
    def finite(self) -> bool:
        return math.isfinite(self.estimate)

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high

    def half_width(self) -> float:
        return (self.high - self.low) / 2

    def __str__(self) -> str:
        return f"{_plain(self.estimate)} ({_plain(self.low)}–{_plain(self.high)})"


def _plain(x: float) -> str:
    """A number for people without Python's repr: "–" for NaN, "∞", "0" for rounding noise, "× 10ⁿ"
    instead of the e-format."""
    if math.isnan(x):
        return "–"
    if math.isinf(x):
        return "∞" if x > 0 else "−∞"
    if abs(x) < 1e-12:
        return "0"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    if abs(x) >= 1e-4:
        return f"{x:,.3g}"
    mantissa, exp = f"{x:.2e}".split("e")
    return f"{mantissa} × 10{str(int(exp)).translate(str.maketrans('-0123456789', '⁻⁰¹²³⁴⁵⁶⁷⁸⁹'))}"


class Basis(StrEnum):
    """How a number was obtained: every capacity figure capkit prints says which."""

    MEASURED = "measured"  # bracketed by two measured steps, interpolated between them
    PROJECTED = "projected"  # from a model, within 1.25× the highest measured load
    EXTRAPOLATED = "extrapolated"  # from a model, beyond that: never a headline
    NOT_REACHED = "not reached"  # the model never gets there
    NOT_MEASURED = "not measured"  # nothing measured behind it


EXTRAPOLATION_FACTOR = 1.25  # a model's figure beyond this × the highest valid measured load is extrapolated


def load_basis(load: float, top_load: float) -> Basis:
    """A model's figure at ``load``: ``projected`` within 1.25× the highest valid load, ``extrapolated``
    beyond (or when that load is unknown), ``not reached`` at ∞."""
    if not math.isfinite(load):
        return Basis.NOT_REACHED
    return Basis.PROJECTED if load <= EXTRAPOLATION_FACTOR * top_load else Basis.EXTRAPOLATED


@dataclass(frozen=True)
class NotMeasured:
    """A quantity that could not be measured or fitted, with why; falsy, prints as ``not measured (why)``."""

    reason: str

    def __bool__(self) -> bool:
        return False

    def __str__(self) -> str:
        return f"not measured ({self.reason})"


_MIX_ITEM = re.compile(r"^([a-z_][a-z0-9_]*)=(\d+(?:\.\d+)?)$")


def parse_mix(text: str, known: tuple[str, ...] | None = None, *, whole: bool = False) -> dict[str, float]:
    """``"chat=8,analytics=1,ws=2"`` as weights; ConfigError (one line) for a bad item, a class not
    in ``known``, a fraction where ``whole`` numbers are needed (Locust's user weights), or weights
    that sum to zero. The one reader of ``--mix``: the CLI, the mix design, what-if and the
    locustfile (``CAPKIT_MIX``) all call it."""
    weights: dict[str, float] = {}
    for item in filter(None, (i.strip() for i in (text or "").split(","))):  # "chat=4," is chat=4
        m = _MIX_ITEM.match(item)
        if not m:
            raise ConfigError(f"--mix item {item!r} is not CLASS=WEIGHT (a number ≥ 0), "
                              f"e.g. --mix chat=8,analytics=1,ws=2")
        weights[m.group(1)] = float(m.group(2))
    if known is not None:
        unknown = [c for c in weights if c not in known]
        if unknown:
            raise ConfigError(f"--mix: unknown class {', '.join(unknown)}; the classes are "
                              f"{', '.join(known) or 'none (this run has no request classes)'}")
    if whole and any(not w.is_integer() for w in weights.values()):
        raise ConfigError(f"--mix {text!r}: a run's weights are whole numbers (Locust's user weights), "
                          f"e.g. --mix chat=4,analytics=1")
    if sum(weights.values()) <= 0:
        raise ConfigError(f"--mix {text!r}: the weights sum to zero; give at least one class a weight > 0")
    return weights
