"""Two services capkit's authors did not write, from PyPI, each in its own venv under
``.thirdparty/NAME/venv`` (git-ignored), and a launcher for them.

- **datasette** (data publishing, ASGI on uvicorn): a seeded SQLite database
  (:mod:`benchmarks.thirdparty.datasette_data`) served read-only (``-i``).
- **kinto** (JSON CRUD REST, Pyramid on waitress): its PostgreSQL backend in a database of its
  own (``capkit_truth_kinto`` on 127.0.0.1:5432, user postgres), copied afresh at each start from
  ``capkit_truth_kinto_seed`` and dropped at stop. The seed (kinto's schema and a shared
  20,000-record catalog, posted through kinto's batch endpoint: about 2.5 min) is built once by
  ``setup``; drop that database to rebuild it.

Each service runs on 127.0.0.1 pinned to the last core (``taskset -c 1`` on 2 cores), leaving the
other to the load generator; its PID goes to capkit as ``--pid``.

    python -m benchmarks.thirdparty.services setup [datasette|kinto]   # the venvs (and the data)
    python -m benchmarks.thirdparty.services serve datasette           # start, print URL and PID, wait for Ctrl-C
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from benchmarks.harness import ROOT, BenchError, Server, free_port, start_server

HOME = ROOT / ".thirdparty"
LOCUSTFILES = Path(__file__).resolve().parent
# pinned so a later release does not change what is measured
PACKAGES = {"datasette": ["datasette==0.65.5"], "kinto": ["kinto[postgresql]==26.5.0"]}
LOCUSTFILE = {"datasette": LOCUSTFILES / "locust_datasette.py", "kinto": LOCUSTFILES / "locust_kinto.py"}
PG_ADMIN = os.environ.get("CAPKIT_TRUTH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
KINTO_DB = "capkit_truth_kinto"
KINTO_SEED = "capkit_truth_kinto_seed"  # seeded once (the catalog takes minutes), then each start copies it
CATALOG = 20_000


def venv(name: str) -> Path:
    return HOME / name / "venv"


def setup(name: str) -> None:
    """Create ``.thirdparty/NAME/venv`` with the pinned package (once), and datasette's database."""
    bin_dir = venv(name) / "bin"
    if not (bin_dir / name).exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv(name))], check=True)
        subprocess.run([str(bin_dir / "pip"), "install", "--quiet", *PACKAGES[name]], check=True)
    if name == "datasette" and not (HOME / "datasette" / "bench.db").exists():
        from benchmarks.thirdparty.datasette_data import build

        build(HOME / "datasette" / "bench.db")
    if name == "kinto" and not _database_exists(KINTO_SEED):
        _seed_database()


def _cpus() -> list[str]:
    """``taskset -c LAST`` where the machine has two or more cores, else nothing."""
    cores = sorted(os.sched_getaffinity(0))
    return ["taskset", "-c", str(cores[-1])] if len(cores) > 1 else []


@dataclass
class Running:
    name: str
    server: Server

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def pid(self) -> int:
        return self.server.popen.pid

    def stop(self) -> None:
        self.server.stop()
        if self.name == "kinto":
            _psql(f"drop database if exists {KINTO_DB} with (force)")


def start(name: str, *, log: Path | None = None) -> Running:
    """Start ``name`` on a free port of 127.0.0.1, pinned, and wait until it answers."""
    setup(name)
    port = free_port()
    log = log or HOME / name / "server.log"
    if name == "datasette":
        cmd = [*_cpus(), str(venv(name) / "bin" / "datasette"), "serve", "-i", str(HOME / name / "bench.db"),
               "--host", "127.0.0.1", "--port", str(port),
               # the defaults (1 s per query, 200 ms per facet) turn slow answers into errors or
               # silently dropped facets under load: the work per request would change with the load
               "--setting", "sql_time_limit_ms", "20000", "--setting", "facet_time_limit_ms", "20000",
               # suggested facets try every column of every table page (tens of ms each): a publisher
               # of a large table turns them off, and so do we
               "--setting", "suggest_facets", "off"]
        return Running(name, start_server(cmd, cpus=None, health="/-/versions.json", timeout=60, log=log))
    if name == "kinto":
        _psql(f"drop database if exists {KINTO_DB} with (force)")
        _psql(f"create database {KINTO_DB} template {KINTO_SEED}")
        return Running(name, _start_kinto(KINTO_DB, port, log))
    raise BenchError(f"unknown service {name!r}")


def _start_kinto(database: str, port: int, log: Path) -> Server:
    ini = _kinto_ini(database)
    cmd = [*_cpus(), str(venv("kinto") / "bin" / "kinto"), "start", "--ini", str(ini), "--port", str(port)]
    return start_server(cmd, cpus=None, health="/v1/__heartbeat__", timeout=60, log=log)


def _database_exists(name: str) -> bool:
    out = subprocess.run(["psql", PG_ADMIN, "-tAc", f"select 1 from pg_database where datname = '{name}'"],
                         check=True, capture_output=True, text=True).stdout
    return out.strip() == "1"


def _seed_database() -> None:
    """Kinto's schema and the seeded catalog in ``KINTO_SEED``, built under another name and renamed
    when complete (an interrupted seeding leaves no template behind)."""
    building = KINTO_SEED + "_building"
    _psql(f"drop database if exists {building} with (force)")
    _psql(f"create database {building}")
    ini = _kinto_ini(building)
    subprocess.run([str(venv("kinto") / "bin" / "kinto"), "migrate", "--ini", str(ini)], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=HOME / "kinto")
    server = _start_kinto(building, free_port(), HOME / "kinto" / "seed.log")
    try:
        _seed_kinto(server.url)
    finally:
        server.stop()
    _psql(f"alter database {building} rename to {KINTO_SEED}")


def _psql(sql: str) -> None:
    subprocess.run(["psql", PG_ADMIN, "-q", "-v", "ON_ERROR_STOP=1", "-c", sql], check=True,
                   stdout=subprocess.DEVNULL)


def _kinto_ini(database: str) -> Path:
    url = PG_ADMIN.rsplit("/", 1)[0] + "/" + database
    ini = HOME / "kinto" / f"{database}.ini"
    ini.parent.mkdir(parents=True, exist_ok=True)
    ini.write_text(f"""\
[server:main]
use = egg:waitress#main
host = 127.0.0.1
port = %(http_port)s
# waitress serves at most 100 connections (its default); each Locust user keeps one open, so past
# 100 users the others waited unserved and unseen (no request completed, none failed)
connection_limit = 5000

[app:main]
use = egg:kinto
kinto.storage_backend = kinto.core.storage.postgresql
kinto.storage_url = {url}
kinto.cache_backend = kinto.core.cache.postgresql
kinto.cache_url = {url}
kinto.permission_backend = kinto.core.permission.postgresql
kinto.permission_url = {url}
# Basic Auth: any user:password pair is its own user id (HMAC of both), no accounts to create
multiauth.policies = basicauth
kinto.userid_hmac_secret = capkit-truth-not-a-secret
kinto.bucket_create_principals = system.Authenticated
kinto.batch_max_requests = 500

[loggers]
keys = root

[handlers]
keys = console

[formatters]
keys = plain

[logger_root]
level = WARNING
handlers = console

[handler_console]
class = StreamHandler
args = (sys.stderr,)
formatter = plain

[formatter_plain]
format = %(asctime)s %(levelname)s %(name)s %(message)s
""")
    return ini


def _seed_kinto(url: str) -> None:
    """Bucket ``bench`` writable by every authenticated user, and the shared ``catalog``."""
    rng = random.Random(29)
    auth = ("seed", "seed")
    with httpx.Client(base_url=url + "/v1", auth=auth, timeout=120) as c:
        c.put("/buckets/bench", json={"permissions": {"write": ["system.Authenticated"]}}).raise_for_status()
        c.put("/buckets/bench/collections/catalog").raise_for_status()
        for first in range(0, CATALOG, 500):
            reqs = [{"method": "POST", "path": "/buckets/bench/collections/catalog/records",
                     "body": {"data": {"sku": f"SKU-{i:06d}", "category": f"cat-{rng.randint(0, 39)}",
                                       "price": round(rng.uniform(1, 500), 2), "stock": rng.randint(0, 200),
                                       "title": f"Item {i}", "tags": rng.sample(["new", "sale", "eco", "gift",
                                                                                  "bulk", "rare"], 2)}}}
                    for i in range(first, min(first + 500, CATALOG))]
            r = c.post("/batch", json={"requests": reqs})
            r.raise_for_status()
            bad = [x["status"] for x in r.json()["responses"] if x["status"] >= 300]
            if bad:
                raise BenchError(f"kinto: seeding the catalog failed ({bad[:3]})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="third-party services for the truth protocol")
    parser.add_argument("action", choices=("setup", "serve"))
    parser.add_argument("names", nargs="*", help="datasette, kinto (default: both)")
    args = parser.parse_args(argv)
    names = args.names or sorted(PACKAGES)
    if set(names) - set(PACKAGES):
        parser.error(f"unknown service(s) {sorted(set(names) - set(PACKAGES))}: choose from {sorted(PACKAGES)}")
    if args.action == "setup":
        for name in names:
            setup(name)
            print(f"{name}: {venv(name)}")
        return 0
    running = start(names[0])
    print(f"{names[0]}: {running.url} pid {running.pid} (Ctrl-C stops it)", flush=True)
    try:
        while running.server.popen.poll() is None:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        running.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
