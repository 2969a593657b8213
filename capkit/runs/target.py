"""`capkit run --target URL`: a user's own locustfile under capkit's shapes, recorder and store.

Everything that can be wrong with the input (a locustfile that does not import, a target that
does not answer, a PID that does not exist, a metrics URL that does not scrape) is checked
before the run is created, so a refused run leaves nothing in the store.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Callable

import httpx

from capkit.errors import ConfigError, LoadError, ServiceError
from capkit.runs.orchestrator import RunResult, new_run_id, run_load
from capkit.runs.progress import progress_printer
from capkit.schemas import DEFAULT_CRITERIA, Criteria, RunSpec, StagePlan
from capkit.store import Store


def check_locustfile(path: Path, timeout: float = 60.0) -> list[str]:
    """Import ``path`` in a Locust process (``locust --list``); return its user classes.

    Raises :class:`LoadError` with the import error's last line when it does not load.
    """
    if not path.is_file():
        raise ConfigError(f"locustfile {path} does not exist")
    try:
        proc = subprocess.run([sys.executable, "-m", "locust", "-f", str(path), "--list"], capture_output=True,
                              text=True, timeout=timeout, cwd=path.parent)
    except subprocess.TimeoutExpired:
        raise LoadError(f"locustfile {path} did not load within {timeout:.0f} s") from None
    lines = [ln.strip() for ln in (proc.stderr + proc.stdout).splitlines() if ln.strip()]
    if proc.returncode != 0:
        raise LoadError(f"locustfile {path} cannot be loaded: {lines[-1] if lines else f'exit {proc.returncode}'}")
    users = [ln for ln in proc.stdout.splitlines()[1:] if ln.strip()]
    if not users:
        raise LoadError(f"locustfile {path} defines no User class")
    return [u.strip() for u in users]


def check_target(url: str, timeout: float = 5.0) -> None:
    """Raise :class:`ServiceError` unless ``url`` answers HTTP (any status)."""
    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"target {url!r} is not an http(s) URL (example: --target http://127.0.0.1:8000)")
    try:
        httpx.get(url, timeout=timeout)
    except httpx.HTTPError as exc:
        raise ServiceError(f"target {url} does not answer ({type(exc).__name__}); start it or fix --target") from None


def prepare_collectors(*, pid: int | None, prometheus: str | None, metrics: list[str] | None) -> list:
    """Check ``--pid`` and build the Prometheus collector (``service`` source without a PID)."""
    import psutil

    from capkit.metrics import PrometheusCollector, parse_mappings

    if pid is not None and not psutil.pid_exists(pid):
        raise ConfigError(f"no process with PID {pid}; pass the PID of the running service (--pid)")
    if not prometheus:
        return []
    return [PrometheusCollector(prometheus, parse_mappings(metrics), source="prometheus" if pid else "service")]


def run_target(*, store: Store, target: str, locustfiles: list[Path], plan: StagePlan, runs_dir: Path,
               pid: int | None = None, prometheus: str | None = None, metrics: list[str] | None = None,
               processes: int = 1, sample_interval_s: float = 1.0, master_workers: int = 0,
               master_port: int | None = None, env: dict[str, str] | None = None,
               say: Callable[[str], None] = print, planner=None, limits: dict | None = None,
               slo: dict | None = None, criteria: Criteria = DEFAULT_CRITERIA) -> RunResult:
    """Run ``locustfiles`` against ``target`` through ``plan``; measure the service by ``pid``
    and/or ``prometheus``; store everything in ``store``.

    ``master_workers > 0`` runs Locust as a master waiting for that many workers
    (``capkit worker --master-host …`` on other machines) instead of generating load itself.
    """
    if master_workers and processes > 1:
        raise ConfigError("--processes and --master exclude each other: workers bring their own processes")
    if metrics and not prometheus:
        raise ConfigError("--metric maps series of a Prometheus endpoint: give it with --prometheus URL")
    for path in locustfiles:
        check_locustfile(path)
    check_target(target)
    scrapers = prepare_collectors(pid=pid, prometheus=prometheus, metrics=metrics)
    run_id = new_run_id()
    spec = RunSpec(run_id=run_id, target=target, scenario="locustfile", plan=plan, processes=processes,
                   sample_interval_s=sample_interval_s, criteria=criteria,
                   notes={"locustfiles": [str(p) for p in locustfiles], "pid": pid, "prometheus": prometheus,
                          "metrics": list(metrics or []), "master_workers": master_workers,
                          "limits": dict(limits or {}), "slo": slo})
    extra: list[str] = []
    if master_workers:
        extra = ["--master", "--expect-workers", str(master_workers)]
        if master_port:
            extra += ["--master-bind-port", str(master_port)]
        say(f"waiting for {master_workers} worker(s): capkit worker --master-host THIS_HOST"
            + (f" --master-port {master_port}" if master_port else ""))
    what = (f"search · budget {planner.budget_s:.0f} s, steps of {planner.rules.step_s:g} s" if planner is not None
            else f"{len(plan.stages)} steps, {plan.duration_s:.0f} s of load")
    say(f"capkit run · run {run_id} · {target} · {what}")
    try:
        return run_load(spec, store=store, raw_dir=runs_dir / run_id, locustfiles=list(locustfiles),
                        service_pid=pid, env=env, on_progress=progress_printer(say), scrapers=scrapers,
                        extra_args=extra,
                        start_wait_s=600.0 if master_workers else 0.0, planner=planner)
    except BaseException:
        for s in scrapers:  # run_load closes them once it has started; close them if it never did
            s.close()
        raise
