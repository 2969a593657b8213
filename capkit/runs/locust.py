"""Start Locust as its own process (never imported here: Locust monkey-patches at import)."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from capkit.loadgen import PLUGIN
from capkit.runs.processes import ManagedProcess, spawn
from capkit.schemas import StagePlan


@dataclass
class LoadProcess(ManagedProcess):
    """A running Locust process and the folder it writes ``load.jsonl`` into."""

    raw_dir: Path = Path(".")


def _files(locustfiles: list[Path]) -> str:
    return ",".join(str(p) for p in [*locustfiles, PLUGIN])


def locust_command(*, locustfiles: list[Path], host: str, processes: int = 1,
                   extra_args: list[str] | None = None) -> list[str]:
    """The Locust command line for a headless, shaped run bounded in time."""
    cmd = [sys.executable, "-m", "locust", "-f", _files(locustfiles), "--headless", "--host", host,
           "--stop-timeout", "5", "--only-summary", "--loglevel", "WARNING",
           "--exit-code-on-error", "0"]
    if processes > 1:
        cmd += ["--processes", str(processes)]
    return cmd + list(extra_args or [])


def worker_command(*, master_host: str, master_port: int | None, locustfiles: list[Path],
                   processes: int = 1) -> list[str]:
    """The Locust worker command line for ``capkit worker``."""
    cmd = [sys.executable, "-m", "locust", "-f", _files(locustfiles), "--worker", "--master-host", master_host,
           "--loglevel", "WARNING"]
    if master_port:
        cmd += ["--master-port", str(master_port)]
    if processes > 1:
        cmd += ["--processes", str(processes)]
    return cmd


def start_locust(*, locustfiles: list[Path], host: str, plan: StagePlan, raw_dir: Path,
                 processes: int = 1, env: dict[str, str] | None = None, cpu: set[int] | None = None,
                 extra_args: list[str] | None = None) -> LoadProcess:
    """Start Locust in a new process group writing ``raw_dir/load.jsonl``; return at once."""
    raw_dir = raw_dir.resolve()
    raw_dir.mkdir(parents=True, exist_ok=True)
    log_path = raw_dir / "locust.log"
    child_env = {**os.environ, **(env or {}), "CAPKIT_STAGE_PLAN": plan.model_dump_json(),
                 "CAPKIT_RAW_DIR": str(raw_dir)}
    cmd = locust_command(locustfiles=locustfiles, host=host, processes=processes, extra_args=extra_args)
    popen = spawn(cmd, log_path=log_path, env=child_env, cpus=cpu, cwd=raw_dir)
    return LoadProcess(popen=popen, log_path=log_path, raw_dir=raw_dir)
