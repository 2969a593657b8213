"""Master and workers that stay honest with each other (runs inside Locust processes only).

- A worker sends its capkit version and a hash of its locustfiles when it connects; a master
  whose own differ refuses it (one log line) and the worker leaves with that line. The master
  counts a worker as ready (for ``--expect-workers`` and for spawning) only once its hello was
  accepted: Locust counts it at ``client_ready``, which comes first, and a master that started
  in between ran its first step on a worker about to be refused (and ended the run incomplete
  when it left).
- A worker whose master stops answering (no heartbeat for ``CAPKIT_MASTER_TIMEOUT_S``, default
  10 s) leaves by itself instead of waiting for Locust's 60 s.
- A worker leaving for either reason writes the one-line reason to ``CAPKIT_WORKER_STATUS``
  (set by ``capkit worker``) and exits with :data:`EXIT_LEFT`.
- A master whose every worker is gone before the plan's end ends the run as incomplete
  (Locust's master would otherwise stop the test and wait for ever).

The master's live worker count is written with every tick as the ``workers`` generator meter;
the analysis flags a step during which it fell (``workers_lost``).
"""

from __future__ import annotations

import hashlib
import inspect
import logging
import os
import sys
import time
from pathlib import Path

import gevent
from locust.runners import MasterRunner, WorkerNodes, WorkerRunner

import capkit

EXIT_LEFT = 3
MASTER_TIMEOUT_ENV = "CAPKIT_MASTER_TIMEOUT_S"
STATUS_ENV = "CAPKIT_WORKER_STATUS"
log = logging.getLogger("capkit.fleet")


def fingerprint(environment) -> dict:
    """This process's capkit version and a hash of its locustfiles (by name and content)."""
    files = {Path(__file__).with_name("plugin.py")}
    for cls in environment.user_classes:
        source = inspect.getsourcefile(cls)
        if source:
            files.add(Path(source))
    digest = hashlib.sha256()
    for path in sorted(files, key=lambda p: p.name):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return {"capkit": capkit.__version__, "locustfiles": digest.hexdigest()[:12],
            "names": sorted(p.name for p in files)}


def mismatch(mine: dict, theirs: dict) -> str | None:
    """What differs between a master's and a worker's fingerprint, in words; None if nothing."""
    if theirs.get("capkit") != mine["capkit"]:
        return f"capkit {theirs.get('capkit')} on the worker, {mine['capkit']} on the master"
    if theirs.get("locustfiles") != mine["locustfiles"]:
        return (f"locustfiles {', '.join(theirs.get('names') or [])} differ from the master's "
                f"(hash {theirs.get('locustfiles')} vs {mine['locustfiles']})")
    return None


class GreetedWorkers(WorkerNodes):
    """Locust's table of workers, whose ``ready`` ones are only those whose hello was accepted."""

    greeted: set

    @property
    def ready(self):
        return [node for node in super().ready if node.id in self.greeted]


def install(environment) -> None:
    """Register the handshake and the watchdogs for this process's role."""
    runner = environment.runner
    if isinstance(runner, MasterRunner):
        mine = fingerprint(environment)
        runner.clients.__class__ = GreetedWorkers  # the same table; `ready` asks for the handshake too
        runner.clients.greeted = set()

        def on_hello(environment, msg, **_kw):
            why = mismatch(mine, msg.data or {})
            if not why:
                runner.clients.greeted.add(msg.node_id)
            else:
                log.error("capkit: worker %s refused: %s", msg.node_id, why)
                runner.send_message("capkit_refuse", {"reason": why}, client_id=msg.node_id)
                if runner.state in ("ready", "init") and msg.node_id in runner.clients:
                    del runner.clients[msg.node_id]  # before the start: never counted as expected

        runner.register_message("capkit_hello", on_hello)
    elif isinstance(runner, WorkerRunner):
        runner.register_message("capkit_refuse", lambda environment, msg, **_kw: gevent.spawn(
            leave, environment, f"refused by the master: {msg.data['reason']}; run the master's capkit "
                                "version and locustfiles on this worker"))
        runner.send_message("capkit_hello", fingerprint(environment))
        gevent.spawn(_watch_master, environment, float(os.environ.get(MASTER_TIMEOUT_ENV, "10")))


def leave(environment, reason: str) -> None:
    """Write ``reason`` where ``capkit worker`` reads it, and quit with :data:`EXIT_LEFT`."""
    status = os.environ.get(STATUS_ENV)
    if status:
        Path(status).write_text(reason + "\n")
    print(f"capkit worker: {reason}", file=sys.stderr, flush=True)
    environment.process_exit_code = EXIT_LEFT
    environment.runner.quit()


def _watch_master(environment, timeout_s: float) -> None:
    runner = environment.runner
    while True:
        gevent.sleep(1.0)
        last = runner.last_heartbeat_timestamp
        if last is not None and time.time() - last > timeout_s:
            leave(environment, f"the master at {runner.master_host}:{runner.master_port} stopped answering "
                               f"(no heartbeat for {timeout_s:g} s)")
            return


def unfinished(environment, state: dict) -> bool:
    """A step has begun and the stage plan has time left."""
    shape = environment.shape_class
    bounds = getattr(shape, "bounds", None)
    return bool(state["step"] >= 0 and bounds and shape.get_run_time() < bounds[-1])


def master_tick(environment, state: dict) -> dict | None:
    """Once a second on the master: an end record when every worker is gone before the plan's
    end (None otherwise). Forgets the levels of workers that left."""
    runner = environment.runner
    live = {c.id for c in runner.clients.all if c.state != "missing"}
    state["worker_levels"] = {k: v for k, v in state["worker_levels"].items() if k in live}
    seen = state["workers_seen"] = max(state.get("workers_seen", 0), runner.worker_count)
    if runner.worker_count == 0 and seen > 0 and unfinished(environment, state):
        return early_end(f"all {seen} worker(s) lost before the plan's end")
    return None


def early_end(reason: str) -> dict:
    """The ``end`` record of a load that stopped before its plan's end (the run is incomplete)."""
    return {"type": "end", "ts": time.time(), "reason": reason, "complete": False}
