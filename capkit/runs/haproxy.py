"""HAProxy in front of a fleet's replicas: its generated config and its process, stopped by PID.

Balancing is ``leastconn``: a new request goes to the replica with the fewest requests in
flight. The reference service's requests differ by two orders of magnitude in length (a token
check takes a millisecond, a streamed answer hundreds, a WebSocket lives for the session), so
round-robin would pile long requests onto one replica while another idles; leastconn follows
what each replica actually holds, which is what a replica's capacity is measured in. Each
request is balanced on its own (HTTP mode, keep-alive on both sides), a replica that fails its
``/healthz`` check (every second, two in a row) is taken out, and a request whose connection
was refused is sent to another replica (``option redispatch``), so a lost replica costs the
requests it held, not the run.

Its stats page (CSV) is sampled by :class:`capkit.metrics.haproxy.HAProxyCollector`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from capkit.errors import ConfigError, ServiceError
from capkit.runs.processes import ManagedProcess, free_port, listening, spawn

HOST = "127.0.0.1"
BALANCE = "leastconn"


def haproxy_binary(name: str = "haproxy") -> str:
    """The HAProxy executable (``name`` on PATH, or a path); one clear line when it is missing."""
    found = shutil.which(name)
    if found is None:
        raise ConfigError(f"the load balancer {name!r} is not installed (or not on PATH); install it with: "
                          f"sudo ops/install-system-deps.sh haproxy")
    return found


@dataclass(frozen=True)
class HAProxyConfig:
    path: Path
    port: int
    stats_port: int
    servers: tuple[tuple[str, int], ...]


def write_config(servers: list[tuple[str, int]], workdir: Path, *, port: int | None = None,
                 stats_port: int | None = None) -> HAProxyConfig:
    """Write ``haproxy.cfg`` balancing ``servers`` ((name, port) on 127.0.0.1) into ``workdir``."""
    if not servers:
        raise ConfigError("a load balancer needs at least one replica")
    port, stats_port = port or free_port(HOST), stats_port or free_port(HOST)
    lines = "\n".join(f"    server {name} {HOST}:{p} check" for name, p in servers)
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "haproxy.cfg"
    path.write_text(f"""global
    maxconn 4096

defaults
    mode http
    timeout connect 2s
    timeout client 120s
    timeout server 120s
    timeout tunnel 1h
    timeout queue 30s
    retries 2
    option redispatch

frontend fleet
    bind {HOST}:{port}
    default_backend replicas

backend replicas
    balance {BALANCE}
    option httpchk GET /healthz
    http-check expect status 200
    default-server inter 1s fall 2 rise 2
{lines}

listen stats
    bind {HOST}:{stats_port}
    stats enable
    stats uri /stats
""")
    return HAProxyConfig(path=path, port=port, stats_port=stats_port, servers=tuple(servers))


@dataclass
class HAProxyProcess(ManagedProcess):
    config: HAProxyConfig | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.config.port}"


def start_haproxy(servers: list[tuple[str, int]], workdir: Path, *, binary: str = "haproxy",
                  timeout: float = 10.0) -> HAProxyProcess:
    """Check and start HAProxy in the foreground (its own process group; stop it by PID) and wait
    until it answers ``/healthz`` through a replica."""
    exe = haproxy_binary(binary)
    config = write_config(servers, workdir)
    check = subprocess.run([exe, "-c", "-q", "-f", str(config.path)], capture_output=True, text=True, timeout=30)
    if check.returncode != 0:
        raise ServiceError(f"HAProxy refused its config {config.path}: {(check.stderr or check.stdout).strip()}")
    log = workdir / "haproxy.log"
    popen = spawn([exe, "-db", "-f", str(config.path)], log_path=log, env=dict(os.environ))
    proc = HAProxyProcess(popen=popen, log_path=log, config=config)
    deadline = time.monotonic() + timeout
    try:
        while True:
            if not proc.alive():
                raise ServiceError(f"HAProxy exited while starting: {proc.log_tail()}")
            if listening(config.port, HOST):
                try:
                    if httpx.get(f"{proc.url}/healthz", timeout=2.0).status_code == 200:
                        return proc
                except httpx.HTTPError:
                    pass
            if time.monotonic() > deadline:
                raise ServiceError(f"HAProxy on {HOST}:{config.port} did not reach a replica within "
                                   f"{timeout:.0f} s: {proc.log_tail()}")
            time.sleep(0.1)
    except BaseException:
        proc.stop()
        raise


__all__ = ["BALANCE", "HAProxyProcess", "haproxy_binary", "start_haproxy", "write_config"]
