"""Processes a run starts (the service under test, Locust): start pinned, in a cgroup with pod-like
limits, stop by PID, log tail."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from capkit.errors import ConfigError, ServiceError
from capkit.metrics.cgroups import MIN_CPU_CORES, Cgroup, CgroupError
from capkit.service.server import check_port_free


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def listening(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something accepts TCP connections on ``host:port`` (a helper process is up)."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def machine_cores() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def core_split(service_cores: float = 1.0) -> tuple[set[int] | None, set[int] | None]:
    """(service cores, generator cores): the last ⌈``service_cores``⌉ allowed cores for the service,
    the rest for load; (None, None) when no core would be left for the load."""
    try:
        cores = sorted(os.sched_getaffinity(0))
    except AttributeError:
        return None, None
    need = max(1, -int(-service_cores // 1))
    if len(cores) <= need:
        return None, None
    return set(cores[-need:]), set(cores[:-need])


def pinned_to(cpus: set[int] | None, cgroup: Cgroup | None = None):
    """A ``preexec_fn`` pinning the child to ``cpus`` (nothing when None or not supported) and
    moving it into ``cgroup`` (its limits then hold for it and every process it starts)."""
    def pin():
        if cgroup is not None:
            cgroup.enter()
        if cpus:
            try:
                os.sched_setaffinity(0, cpus)
            except (AttributeError, OSError):
                pass
    return pin


def check_limits(cpu_cores: float | None, memory_mib: float | None, *, replicas: int = 1) -> None:
    """Refuse limits this machine cannot give (one :class:`ConfigError` line), before anything starts."""
    cores = machine_cores()
    if cpu_cores is not None and not MIN_CPU_CORES <= cpu_cores <= cores:
        raise ConfigError(f"--cpu-limit {cpu_cores:g} is outside {MIN_CPU_CORES:g}–{cores} (this machine's cores)")
    if memory_mib is not None and memory_mib < 32:
        raise ConfigError(f"--memory-limit-mib {memory_mib:g} is below 32 MiB; the service alone needs more")
    if replicas < 1:
        raise ConfigError(f"--replicas {replicas} must be ≥ 1")


def limited_cgroup(name: str, cpu_cores: float | None, memory_mib: float | None, *, root: str,
                   required: bool) -> tuple[Cgroup | None, str | None]:
    """(the cgroup holding these limits, None) or, where cgroups cannot be written and the limits
    are not ``required``, (None, the one line saying they are not enforced)."""
    if cpu_cores is None and memory_mib is None:
        return None, None
    try:
        return Cgroup.create(name, cpu_cores=cpu_cores, memory_mib=memory_mib, root=root), None
    except CgroupError as exc:
        if required:
            raise
        return None, f"limits not enforced: {exc}; the service runs pinned as without them"


@dataclass
class ManagedProcess:
    """A child started in its own process group, writing its output to ``log_path``."""

    popen: subprocess.Popen
    log_path: Path
    cgroup: Cgroup | None = None

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM to the process group, SIGKILL to what is left after ``timeout``; the exit code."""
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
            if self.popen.poll() is not None:
                break
            try:
                os.killpg(self.popen.pid, sig)
            except (ProcessLookupError, PermissionError):
                break
            try:
                self.popen.wait(wait)
            except subprocess.TimeoutExpired:
                continue
        if self.cgroup is not None:
            self.cgroup.remove()
        return self.popen.returncode

    def log_tail(self, lines: int = 3) -> str:
        try:
            return " | ".join(self.log_path.read_text(errors="replace").strip().splitlines()[-lines:])
        except OSError:
            return ""


def spawn(cmd: list[str], *, log_path: Path, env: dict[str, str], cpus: set[int] | None = None,
          cwd: Path | None = None, cgroup: Cgroup | None = None) -> subprocess.Popen:
    """Start ``cmd`` in a new session (its own process group), output appended to ``log_path``,
    pinned to ``cpus`` and inside ``cgroup``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
                                preexec_fn=pinned_to(cpus, cgroup), cwd=cwd)


@dataclass
class ServiceProcess(ManagedProcess):
    url: str = ""


def start_service(*, host: str, port: int, env: dict[str, str], log_path: Path, cpus: set[int] | None = None,
                  workers: int = 1, timeout: float = 60.0, cgroup: Cgroup | None = None) -> ServiceProcess:
    """Start ``capkit serve`` on ``host:port`` pinned to ``cpus``, inside ``cgroup`` (its limits; the
    service owns it from here and removes it when stopped); wait until ``/healthz`` answers."""
    try:
        check_port_free(host, port)
        cmd = [sys.executable, "-m", "capkit", "serve", "--host", host, "--port", str(port),
               "--workers", str(workers)]
        popen = spawn(cmd, log_path=log_path, env={**os.environ, **env}, cpus=cpus, cgroup=cgroup)
    except BaseException:
        if cgroup is not None:
            cgroup.remove()
        raise
    svc = ServiceProcess(popen=popen, log_path=log_path, url=f"http://{host}:{port}", cgroup=cgroup)
    try:
        wait_healthy(svc.url, timeout=timeout, alive=svc.alive)
    except ServiceError as exc:
        svc.stop()
        raise ServiceError(f"{exc} — service log: {svc.log_tail()}") from None
    except BaseException:
        svc.stop()
        raise
    return svc


def wait_healthy(url: str, *, timeout: float = 30.0, alive=lambda: True) -> dict:
    """Poll ``url/healthz`` until it answers 200; raise :class:`ServiceError` otherwise."""
    end = time.time() + timeout
    last = "no answer"
    while time.time() < end:
        if not alive():
            raise ServiceError(f"the service at {url} exited while starting")
        try:
            resp = httpx.get(f"{url}/healthz", timeout=2.0)
            if resp.status_code == 200:
                return resp.json()
            last = f"HTTP {resp.status_code}"
        except httpx.HTTPError as exc:
            last = type(exc).__name__
        time.sleep(0.2)
    raise ServiceError(f"the service at {url} did not become healthy within {timeout:.0f} s ({last})")
