"""Processes for the benchmarks: pinned servers and load generators, measured by their rusage."""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import httpx

ROOT = Path(__file__).resolve().parent.parent
LOCUSTFILES = Path(__file__).resolve().parent / "locustfiles"


T = TypeVar("T")


class BenchError(RuntimeError):
    """A benchmark could not measure what it was asked to (fails the run loudly)."""


def cores() -> tuple[set[int], set[int]]:
    """(generator cores, server cores): different cores when the machine has two or more."""
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) < 2:
        return set(allowed), set(allowed)
    return {allowed[0]}, {allowed[-1]}


def _pin(cpus: set[int] | None):
    def fn():
        if cpus:
            os.sched_setaffinity(0, cpus)
    return fn


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    popen: subprocess.Popen
    url: str

    def stop(self) -> None:
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(5)

    def cpu_seconds(self) -> float:
        import psutil

        proc = psutil.Process(self.popen.pid)
        total = 0.0
        for p in [proc, *proc.children(recursive=True)]:
            t = p.cpu_times()
            total += t.user + t.system
        return total


def start_server(cmd: list[str], *, cpus: set[int] | None, health: str = "/healthz", env: dict | None = None,
                 timeout: float = 30.0, log: Path | None = None) -> Server:
    """Start ``cmd`` (which must listen on the port in its args) and wait for ``health`` to answer."""
    port = cmd[cmd.index("--port") + 1]
    out = open(log, "ab") if log else subprocess.DEVNULL
    popen = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                             preexec_fn=_pin(cpus), env={**os.environ, **(env or {})}, cwd=ROOT)
    server = Server(popen, f"http://127.0.0.1:{port}")
    end = time.time() + timeout
    while time.time() < end:
        if popen.poll() is not None:
            raise BenchError(f"server {' '.join(cmd[:4])}… exited with code {popen.returncode} before answering")
        try:
            if httpx.get(server.url + health, timeout=1.0).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    server.stop()
    raise BenchError(f"server {' '.join(cmd[:4])}… did not answer {health} within {timeout:.0f} s")


def uvicorn_cmd(app: str, port: int, *, factory: bool = False) -> list[str]:
    cmd = [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port),
           "--log-level", "warning", "--no-access-log"]
    return cmd + (["--factory"] if factory else [])


@dataclass
class LoadResult:
    requests: int
    failures: int
    cpu_s: float
    wall_s: float
    window: dict | None = None  # {"requests", "cpu_s", "seconds"} of the steady part, if it was asked for

    @property
    def per_core(self) -> float:
        """Requests per CPU-second of the generator: its throughput per core (over the steady
        part when it was measured, else over the whole run, start-up included)."""
        requests, cpu = (self.window["requests"], self.window["cpu_s"]) if self.window else (self.requests, self.cpu_s)
        return requests / cpu if cpu > 0 else 0.0


def run_locust(locustfiles: list[Path], host: str, *, users: int, seconds: float, cpus: set[int] | None,
               env: dict | None = None, shaped: bool = False, skip: float | None = None) -> LoadResult:
    """Run Locust headless; count requests from its JSON output and CPU from its rusage.

    ``shaped`` runs under capkit's plugin (the stage plan holds ``users`` for ``seconds``).
    ``skip`` also measures the steady part, from ``skip`` seconds after the start until the test
    stops (``locustfiles/window.py``): :attr:`LoadResult.per_core` then leaves Locust's start-up
    and shutdown out.
    """
    import tempfile

    from capkit.schemas import Stage, StagePlan

    child_env = {**os.environ, **(env or {})}
    if shaped:
        plan = StagePlan(stages=(Stage(users=users, seconds=seconds),), warmup_s=0, spawn_rate=max(users, 1))
        child_env["CAPKIT_STAGE_PLAN"] = plan.model_dump_json()
        shape_args = []
    else:
        shape_args = ["-u", str(users), "-r", str(users), "-t", f"{seconds:g}s"]
    with tempfile.TemporaryDirectory(prefix="capkit-bench-window-") as tmp:
        window_out = Path(tmp) / "window.json"
        if skip is not None:
            locustfiles = [*locustfiles, LOCUSTFILES / "window.py"]
            child_env.update(BENCH_WINDOW_SKIP=f"{skip:g}", BENCH_WINDOW_OUT=str(window_out))
        files = ",".join(str(p) for p in locustfiles)
        cmd = [sys.executable, "-m", "locust", "-f", files, "--headless", "--host", host, "--json",
               "--loglevel", "ERROR", "--exit-code-on-error", "0", "--stop-timeout", "1", *shape_args]
        t0 = time.time()
        popen = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=child_env,
                                 preexec_fn=_pin(cpus), cwd=child_env.get("CAPKIT_RAW_DIR", ROOT))
        stdout = popen.stdout.read()
        _, status, usage = os.wait4(popen.pid, 0)
        popen.returncode = os.waitstatus_to_exitcode(status)
        wall = time.time() - t0
        window = json.loads(window_out.read_text()) if window_out.exists() else None
    try:
        stats = json.loads(stdout)
    except json.JSONDecodeError:
        raise BenchError(f"locust {files} printed no JSON stats (exit {popen.returncode})") from None
    requests = sum(s["num_requests"] for s in stats)
    failures = sum(s["num_failures"] for s in stats)
    if requests == 0:
        raise BenchError(f"locust {files} sent no request to {host}")
    if failures > 0.01 * requests:
        raise BenchError(f"locust {files}: {failures} of {requests} requests to {host} failed")
    if skip is not None and (not window or window["requests"] <= 0):
        raise BenchError(f"locust {files} measured nothing after its first {skip:g} s (run of {seconds:g} s)")
    return LoadResult(requests, failures, usage.ru_utime + usage.ru_stime, wall, window)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def together(jobs: dict[str, Callable[[], T]]) -> dict[str, T]:
    """Run ``jobs`` at the same time (one thread each; each job drives its own processes) and
    return their results by name; the first job to fail raises once all have ended.

    Paired measurement: a figure and its anchor measured at the same moment on the same core see
    the same machine speed, so their ratio stays steady while the speed drifts (here, bare FastAPI
    alone on a core gave 3,653 to 6,408 req/s per core in four runs a minute apart; paired with
    the auth route on the same core, the ratio was 0.70 in all four)."""
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        futures = {name: pool.submit(job) for name, job in jobs.items()}
        wait(futures.values())
        return {name: future.result() for name, future in futures.items()}
