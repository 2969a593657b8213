"""Runs against the reference service: start it pinned to its core (in a cgroup with pod-like
limits when asked), load it, store, stop it.

The measuring half of `capkit plan` (and `capkit run` without ``--target``); everything it starts
is stopped on the way out, also on Ctrl-C, SIGTERM or failure.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from capkit.config import Settings
from capkit.errors import CapkitError
from capkit.loadgen import DEFAULT_MIX, SCENARIOS
from capkit.metrics.replicas import Replica
from capkit.runs.orchestrator import RunResult, new_run_id, run_load
from capkit.runs.processes import check_limits, core_split, free_port, limited_cgroup, start_service
from capkit.runs.progress import progress_printer
from capkit.schemas import DEFAULT_CRITERIA, Criteria, PodLimits, RunSpec, StagePlan
from capkit.store import open_store


def service_env(settings: Settings) -> dict[str, str]:
    from capkit.service.server import settings_to_env

    return settings_to_env(settings)


REFERENCE_SERIES = ("model_queue=capkit_model_queue_depth", "capkit_cache_hits=capkit_cache_hits_total",
                    "capkit_cache_misses=capkit_cache_misses_total",
                    "model_fallbacks_per_s=capkit_model_fallbacks_total:rate",
                    # soft limits: pools in use and their sizes, event-loop lag, the service's own bytes
                    "model_slots_in_use=capkit_model_slots_in_use", "model_slots_size=capkit_model_slots",
                    "db_pool_checked_out=capkit_db_pool_checked_out", "db_pool_size=capkit_db_pool_limit",
                    # the same two as time averages between scrapes (busy seconds per second)
                    "model_slots_busy=capkit_model_slots_busy_seconds_total:rate",
                    "db_pool_busy=capkit_db_pool_busy_seconds_total:rate",
                    "event_loop_lag_ms=capkit_event_loop_lag_seconds:*1000",
                    "service_sent_bytes_per_s=capkit_http_response_bytes_total:rate",
                    "service_received_bytes_per_s=capkit_http_request_bytes_total:rate",
                    # sessions the service holds (the per-session memory fit of `capkit what-if`)
                    "websocket_connections=capkit_websocket_connections",
                    "http_in_flight=capkit_http_requests_in_flight")


def reference_metrics(url: str):
    """The reference service's own /metrics: model queue depth, cache hits and misses, fallbacks."""
    from capkit.metrics.prometheus import PrometheusCollector, parse_mappings

    return PrometheusCollector(f"{url}/metrics", parse_mappings(REFERENCE_SERIES), source="prometheus")


def service_collectors(settings: Settings) -> list:
    """PostgreSQL and Redis collectors when the service is configured with them.

    PostgreSQL is watched at ``db_monitor_url`` when set (the database behind a pooler), so the
    connections counted are the ones the database holds.
    """
    from capkit.metrics import PostgresCollector, RedisCollector

    out = []
    try:
        if settings.database_url.startswith("postgresql"):
            out.append(PostgresCollector(settings.db_monitor_url or settings.database_url))
        if settings.redis_url:
            out.append(RedisCollector(settings.redis_url))
    except CapkitError:
        for collector in out:
            collector.close()
        raise
    return out


def fleet_scrapers(fleet) -> list:
    """The shared parts' collectors: PostgreSQL (connections, backend CPU), Redis (memory,
    evictions), the balancer (queue), and the replicas' own /metrics (the model queue, pools),
    summed under ``prometheus`` and kept per replica (``replicaN-metrics``)."""
    from capkit.metrics import PostgresCollector, RedisCollector
    from capkit.metrics.haproxy import HAProxyCollector
    from capkit.metrics.replicas import SumOf

    out = []
    try:
        out.append(PostgresCollector(fleet.monitor_url))
        out.append(RedisCollector(fleet.redis_url))
        out.append(HAProxyCollector(f"http://127.0.0.1:{fleet.balancer.config.stats_port}/stats"))
        summed = SumOf([reference_metrics(svc.url) for svc in fleet.replicas], source="prometheus")
        out.append(summed)
        out.extend(summed.parts(lambda i: f"replica{i + 1}-metrics"))
        if fleet.model_backend is not None:  # its queue and slots: the shared backend's own
            backend = reference_metrics(fleet.model_backend.url)
            backend.source = "model-backend"
            out.append(backend)
    except CapkitError:
        for collector in out:
            collector.close()
        raise
    return out



def limits_text(limits: PodLimits) -> str:
    """``cpu 0.5 (CFS quota), memory 512 MiB``: a replica's limits in words."""
    parts = []
    if limits.cpu_cores:
        parts.append(f"cpu {limits.cpu_cores:g} core (CFS quota {round(limits.cpu_cores * 100_000)} µs per 100 ms)")
    if limits.memory_mib:
        parts.append(f"memory {limits.memory_mib:g} MiB")
    return ", ".join(parts)


def load_env(settings: Settings, *, mix: str | None = None, think: str | None = None) -> dict[str, str]:
    """The environment of the reference scenarios (accounts, mix, think time)."""
    env = {"CAPKIT_ACCOUNT_PREFIX": settings.test_account_prefix,
           "CAPKIT_ACCOUNT_PASSWORD": settings.test_account_password,
           "CAPKIT_ACCOUNTS": str(settings.seed_test_accounts)}
    if mix:
        env["CAPKIT_MIX"] = mix
    if think:
        env["CAPKIT_THINK"] = think
    return env


def run_reference(settings: Settings, plan: StagePlan, *, port: int | None = None,
                  say: Callable[[str], None] = print, profile: str = "custom", processes: int = 1,
                  sample_interval_s: float = 1.0, mix: str | None = None, think: str | None = None,
                  command: str = "capkit plan", planner=None, slo=None,
                  criteria: Criteria = DEFAULT_CRITERIA, limits: PodLimits | None = None,
                  cgroup_root: str = "/sys/fs/cgroup") -> RunResult:
    """Start the reference service pinned to its core, run ``plan`` against it with the reference
    scenarios, store everything, stop the service (also on Ctrl-C, SIGTERM or failure).

    ``mix`` / ``think`` are the scenario weights and think-time range (see
    :mod:`capkit.loadgen.scenarios`); ``slo`` (a :class:`capkit.records.llm.Slo`) is the goodput
    objective the streamed answers are judged by. With a ``planner`` (a capacity search) the plan holds
    its first stages and the planner decides the rest (see :func:`~capkit.runs.orchestrator.run_load`).

    ``limits`` (a CFS quota and a memory limit) are enforced through a cgroup of the run's own where
    cgroups are writable; elsewhere the run says in one line that they are not, and goes on pinned.
    """
    if limits is not None:
        check_limits(limits.cpu_cores, limits.memory_mib)
    store = open_store(settings.store_url)  # fail before starting anything
    run_id = new_run_id()
    raw_dir = Path(settings.runs_dir) / run_id
    host = "127.0.0.1"
    port = port or free_port(host)
    quota = limits.cpu_cores if limits is not None and limits.cpu_cores else 1.0
    service_cpus, load_cpus = core_split(quota)
    cgroup = None
    if limits is not None:
        cgroup, warning = limited_cgroup(f"capkit-{run_id}", limits.cpu_cores, limits.memory_mib, root=cgroup_root,
                                         required=False)
        limits = limits.model_copy(update={"enforced": cgroup is not None})
        if warning:
            say(warning)
    what = (f"search · budget {planner.budget_s:.0f} s, steps of {planner.rules.step_s:g} s" if planner is not None
            else f"profile {profile} · {len(plan.stages)} steps, {plan.duration_s:.0f} s of load")
    say(f"{command} · run {run_id} · {what} · mix {mix or DEFAULT_MIX}")
    say(f"starting the reference service on {host}:{port}"
        + (f" pinned to core {sorted(service_cpus)}" if service_cpus else " (not pinned: one core only)")
        + (f" · limits {limits_text(limits)}" if cgroup is not None else ""))
    svc = start_service(host=host, port=port, env=service_env(settings), log_path=raw_dir / "service.log",
                        cpus=service_cpus, cgroup=cgroup)
    try:
        cores = float(len(service_cpus)) if service_cpus else None
        if cgroup is not None and limits.cpu_cores:
            cores = limits.cpu_cores
        spec = RunSpec(run_id=run_id, target=svc.url, scenario="reference", plan=plan, processes=processes,
                       sample_interval_s=sample_interval_s, criteria=criteria, service_cores=cores, limits=limits,
                       notes={"profile": "search" if planner is not None else profile, "mix": mix or DEFAULT_MIX,
                              "think": think or "default",
                              "service_db": "sqlite" if settings.database_url.startswith("sqlite")
                              else settings.database_url.split(":", 1)[0],
                              "cache": "redis" if settings.redis_url else "in-process",
                              "slo": slo.to_dict() if slo is not None else None,
                              **({"db_pooler": "pgbouncer"} if settings.db_pgbouncer else {})})
        env = load_env(settings, mix=mix, think=think)
        if slo is not None:
            env["CAPKIT_SLO"] = json.dumps(slo.to_dict())
        scrapers = service_collectors(settings) + [reference_metrics(svc.url)]
        # behind PgBouncer the service's sockets go to PgBouncer, not to the database: its DB
        # connections then come from the postgres collector (server connections) alone
        result = run_load(spec, store=store, raw_dir=raw_dir, locustfiles=[SCENARIOS],
                          replicas=[Replica("service", svc.pid, cgroup)],
                          db_url=None if settings.db_pgbouncer else settings.database_url,
                          env=env, generator_cpus=load_cpus,
                          on_progress=progress_printer(say), scrapers=scrapers, planner=planner)
    finally:
        svc.stop()
    say(f"load finished: {result.status}" + (f" ({result.reason})" if result.reason else "")
        + f" · {result.steps} steps · {result.request_rows} request rows · {result.samples} samples")
    return result


def run_fleet(settings: Settings, plan: StagePlan, *, replicas: int, pgbouncer: bool = False,
              shared_model: bool = False, db_connection_limit: int = 60, limits: PodLimits | None = None,
              cgroup_root: str = "/sys/fs/cgroup",
              say: Callable[[str], None] = print, profile: str = "custom", processes: int = 1,
              sample_interval_s: float = 1.0, mix: str | None = None, think: str | None = None,
              command: str = "capkit plan", planner=None, slo=None, criteria: Criteria = DEFAULT_CRITERIA,
              haproxy: str = "haproxy") -> RunResult:
    """:func:`run_reference` against ``replicas`` replicas behind HAProxy, sharing PostgreSQL (a role
    with ``CONNECTION LIMIT db_connection_limit``), Redis and, with ``pgbouncer``, PgBouncer
    (:func:`capkit.runs.fleet.start_fleet`). Each replica is sampled (``replicaN``) and the sum is
    the ``service``; a replica lost mid-run is flagged and the run goes on; an OOM kill ends it as
    the service's failure. Everything started is stopped by PID on the way out."""
    from capkit.runs.fleet import start_fleet

    store = open_store(settings.store_url)  # fail before starting anything
    run_id = new_run_id()
    raw_dir = Path(settings.runs_dir) / run_id
    what = (f"search · budget {planner.budget_s:.0f} s, steps of {planner.rules.step_s:g} s" if planner is not None
            else f"profile {profile} · {len(plan.stages)} steps, {plan.duration_s:.0f} s of load")
    say(f"{command} · run {run_id} · {what} · mix {mix or DEFAULT_MIX}")
    fleet = start_fleet(settings, replicas=replicas, workdir=raw_dir, limits=limits,
                        db_connection_limit=db_connection_limit, pgbouncer=pgbouncer, cgroup_root=cgroup_root,
                        haproxy=haproxy, shared_model=shared_model, say=say)
    try:
        if limits is not None:
            limits = limits.model_copy(update={"enforced": True})
        say(f"fleet: {replicas} replica(s) behind HAProxy ({fleet.spec.balance}) at {fleet.url}"
            + (f" pinned to core {sorted(fleet.service_cpus)}" if fleet.service_cpus else "")
            + (f" · each {limits_text(limits)}" if limits is not None else "")
            + f" · PostgreSQL database {fleet.database.name} (role CONNECTION LIMIT {db_connection_limit})"
            + (f" through PgBouncer (pool {fleet.spec.pgbouncer_pool_size})" if pgbouncer else "")
            + f" · Redis prefix {fleet.redis_prefix}"
            + (f" · one model backend ({settings.shared_model_slots} slots, {settings.shared_model_rate_limit})"
               if shared_model else ""))
        per_replica = limits.cpu_cores if limits is not None and limits.cpu_cores else (
            float(len(fleet.service_cpus)) / replicas if fleet.service_cpus else None)
        spec = RunSpec(run_id=run_id, target=fleet.url, scenario="reference", plan=plan, processes=processes,
                       sample_interval_s=sample_interval_s, criteria=criteria,
                       service_cores=replicas * per_replica if per_replica else None, limits=limits,
                       fleet=fleet.spec,
                       notes={"profile": "search" if planner is not None else profile, "mix": mix or DEFAULT_MIX,
                              "think": think or "default", "service_db": "postgresql", "cache": "redis",
                              "slo": slo.to_dict() if slo is not None else None,
                              **({"db_pooler": "pgbouncer"} if pgbouncer else {})})
        env = load_env(settings, mix=mix, think=think)
        if slo is not None:
            env["CAPKIT_SLO"] = json.dumps(slo.to_dict())
        result = run_load(spec, store=store, raw_dir=raw_dir, locustfiles=[SCENARIOS], replicas=fleet.as_replicas(),
                          fleet=True, db_url=None if pgbouncer else fleet.database.url, env=env,
                          generator_cpus=fleet.load_cpus, on_progress=progress_printer(say),
                          scrapers=fleet_scrapers(fleet), planner=planner, say=say)
    finally:
        fleet.stop()
    say(f"load finished: {result.status}" + (f" ({result.reason})" if result.reason else "")
        + f" · {result.steps} steps · {result.request_rows} request rows · {result.samples} samples")
    return result
