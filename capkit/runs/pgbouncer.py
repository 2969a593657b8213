"""PgBouncer in front of the service's PostgreSQL: its config files and its process.

Transaction pooling: a server connection is lent to a client for one transaction, so the
database holds at most ``pool_size`` connections however many the service's pools open. The
service must then prepare no statements (``CAPKIT_DB_PGBOUNCER=true``, see
:func:`capkit.service.db.make_engine`).

``python -m capkit.runs.pgbouncer --url URL --dir DIR`` writes the files for ``ops/`` and prints
the service's URL through PgBouncer, its port and the command that starts it (one a line); the
shell script owns the process and stops it by PID. Tests use :func:`start_pgbouncer`.
"""

from __future__ import annotations

import argparse
import os
import pwd
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from capkit.errors import ConfigError, ServiceError
from capkit.runs.processes import ManagedProcess, free_port, listening, spawn

DEFAULT_POOL_SIZE = 5
HOST = "127.0.0.1"


@dataclass(frozen=True)
class PgBouncerConfig:
    """The files written for one PgBouncer, and how to reach the database through it."""

    ini: Path
    url: str  # the database URL through PgBouncer (same driver, database and user)
    port: int
    pool_size: int
    command: tuple[str, ...]


@dataclass
class PgBouncerProcess(ManagedProcess):
    """A running PgBouncer (stop it with :meth:`stop`, which signals its PID's group)."""

    config: PgBouncerConfig | None = None


def _run_as() -> str | None:
    """PgBouncer refuses to run as root: drop to ``postgres`` (or ``nobody``) when we are root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    raise ConfigError("PgBouncer cannot run as root and there is no postgres or nobody user to run it as")


def _value(name: str, value: str) -> str:
    if any(c in value for c in "'\"\\ \n"):
        raise ConfigError(f"the database {name} {value!r} has quotes, spaces or backslashes; PgBouncer's "
                          f"config cannot carry it here — use a plain {name}")
    return value


def pgbouncer_binary() -> str:
    """The PgBouncer executable; one clear line when it is not installed."""
    binary = shutil.which("pgbouncer") or next(
        (p for p in ("/usr/sbin/pgbouncer", "/usr/local/sbin/pgbouncer") if os.path.exists(p)), None)
    if binary is None:
        raise ConfigError("pgbouncer is not installed; install it with: sudo ops/install-system-deps.sh pgbouncer")
    return binary


def write_config(database_url: str, workdir: Path, *, port: int | None = None,
                 pool_size: int = DEFAULT_POOL_SIZE, max_client_conn: int = 1000) -> PgBouncerConfig:
    """Write ``pgbouncer.ini`` and its auth file into ``workdir`` for ``database_url``.

    Parameters
    ----------
    database_url : str
        The PostgreSQL database PgBouncer is put in front of (``postgresql+psycopg://…``).
    workdir : Path
        A private directory (a temp dir); owned by the user PgBouncer runs as afterwards.
    port : int, optional
        Where PgBouncer listens on 127.0.0.1; a free port by default.
    pool_size : int
        Server connections PgBouncer may open to the database (``default_pool_size`` and
        ``max_db_connections``): the most the database sees from it.
    max_client_conn : int
        Client connections it accepts (the service's pools together).

    Returns
    -------
    PgBouncerConfig
    """
    from sqlalchemy.engine import make_url

    url = make_url(database_url)
    if not url.drivername.startswith("postgresql") or not url.database:
        raise ConfigError(f"PgBouncer needs a PostgreSQL database URL with a database name, got {url.drivername}://…")
    if pool_size < 1:
        raise ConfigError(f"PgBouncer pool size must be ≥ 1, got {pool_size}")
    user = _value("user", url.username or "postgres")
    password = _value("password", url.password or "") if url.password else ""
    db = _value("name", url.database)
    port = port or free_port(HOST)
    server = f"host={_value('host', url.host or HOST)} port={url.port or 5432} dbname={db} user={user}"
    if password:
        server += f" password={password}"
    workdir.mkdir(parents=True, exist_ok=True)
    ini, users = workdir / "pgbouncer.ini", workdir / "userlist.txt"
    ini.write_text(f"""[databases]
{db} = {server}

[pgbouncer]
listen_addr = {HOST}
listen_port = {port}
unix_socket_dir =
auth_type = {"scram-sha-256" if password else "trust"}
auth_file = {users}
pool_mode = transaction
default_pool_size = {pool_size}
max_db_connections = {pool_size}
min_pool_size = 0
reserve_pool_size = 0
max_client_conn = {max_client_conn}
ignore_startup_parameters = extra_float_digits,options
""")
    users.write_text(f'"{user}" "{password}"\n')
    users.chmod(0o600)
    run_as = _run_as()
    if run_as:
        owner = pwd.getpwnam(run_as)
        for path in (workdir, ini, users):
            os.chown(path, owner.pw_uid, owner.pw_gid)
    command = (pgbouncer_binary(), *(("-u", run_as) if run_as else ()), str(ini))
    through = url.set(host=HOST, port=port).render_as_string(hide_password=False)
    return PgBouncerConfig(ini=ini, url=through, port=port, pool_size=pool_size, command=command)


def start_pgbouncer(database_url: str, workdir: Path, *, pool_size: int = DEFAULT_POOL_SIZE,
                    port: int | None = None, timeout: float = 10.0) -> PgBouncerProcess:
    """Write the config (:func:`write_config`), start PgBouncer, wait until it listens.

    Its output goes to ``workdir/pgbouncer.log``; stop it with ``.stop()`` (by PID).
    """
    config = write_config(database_url, workdir, port=port, pool_size=pool_size)
    log = workdir / "pgbouncer.log"
    popen = spawn(list(config.command), log_path=log, env=dict(os.environ))
    proc = PgBouncerProcess(popen=popen, log_path=log, config=config)
    deadline = time.monotonic() + timeout
    while not listening(config.port, HOST):
        if not proc.alive() or time.monotonic() > deadline:
            proc.stop()
            raise ServiceError(f"PgBouncer did not start on {HOST}:{config.port}: {proc.log_tail()}")
        time.sleep(0.05)
    return proc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m capkit.runs.pgbouncer", description=__doc__.split("\n")[0])
    parser.add_argument("--url", required=True, help="the PostgreSQL database to put PgBouncer in front of")
    parser.add_argument("--dir", required=True, type=Path, help="where the config and auth files go")
    parser.add_argument("--pool-size", type=int, default=DEFAULT_POOL_SIZE)
    parser.add_argument("--port", type=int)
    args = parser.parse_args(argv)
    try:
        config = write_config(args.url, args.dir, port=args.port, pool_size=args.pool_size)
    except ConfigError as exc:
        print(f"capkit: error: {exc}", file=sys.stderr)
        return 2
    print(config.url, config.port, *config.command, sep="\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
