"""`capkit run`: drive Locust through a stage plan, sample resources, store as it goes.

A run that dies keeps every completed step and is marked incomplete with the reason.
"""

from __future__ import annotations

import json
import os
import platform
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from capkit.errors import CapkitError, LoadError
from capkit.metrics import DbTarget, LoopbackNetworkSampler, ProcessTreeSampler
from capkit.metrics.machine import MachineSampler
from capkit.metrics.replicas import Replica, ReplicaSampler
from capkit.records.jsonl import JsonlWriter, read_new_lines
from capkit.runs.ingest import Ingestor
from capkit.runs.locust import start_locust
from capkit.runs.progress import Progress
from capkit.schemas import SERVICE_EXITED, RunSpec, RunStatus
from capkit.store import Store
from capkit.store.guarded import GuardedStore


@dataclass
class RunResult:
    run_id: str
    status: RunStatus
    reason: str | None
    raw_dir: Path
    steps: int
    request_rows: int
    samples: int
    store_failed: bool = False


def new_run_id() -> str:
    # 48 random bits: 20,000 ids in one second collide with probability 7e-7 (32 bits: 5 %)
    return time.strftime("%Y%m%d-%H%M%S", time.localtime()) + f"-{os.urandom(6).hex()}"


def machine_info() -> dict:
    import psutil

    return {"host": platform.node(), "cpus": os.cpu_count(),
            "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
            "python": platform.python_version(), "platform": platform.platform()}


def git_sha(cwd: Path | None = None) -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=cwd, capture_output=True, text=True,
                             timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


def run_load(spec: RunSpec, *, store: Store, raw_dir: Path, locustfiles: list[Path],
             service_pid: int | None = None, db_url: str | None = None, env: dict[str, str] | None = None,
             generator_cpus: set[int] | None = None, on_progress: Callable[[Progress], None] | None = None,
             scrapers: list | None = None, extra_args: list[str] | None = None,
             start_wait_s: float = 0.0, planner=None, replicas: list[Replica] | None = None,
             fleet: bool = False, say: Callable[[str], None] | None = None) -> RunResult:
    """Run the stage plan of ``spec`` against ``spec.target``; see the module docstring.

    ``scrapers`` are extra collectors with a ``sample() -> dict[metric, value]`` method and a
    ``source`` name (PostgreSQL, Redis, Prometheus); they are closed at the end.
    ``extra_args`` go to Locust (e.g. ``--master --expect-workers 2``); ``start_wait_s`` is
    how long the load may take to begin (waiting for workers) on top of the plan's duration.

    ``planner`` (a search) decides each next stage from what was measured: near the end of every
    step its ``decide(steps, requests, samples, now)`` returns the next
    :class:`~capkit.schemas.Stage` or a stop reason (str); ``spec.plan`` then holds only the first
    stages, and the run may last ``planner.budget_s``. Its final ``outcome()`` is stored with the run.

    ``replicas`` (instead of ``service_pid``) are the service's processes with their cgroups. An
    OOM kill in a replica's cgroup ends the run as the service's failure at that load (a measured
    finding: the memory limit was reached). With ``fleet``, a replica whose process dies otherwise
    is a loss: an event (``replica_lost``) and a line to ``say``, ``replicas_alive`` falls, and
    the run goes on while any replica is left.
    """
    raw_dir.mkdir(parents=True, exist_ok=True)
    (raw_dir / "run.json").write_text(spec.model_dump_json(indent=2))
    (raw_dir / "machine.json").write_text(json.dumps(machine_info(), indent=2))
    store.create_run(run_id=spec.run_id, target=spec.target, scenario=spec.scenario,
                     spec=json.loads(spec.model_dump_json()), machine=machine_info(), git_sha=git_sha())
    store = GuardedStore(store)  # from here on, a store failure must not stop the load
    ingest = Ingestor(store, spec.run_id, keep=planner is not None)
    kept_samples: list[dict] = []
    stages_file = raw_dir / "stages.jsonl"
    if planner is not None:
        env = {**(env or {}), "CAPKIT_STAGES_FILE": str(stages_file.resolve())}
    samples_out = JsonlWriter(open(raw_dir / "resources.jsonl", "a", encoding="utf-8"))
    if replicas is None and service_pid:
        replicas = [Replica("service", service_pid)]
    service = ReplicaSampler(replicas, DbTarget.from_url(db_url), fleet=fleet) if replicas else None
    network = LoopbackNetworkSampler() if replicas else None
    machine = MachineSampler()
    status, reason = RunStatus.INCOMPLETE, "interrupted"
    n_samples = n_rows = 0
    load = load_file = None
    previous_term = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        load = start_locust(locustfiles=locustfiles, host=spec.target, plan=spec.plan, raw_dir=raw_dir,
                            processes=spec.processes, env=env, cpu=generator_cpus, extra_args=extra_args)
        generator = ProcessTreeSampler(load.pid)
        if service:
            service.rows(time.time())
        planned_s = planner.budget_s if planner is not None else spec.plan.duration_s
        deadline = time.time() + planned_s + 60 + start_wait_s
        decided: set[int] = set()
        started_at = time.time()
        load_file = _wait_for(raw_dir / "load.jsonl", load)
        progress = Progress(steps_total=planner.steps_hint if planner is not None else len(spec.plan.stages))
        while True:
            time.sleep(spec.sample_interval_s - (time.time() % spec.sample_interval_s))
            now = time.time()
            rows = (service.rows(now) if service else []) + _samples(now, network, generator,
                                                                    [*(scrapers or []), machine])
            n_samples += store.add_samples(spec.run_id, rows)
            for row in rows:
                samples_out.write(row)
            new = ingest.feed(read_new_lines(load_file))
            n_rows += len(new)
            if planner is not None:
                kept_samples.extend(rows)
                _plan_next(planner, ingest, kept_samples, spec, stages_file, decided, now)
            if on_progress:
                _update_progress(progress, ingest, new, rows, spec, now,
                                 budget_end=(started_at + planner.budget_s) if planner is not None else None)
                on_progress(progress)
            killed = service.oom_killed() if service else []
            if killed:
                group = service.limit_of(killed[0])
                limit = f" of {group.memory_mib:g} MiB" if group is not None and group.memory_mib else ""
                reason = _service_exited(ingest, planner, f"OOM-killed under its memory limit{limit}"
                                         + (f" ({', '.join(killed)})" if fleet else ""))
                store.add_event(spec.run_id, "oom_kill", json.dumps({"replicas": killed, "ts": now}))
                break
            if service and fleet:
                for name in service.newly_lost():
                    store.add_event(spec.run_id, "replica_lost", json.dumps({"replica": name, "ts": now}))
                    if say is not None:
                        say(f"{name} is gone; the run goes on with {len(service.alive_names())} "
                            f"of {len(replicas)} (steps from here on are flagged replicas_lost)")
            if service and not service.alive():
                reason = _service_exited(ingest, planner)
                break
            if not load.alive():
                tail = ingest.feed(read_new_lines(load_file))
                n_rows += len(tail)
                if ingest.ended is not None and ingest.ended.get("complete", True):
                    status, reason = RunStatus.COMPLETE, None
                elif ingest.ended is not None:  # the load ended itself early (every worker lost)
                    reason = ingest.ended["reason"]
                else:
                    reason = f"load generator exited with code {load.popen.returncode}: {load.log_tail(2)}"
                break
            if now > deadline:
                reason = "the load did not finish in its planned time"
                break
    except KeyboardInterrupt:
        reason = "interrupted (SIGINT/SIGTERM)"
        raise
    except CapkitError as exc:
        reason = str(exc)
        raise
    finally:
        signal.signal(signal.SIGTERM, previous_term)
        if load is not None:
            load.stop()
        for scraper in scrapers or ():
            close = getattr(scraper, "close", None)
            if close is not None:
                close()
        if load_file is not None:
            n_rows += len(ingest.feed(read_new_lines(load_file)))
            load_file.close()
        ingest.finish(time.time(), last_complete=(status == RunStatus.COMPLETE))
        if planner is not None:
            outcome = planner.outcome()
            (raw_dir / "search.json").write_text(json.dumps(outcome, indent=2))
            store.add_event(spec.run_id, "search", json.dumps(outcome))
        store.finish_run(spec.run_id, status, reason)
        if reason:
            store.add_event(spec.run_id, "incomplete", reason)
        if store.failure is not None:
            status = RunStatus.INCOMPLETE
            reason = (f"{store.failure}; the raw files in {raw_dir} keep every measurement — "
                      f"load them with `capkit load {raw_dir}` once the store is back")
    return RunResult(spec.run_id, status, reason, raw_dir, len(ingest.steps), n_rows, n_samples,
                     store_failed=store.failure is not None)


def _plan_next(planner, ingest: Ingestor, samples: list[dict], spec: RunSpec, stages_file: Path,
               decided: set[int], now: float) -> None:
    """Near the end of the current step (and only once per step), let the planner choose the next
    stage and append it to the stages file the Locust shape reads."""
    step = ingest.current_step
    if step is None or step in decided:
        return
    started = ingest.steps[step]
    known = len(spec.plan.stages) + len(decided)  # stages already given to the shape
    if step + 1 < known:
        return  # the next stage is already planned (the first stages of the plan)
    if now - started["started_at"] < started["planned_s"] - planner.lead_s:
        return
    decided.add(step)
    decision = planner.decide(list(ingest.steps.values()), ingest.request_rows, samples + ingest.meter_rows, now)
    record = {"stop": decision} if isinstance(decision, str) else decision.model_dump(mode="json")
    with open(stages_file, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record) + "\n")


def _service_exited(ingest: Ingestor, planner, how: str = "its process exited") -> str:
    """The reason a run ends when its service's process is gone, naming the step and load it died
    in (and ``how``, when not only its process exited); a search ends on it, with that load as its
    finding."""
    step = ingest.current_step
    detail = "" if how == "its process exited" else f": {how}"
    if step is None:
        return f"{SERVICE_EXITED} before the load began{detail}"
    started = ingest.steps[step]
    rate = started.get("rate")
    load = float(rate) if rate is not None and planner is not None and planner.rules.rate else float(started["users"])
    if planner is not None:
        planner.failed(load, how)
    unit = "req/s" if planner is not None and planner.rules.rate else "users"
    return f"{SERVICE_EXITED} during the step at {load:g} {unit}{detail}"


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def _wait_for(path: Path, load, timeout: float = 30.0):
    end = time.time() + timeout
    while not path.exists():
        if not load.alive():
            raise LoadError(f"Locust exited before starting (code {load.popen.returncode}): {load.log_tail(3)}")
        if time.time() > end:
            raise LoadError(f"Locust did not start within {timeout:.0f} s: {load.log_tail(3)}")
        time.sleep(0.1)
    return open(path, encoding="utf-8")


def _samples(now, network, generator, scrapers) -> list[dict]:
    """One sample of every collector; a collector that returned nothing (it failed or the process
    is gone) leaves a ``missed`` sample, so the analysis can tell a step it did not cover."""
    rows = []
    for source, sampler in (("service", network), ("generator", generator),
                            *((getattr(s, "source", "scrape"), s) for s in (scrapers or []))):
        if sampler is None:
            continue
        values = sampler.sample()
        if not values:
            rows.append({"ts": now, "source": source, "metric": f"missed_{type(sampler).__name__}", "value": 1.0})
        for metric, value in values.items():
            rows.append({"ts": now, "source": source, "metric": metric, "value": float(value)})
    return rows


def _update_progress(p: Progress, ingest: Ingestor, new_rows, samples, spec: RunSpec, now: float,
                     budget_end: float | None = None) -> None:
    step = ingest.current_step
    users = seconds_left = None
    if step is not None:
        started = ingest.steps[step]
        users = (ingest.last_tick or {}).get("users", started["users"])
        if budget_end is not None:  # a search: what is left of its time budget
            seconds_left = budget_end - now
        else:
            seconds_left = sum(s.seconds for s in spec.plan.stages[step:]) - (now - started["started_at"])
    p.update(step=step, users=users, seconds_left=seconds_left, new_rows=new_rows, samples=samples, now=now)


__all__ = ["RunResult", "run_load", "new_run_id", "machine_info", "git_sha"]
