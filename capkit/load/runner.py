"""Start Locust as its own process (never imported here: Locust monkey-patches at import)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from capkit.schemas import StagePlan

LOAD_DIR = Path(__file__).resolve().parent
PLUGIN = LOAD_DIR / "plugin.py"
SCENARIOS = LOAD_DIR / "scenarios.py"


@dataclass
class LoadProcess:
    """A running Locust process and where it writes."""

    popen: subprocess.Popen
    raw_dir: Path
    log_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, timeout: float = 10.0) -> int:
        """Ask Locust to stop (SIGTERM to its group), then kill what is left; return the exit code."""
        if self.popen.poll() is None:
            _signal_group(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                _signal_group(self.popen.pid, signal.SIGKILL)
                self.popen.wait(5)
        return self.popen.returncode

    def log_tail(self, lines: int = 5) -> str:
        try:
            text = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return " | ".join(text[-lines:])


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def locust_command(*, locustfiles: list[Path], host: str, plan: StagePlan, processes: int = 1,
                   extra_args: list[str] | None = None) -> list[str]:
    """The Locust command line for a headless, shaped run bounded in time."""
    files = ",".join(str(p) for p in [*locustfiles, PLUGIN])
    cmd = [sys.executable, "-m", "locust", "-f", files, "--headless", "--host", host,
           "--stop-timeout", "5", "--only-summary", "--loglevel", "WARNING",
           "--exit-code-on-error", "0"]
    if processes > 1:
        cmd += ["--processes", str(processes)]
    return cmd + list(extra_args or [])


def start_locust(*, locustfiles: list[Path], host: str, plan: StagePlan, raw_dir: Path,
                 processes: int = 1, env: dict[str, str] | None = None, cpu: set[int] | None = None,
                 extra_args: list[str] | None = None) -> LoadProcess:
    """Start Locust in a new process group writing ``raw_dir/load.jsonl``; return at once."""
    raw_dir = raw_dir.resolve()
    raw_dir.mkdir(parents=True, exist_ok=True)
    log_path = raw_dir / "locust.log"
    child_env = {**os.environ, **(env or {}), "CAPKIT_STAGE_PLAN": plan.model_dump_json(),
                 "CAPKIT_RAW_DIR": str(raw_dir)}
    cmd = locust_command(locustfiles=locustfiles, host=host, plan=plan, processes=processes,
                         extra_args=extra_args)

    def _pin():
        if cpu:
            try:
                os.sched_setaffinity(0, cpu)
            except (AttributeError, OSError):
                pass

    with open(log_path, "ab") as log:
        popen = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=child_env,
                                 start_new_session=True, preexec_fn=_pin, cwd=raw_dir)
    return LoadProcess(popen=popen, raw_dir=raw_dir, log_path=log_path)
