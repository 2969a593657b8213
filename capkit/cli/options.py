"""Options and input checks shared by the `capkit` commands."""

from __future__ import annotations

import click

from capkit.errors import ConfigError
from capkit.schemas import DEFAULT_CRITERIA, REFERENCE_CLASSES, Criteria, parse_mix


def settings(**overrides):
    """The settings, with the options the user gave (None: not given) on top."""
    from capkit.config import get_settings

    return get_settings(**{k: v for k, v in overrides.items() if v is not None})


def limits(cpu, memory, db, network, *, replicas: int = 1):
    """The analysis' limits; a fleet's CPU and memory are its replicas' together."""
    from capkit.schemas import ResourceLimits

    return ResourceLimits(cpu_cores=replicas * (cpu or DEFAULT_CPU_LIMIT),
                          memory_mib=replicas * (memory or DEFAULT_MEMORY_LIMIT_MIB), db_connections=db,
                          network_mbps=network)


def pod_limits(cpu, memory):
    """The limits to enforce on the reference service's replicas (None: none given)."""
    from capkit.schemas import PodLimits

    if cpu is None and memory is None:
        return None
    return PodLimits(cpu_cores=cpu, memory_mib=memory)


def fleet_options(fn):
    """``--replicas``, ``--pgbouncer``, ``--shared-model``: the reference service as a fleet behind a
    load balancer."""
    for opt in reversed([
        click.option("--replicas", type=int,
                     help="Run the reference service as N replicas behind HAProxy, sharing one PostgreSQL (a role "
                          "with CONNECTION LIMIT --db-connection-limit) and one Redis; 1 is the baseline of the "
                          "same set-up (docs/fleet.md)."),
        click.option("--pgbouncer", is_flag=True,
                     help="With --replicas: PgBouncer (transaction pooling) between the replicas and PostgreSQL."),
        click.option("--shared-model", is_flag=True,
                     help="With --replicas: one model backend for all replicas, with its own concurrency "
                          "(CAPKIT_SHARED_MODEL_SLOTS) and rate limit (CAPKIT_SHARED_MODEL_RATE_LIMIT)."),
    ]):
        fn = opt(fn)
    return fn


DEFAULT_CPU_LIMIT, DEFAULT_MEMORY_LIMIT_MIB = 1.0, 1024.0


def limit_options(fn=None, *, enforced: bool = False):
    """``--cpu-limit``, ``--memory-limit-mib``, ``--db-connection-limit``, ``--bandwidth-mbps``.

    ``enforced`` (plan, run): no defaults, so that a limit given can be told from none and
    enforced on the reference service (:func:`pod_limits`); :func:`limits` fills the defaults in."""
    if fn is None:
        return lambda f: limit_options(f, enforced=enforced)
    cpu_help = "Cores given to the service (plan: the pinned cores)."
    memory_help = "Memory limit of one replica."
    if enforced:
        cpu_help = (f"Cores of one replica (default {DEFAULT_CPU_LIMIT:g}; plan pins the service to a core). Given, it "
                    f"is enforced on the reference service as a CFS quota (cgroups), like a pod's CPU limit.")
        memory_help = (f"Memory limit of one replica (default {DEFAULT_MEMORY_LIMIT_MIB:g}). Given, it is enforced "
                       f"on the reference service (cgroups): a breach is an OOM kill, which ends the run as the "
                       f"service's failure.")
    for opt in reversed([
        click.option("--cpu-limit", type=click.FloatRange(min=0, min_open=True),
                     default=None if enforced else DEFAULT_CPU_LIMIT, show_default=not enforced, help=cpu_help),
        click.option("--memory-limit-mib", type=click.FloatRange(min=0, min_open=True),
                     default=None if enforced else DEFAULT_MEMORY_LIMIT_MIB, show_default=not enforced,
                     help=memory_help),
        click.option("--db-connection-limit", type=click.FloatRange(min=0, min_open=True), default=60.0,
                     show_default=True, help="Database connection limit (with --replicas: the fleet's PostgreSQL "
                                             "role's CONNECTION LIMIT)."),
        click.option("--bandwidth-mbps", type=click.FloatRange(min=0, min_open=True), default=100.0,
                     show_default=True, help="Network bandwidth limit."),
    ]):
        fn = opt(fn)
    return fn


def criteria_options(fn):
    """``--p95-ms``, ``--p95-critical-ms``, ``--max-error-rate``: what "carries the load" means
    (:class:`~capkit.schemas.Criteria`; stored with a run, read again by ``capkit report``)."""
    d = DEFAULT_CRITERIA
    for opt in reversed([
        click.option("--p95-ms", type=click.FloatRange(min=0, min_open=True),
                     help=f"p95 latency that ends the search's ramp: the warning threshold and the planning bound "
                          f"(default {d.p95_warning_ms:g}; `capkit report`: the run's own)."),
        click.option("--p95-critical-ms", type=click.FloatRange(min=0, min_open=True),
                     help=f"p95 latency of the critical threshold and of `capkit check`'s gate "
                          f"(default {d.p95_critical_ms:g}; `capkit report`: the run's own)."),
        click.option("--max-error-rate", type=click.FloatRange(0, 1, min_open=True, max_open=True),
                     help=f"Failures / requests a step may have (429s apart) (default {d.max_error_rate:g}; "
                          f"`capkit report`: the run's own)."),
    ]):
        fn = opt(fn)
    return fn


def criteria(base=None, *, p95_ms=None, p95_critical_ms=None, max_error_rate=None):
    """``base`` (default: the defaults) with the flags given; a bad combination is one ConfigError line."""
    return Criteria.of(base, p95_warning_ms=p95_ms, p95_critical_ms=p95_critical_ms, max_error_rate=max_error_rate)


def scenario_options(fn):
    """``--mix``, ``--think``, ``--sample-interval``."""
    for opt in reversed([
        click.option("--mix", help="Reference scenario weights, e.g. chat=4,analytics=1,auth=1,ws=1 "
                                   "(classes not named are left out)."),
        click.option("--think", help="Think time range MIN,MAX seconds between a user's tasks (default 0.5,1.5)."),
        click.option("--sample-interval", type=click.FloatRange(0.1, 60), default=1.0, show_default=True,
                     help="Seconds between resource samples."),
    ]):
        fn = opt(fn)
    return fn


def check_mix(mix: str | None) -> str | None:
    """``chat=4,analytics=1,auth=1,ws=1`` (whole weights ≥ 0, at least one > 0, classes of the
    reference scenarios) normalised, or ConfigError."""
    if mix is None:
        return None
    weights = parse_mix(mix, tuple(REFERENCE_CLASSES), whole=True)
    return ",".join(f"{name}={int(w)}" for name, w in weights.items())


def check_think(think: str | None) -> str | None:
    """``MIN,MAX`` seconds (or one number) or ConfigError."""
    if think is None:
        return None
    low, _, high = think.partition(",")
    try:
        lo, hi = float(low), float(high or low)
    except ValueError:
        lo = hi = -1.0
    if not (0 <= lo <= hi):
        raise ConfigError(f"--think {think!r} is not MIN,MAX seconds with 0 ≤ MIN ≤ MAX (example: --think 0.5,1.5)")
    return f"{lo:g},{hi:g}"


def check_slo(slo: str | None):
    """The parsed ``--slo`` (a :class:`capkit.records.llm.Slo`) or None; ConfigError naming the bad item."""
    from capkit.records.llm import Slo

    return Slo.parse(slo)


def llm_options(fn):
    """``--slo``, ``--seed`` and ``--burstiness`` (Poisson/gamma arrivals), shared by `capkit plan` and `capkit run`."""
    for opt in reversed([
        click.option("--slo", help="Service level objective for goodput, e.g. ttft=500ms,itl=50ms,e2e=5s "
                                   "(bounds: ttft, itl, tpot, e2e; units ms or s)."),
        click.option("--seed", type=int, default=0, show_default=True,
                     help="Seed of the Poisson arrival gaps (pRATExSECONDS stages) and of openai-chat's draws."),
        click.option("--burstiness", type=float,
                     help="pRATExSECONDS stages: gamma-distributed gaps of this shape, mean 1/RATE (vLLM's "
                          "--burstiness: 1 is Poisson, < 1 burstier; CV = 1/sqrt(B))."),
    ]):
        fn = opt(fn)
    return fn


def stage_plan(profile: str | None, stages: str | None, warmup: float | None):
    """The stage plan of ``--profile`` (default quick) or ``--stages`` (warm-up ``--warmup``)."""
    from capkit.schemas import StagePlan, profile_plan

    base = profile_plan(profile or "quick")
    if stages is None:
        return base
    return StagePlan.parse(stages, warmup_s=warmup if warmup is not None else min(base.warmup_s, 2.0))


def soak_seconds(value: str | None) -> float | None:
    """``--soak`` as seconds: ``30m``, ``1h``, ``90s`` or plain seconds; None when not given."""
    if not value:
        return None
    units = {"s": 1, "m": 60, "h": 3600}
    number, unit = (value[:-1], value[-1]) if value[-1] in units else (value, "s")
    try:
        seconds = float(number) * units[unit]
    except ValueError:
        seconds = -1.0
    if not 10 <= seconds <= 86_400:
        raise ConfigError(f"--soak {value!r} is not a duration of 10 s to 24 h (examples: 30m, 1h, 600)")
    return seconds


SOAK_HELP = ("Hold the last step's load this long more (30m, 1h, 600) and test the service's memory "
             "for a leak (MiB/hour).")
