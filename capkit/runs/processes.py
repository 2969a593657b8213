"""Processes a run starts (the service under test, Locust): start pinned, stop by PID, log tail."""

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

from capkit.errors import ServiceError
from capkit.service.server import check_port_free


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def core_split() -> tuple[set[int] | None, set[int] | None]:
    """(service cores, generator cores): the last allowed core for the service, the rest for load."""
    try:
        cores = sorted(os.sched_getaffinity(0))
    except AttributeError:
        return None, None
    if len(cores) < 2:
        return None, None
    return {cores[-1]}, set(cores[:-1])


def pinned_to(cpus: set[int] | None):
    """A ``preexec_fn`` pinning the child to ``cpus`` (nothing when None or not supported)."""
    def pin():
        if cpus:
            try:
                os.sched_setaffinity(0, cpus)
            except (AttributeError, OSError):
                pass
    return pin


@dataclass
class ManagedProcess:
    """A child started in its own process group, writing its output to ``log_path``."""

    popen: subprocess.Popen
    log_path: Path

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
        return self.popen.returncode

    def log_tail(self, lines: int = 3) -> str:
        try:
            return " | ".join(self.log_path.read_text(errors="replace").strip().splitlines()[-lines:])
        except OSError:
            return ""


def spawn(cmd: list[str], *, log_path: Path, env: dict[str, str], cpus: set[int] | None = None,
          cwd: Path | None = None) -> subprocess.Popen:
    """Start ``cmd`` in a new session (its own process group), output appended to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
                                preexec_fn=pinned_to(cpus), cwd=cwd)


@dataclass
class ServiceProcess(ManagedProcess):
    url: str = ""


def start_service(*, host: str, port: int, env: dict[str, str], log_path: Path, cpus: set[int] | None = None,
                  workers: int = 1, timeout: float = 60.0) -> ServiceProcess:
    """Start ``capkit serve`` on ``host:port`` pinned to ``cpus``; wait until ``/healthz`` answers."""
    check_port_free(host, port)
    cmd = [sys.executable, "-m", "capkit", "serve", "--host", host, "--port", str(port), "--workers", str(workers)]
    popen = spawn(cmd, log_path=log_path, env={**os.environ, **env}, cpus=cpus)
    svc = ServiceProcess(popen=popen, log_path=log_path, url=f"http://{host}:{port}")
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
