"""`--replicas N`: the reference service as a fleet, measured.

N replicas, each in its own cgroup with the pod-like limits asked for, behind HAProxy
(:mod:`capkit.runs.haproxy`), sharing one PostgreSQL database whose role has a ``CONNECTION
LIMIT`` (a managed database's connection cap, as in the seed), one Redis (the chat rate limit and
the response cache, fleet-wide under a prefix of the run's own) and, with ``pgbouncer``, PgBouncer
between the replicas and the database. ``--replicas 1`` is the same set-up with one replica: the
baseline a replica plan is predicted from.

Everything started is stopped by PID and everything created (cgroups, database, role, Redis keys)
removed on the way out, also on failure or Ctrl-C; bad input fails before anything starts.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from capkit.config import Settings
from capkit.errors import CapkitError, ConfigError, redact_url
from capkit.metrics.replicas import Replica
from capkit.runs.haproxy import BALANCE, HAProxyProcess, haproxy_binary, start_haproxy
from capkit.runs.processes import (
    ServiceProcess,
    check_limits,
    core_split,
    free_port,
    limited_cgroup,
    start_service,
)
from capkit.schemas import FleetSpec, PodLimits

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"
HOST = "127.0.0.1"


@dataclass
class FleetDatabase:
    """A database and a role of the fleet's own on a PostgreSQL server (dropped by :meth:`drop`)."""

    admin_url: str  # the server's superuser on the fleet's database: monitoring, never counted in the limit
    url: str  # the role's URL: what the replicas use
    name: str
    connection_limit: int

    @classmethod
    def create(cls, server_url: str, name: str, connection_limit: int) -> "FleetDatabase":
        import psycopg
        from sqlalchemy.engine import make_url

        server = make_url(server_url)
        password = secrets.token_hex(12)
        try:
            with psycopg.connect(server.set(drivername="postgresql", database="postgres")
                                 .render_as_string(hide_password=False), autocommit=True, connect_timeout=5) as conn:
                conn.execute(f'CREATE ROLE "{name}" LOGIN PASSWORD \'{password}\' CONNECTION LIMIT {connection_limit}')
                try:
                    conn.execute(f'CREATE DATABASE "{name}" OWNER "{name}"')
                except psycopg.Error:
                    conn.execute(f'DROP ROLE IF EXISTS "{name}"')
                    raise
        except psycopg.Error as exc:
            why = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ConfigError(f"the fleet needs a PostgreSQL server where it may create a database and a role; "
                              f"{redact_url(server_url)}: {why} (set CAPKIT_DATABASE_URL to one)") from None
        driver = server.drivername if server.drivername.startswith("postgresql+") else "postgresql+psycopg"
        admin = server.set(drivername=driver, database=name).render_as_string(hide_password=False)
        url = server.set(drivername=driver, database=name, username=name, password=password)
        return cls(admin_url=admin, url=url.render_as_string(hide_password=False), name=name,
                   connection_limit=connection_limit)

    def drop(self) -> None:
        import psycopg
        from sqlalchemy.engine import make_url

        server = make_url(self.admin_url).set(drivername="postgresql", database="postgres")
        with psycopg.connect(server.render_as_string(hide_password=False), autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
            conn.execute(f'DROP ROLE IF EXISTS "{self.name}"')


def check_redis(url: str) -> None:
    import redis

    client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        raise ConfigError(f"the fleet shares its rate limit and cache through Redis; none answers at "
                          f"{redact_url(url)} ({exc}); set CAPKIT_REDIS_URL to one") from None
    finally:
        client.close()


def drop_redis_keys(url: str, prefix: str) -> int:
    """Delete the keys under the fleet's own ``prefix`` (never anything else)."""
    import redis

    client = redis.Redis.from_url(url, socket_timeout=5)
    try:
        keys = list(client.scan_iter(match=f"*{prefix}:*", count=1000))
        return client.delete(*keys) if keys else 0
    finally:
        client.close()


@dataclass
class Fleet:
    """A running fleet: its balancer's URL, replicas and shared parts; :meth:`stop` ends it all."""

    name: str
    url: str = ""
    replicas: list[ServiceProcess] = field(default_factory=list)
    balancer: HAProxyProcess | None = None
    pgbouncer: object | None = None
    model_backend: ServiceProcess | None = None
    database: FleetDatabase | None = None
    redis_url: str = ""
    redis_prefix: str = ""
    limits: PodLimits | None = None
    spec: FleetSpec | None = None
    monitor_url: str = ""
    service_cpus: set[int] | None = None
    load_cpus: set[int] | None = None
    settings: Settings | None = None

    def as_replicas(self) -> list[Replica]:
        return [Replica(f"replica{i + 1}", svc.pid, svc.cgroup) for i, svc in enumerate(self.replicas)]

    def stop(self) -> None:
        """Stop the balancer, the replicas (their cgroups removed) and PgBouncer by PID; drop the
        database, its role and the Redis keys. Every step runs even when one before it failed."""
        errors = []
        for part in ([self.balancer] if self.balancer else []) + list(self.replicas) + (
                [self.pgbouncer] if self.pgbouncer else []) + ([self.model_backend] if self.model_backend else []):
            try:
                part.stop()
            except Exception as exc:  # noqa: BLE001 - go on stopping the rest
                errors.append(exc)
        if self.pgbouncer is not None and self.pgbouncer.config is not None:  # its private temp dir
            shutil.rmtree(self.pgbouncer.config.ini.parent, ignore_errors=True)
        self.replicas, self.balancer, self.pgbouncer, self.model_backend = [], None, None, None
        if self.database is not None:
            try:
                self.database.drop()
            except Exception as exc:  # noqa: BLE001
                errors.append(exc)
            self.database = None
        if self.redis_prefix:
            try:
                drop_redis_keys(self.redis_url, self.redis_prefix)
            except Exception as exc:  # noqa: BLE001
                errors.append(exc)
        if errors:
            raise errors[0]

    def __enter__(self) -> "Fleet":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def start_fleet(settings: Settings, *, replicas: int, workdir: Path, limits: PodLimits | None = None,
                db_connection_limit: int = 60, pgbouncer: bool = False, pgbouncer_pool_size: int | None = None,
                cgroup_root: str = "/sys/fs/cgroup", haproxy: str = "haproxy", shared_model: bool = False,
                say: Callable[[str], None] = print, name: str | None = None) -> Fleet:
    """Start a fleet of the reference service (see the module docstring).

    Parameters
    ----------
    settings : Settings
        The replicas' settings; their database and Redis are replaced by the fleet's own
        (``settings.database_url``'s PostgreSQL server, else the local one; ``settings.redis_url``,
        else the local Redis).
    replicas : int
        Number of replicas (≥ 1).
    workdir : Path
        Where the logs and configs go (``replicaN.log``, ``haproxy.cfg`` …).
    limits : PodLimits, optional
        Each replica's CPU quota and memory limit; enforced through cgroups or refused (one line).
    db_connection_limit : int
        The fleet's role's ``CONNECTION LIMIT``: every connection of every replica (or of PgBouncer) counts.
    pgbouncer : bool
        Put PgBouncer (transaction pooling, ``pgbouncer_pool_size`` server connections, default
        ``min(10, db_connection_limit)``) between the replicas and the database.
    shared_model : bool
        One model backend for every replica (:func:`start_model_backend`), instead of each
        replica's own built-in model.

    Returns
    -------
    Fleet
        Stop it with :meth:`Fleet.stop` (or use it as a context manager).
    """
    if replicas < 1:
        raise ConfigError(f"--replicas {replicas}: a fleet has at least 1 replica")
    cpu = limits.cpu_cores if limits else None
    memory = limits.memory_mib if limits else None
    check_limits(cpu, memory)
    if cpu is not None and replicas * cpu > os.cpu_count():
        say(f"note: {replicas} replicas × {cpu:g} core = {replicas * cpu:g} cores, more than this machine's "
            f"{os.cpu_count()}: the replicas compete for cores beyond their quota")
    haproxy_binary(haproxy)
    if pgbouncer:
        from capkit.runs.pgbouncer import pgbouncer_binary

        pgbouncer_binary()
    name = name or f"capkit_fleet_{secrets.token_hex(4)}"
    server = settings.database_url if settings.database_url.startswith("postgresql") else DEFAULT_PG
    redis_url = settings.redis_url or DEFAULT_REDIS
    check_redis(redis_url)
    fleet = Fleet(name=name, redis_url=redis_url, limits=limits, settings=settings)
    try:
        _start(fleet, settings, server=server, replicas=replicas, workdir=workdir, cpu=cpu, memory=memory,
               db_connection_limit=db_connection_limit, pgbouncer=pgbouncer, pool_size=pgbouncer_pool_size,
               cgroup_root=cgroup_root, haproxy=haproxy, shared_model=shared_model)
    except BaseException:
        fleet.stop()
        raise
    return fleet


def _start(fleet: Fleet, settings: Settings, *, server, replicas, workdir, cpu, memory, db_connection_limit,
           pgbouncer, pool_size, cgroup_root, haproxy, shared_model) -> None:
    cgroups = []
    if cpu is not None or memory is not None:  # all of them before anything starts: refused, nothing runs
        try:
            for i in range(replicas):
                cgroups.append(limited_cgroup(f"capkit-{fleet.name}-r{i + 1}".replace("_", "-"), cpu, memory,
                                              root=cgroup_root, required=True)[0])
        except BaseException:
            for group in cgroups:
                group.remove()
            raise
    try:
        fleet.database = FleetDatabase.create(server, fleet.name, db_connection_limit)
        fleet.redis_prefix = fleet.name
        db_url, extra = fleet.database.url, {}
        if pgbouncer:
            from capkit.runs.pgbouncer import start_pgbouncer

            pool_size = pool_size or min(10, db_connection_limit)
            pgb_dir = Path(tempfile.mkdtemp(prefix="capkit-pgbouncer-"))
            fleet.pgbouncer = start_pgbouncer(fleet.database.url, pgb_dir, pool_size=pool_size)
            db_url, extra = fleet.pgbouncer.config.url, {"db_pgbouncer": True}
        fleet.service_cpus, fleet.load_cpus = core_split(replicas * (cpu or 1.0))
        if shared_model:
            fleet.model_backend = start_model_backend(settings, workdir, cpus=fleet.service_cpus)
            extra.update({"model_backends": "openai", "openai_url": fleet.model_backend.url,
                          "openai_model": settings.model_name, "openai_api_key": None})
        replica_settings = settings.model_copy(update={
            "database_url": db_url, "db_monitor_url": fleet.database.admin_url, "redis_url": fleet.redis_url,
            "redis_prefix": fleet.redis_prefix, "seed_on_start": False, **extra})
        from capkit.service.server import settings_to_env

        env = settings_to_env(replica_settings)
        _seed({**env, "CAPKIT_DATABASE_URL": fleet.database.url, "CAPKIT_DB_PGBOUNCER": "false"}, workdir)
        ports = [free_port(HOST) for _ in range(replicas)]

        def start(i: int) -> ServiceProcess:
            return start_service(host=HOST, port=ports[i], env=env, log_path=workdir / f"replica{i + 1}.log",
                                 cpus=fleet.service_cpus, cgroup=cgroups[i] if cgroups else None)

        with ThreadPoolExecutor(max_workers=replicas) as pool:
            futures = [pool.submit(start, i) for i in range(replicas)]
            failure = None
            for future in futures:
                try:
                    fleet.replicas.append(future.result())
                except BaseException as exc:  # noqa: BLE001 - the others are stopped by the caller
                    failure = failure or exc
            if failure is not None:
                raise failure
        cgroups = []  # the replicas own them now
        fleet.balancer = start_haproxy([(f"replica{i + 1}", p) for i, p in enumerate(ports)], workdir,
                                       binary=haproxy)
        fleet.url = fleet.balancer.url
        fleet.monitor_url = fleet.database.admin_url
        fleet.spec = FleetSpec(replicas=replicas, balance=BALANCE, db_connection_limit=db_connection_limit,
                               pgbouncer=pgbouncer, pgbouncer_pool_size=pool_size if pgbouncer else None,
                               redis_prefix=fleet.redis_prefix,
                               shared_model_slots=settings.shared_model_slots if shared_model else None,
                               shared_model_rate_limit=settings.shared_model_rate_limit if shared_model else None)
    finally:
        for group in cgroups:  # created, never handed to a replica
            group.remove()


def start_model_backend(settings: Settings, workdir: Path, *, cpus: set[int] | None = None) -> ServiceProcess:
    """The fleet's one model backend: a ``capkit serve`` whose built-in model every replica calls
    through its OpenAI-compatible ``/v1``, with ``settings.shared_model_slots`` concurrent
    generations (the rest queue) and ``settings.shared_model_rate_limit`` for all replicas together
    (they all call from 127.0.0.1: one caller to it), like an external model API's limits. Its own
    SQLite file: it holds no conversations, and it takes no connection of the fleet's database."""
    from capkit.service.server import settings_to_env

    backend = settings.model_copy(update={
        "database_url": f"sqlite:///{workdir / 'model-backend.sqlite'}", "db_monitor_url": None, "redis_url": None,
        "seed_on_start": True, "seed_users": 0, "seed_conversations": 0, "seed_test_accounts": 0,
        "openai_auth": "none", "response_cache": False, "model_backends": "builtin",
        "model_max_concurrent": settings.shared_model_slots, "rate_limit_chat": settings.shared_model_rate_limit})
    return start_service(host=HOST, port=free_port(HOST), env=settings_to_env(backend),
                         log_path=workdir / "model-backend.log", cpus=cpus)


def _seed(env: dict[str, str], workdir: Path) -> None:
    """Create and seed the fleet's database once (``capkit seed``), before any replica starts."""
    workdir.mkdir(parents=True, exist_ok=True)
    with open(workdir / "seed.log", "ab") as log:
        proc = subprocess.run([sys.executable, "-m", "capkit", "seed"], env={**os.environ, **env}, stdout=log,
                              stderr=subprocess.STDOUT, timeout=600)
    if proc.returncode != 0:
        tail = (workdir / "seed.log").read_text(errors="replace").strip().splitlines()[-1:]
        raise CapkitError(f"seeding the fleet's database failed: {' '.join(tail)}")


__all__ = ["Fleet", "FleetDatabase", "start_fleet", "drop_redis_keys"]
