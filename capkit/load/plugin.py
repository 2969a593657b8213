"""capkit's Locust plugin: the stepped shape and the per-second recorder.

This file is a locustfile: it is given to Locust next to the scenario file
(``locust -f scenarios.py,plugin.py``) and is only ever imported inside a Locust process.
Its input comes from the environment the orchestrator sets: ``CAPKIT_STAGE_PLAN`` (a
StagePlan as JSON) and ``CAPKIT_RAW_DIR`` (where ``load.jsonl`` is appended).

Records in ``load.jsonl`` (one JSON object per line):
``{"type": "step", "step", "users", "rate", "planned_s", "started_at"}`` when a stage begins,
``{"type": "tick", "ts", "step", "users"}`` every second,
``{"type": "req", "ts", "method", "name", "count", ..., "hdr"}`` per second and endpoint,
``{"type": "end", "ts", "reason"}`` when the load stops.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import gevent
from locust import LoadTestShape, events
from locust.runners import MasterRunner, WorkerRunner

from capkit.load.recorder import JsonlWriter, SecondAggregator

_state = {"agg": SecondAggregator(), "writer": None, "step": -1, "outbox": [], "flusher": None}


def _plan() -> dict:
    raw = os.environ.get("CAPKIT_STAGE_PLAN")
    if not raw:
        raise RuntimeError("CAPKIT_STAGE_PLAN is not set: run Locust through `capkit run`")
    return json.loads(raw)


def _write(record: dict) -> None:
    writer = _state["writer"]
    if writer is not None:
        writer.write(record)


class CapkitStepShape(LoadTestShape):
    """Stepped users from the stage plan; an idle stage holds 0 users."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        plan = _plan()
        self.stages = plan["stages"]
        self.spawn_rate = float(plan.get("spawn_rate", 50.0))
        self.bounds = []
        end = 0.0
        for stage in self.stages:
            end += float(stage["seconds"])
            self.bounds.append(end)

    def tick(self):
        run_time = self.get_run_time()
        for index, bound in enumerate(self.bounds):
            if run_time < bound:
                stage = self.stages[index]
                if index != _state["step"]:
                    _state["step"] = index
                    _write({"type": "step", "step": index, "users": int(stage["users"]),
                            "rate": stage.get("rate"), "planned_s": float(stage["seconds"]),
                            "started_at": time.time()})
                return int(stage["users"]), self.spawn_rate
        return None


def _flush_loop(environment) -> None:
    runner = environment.runner
    while True:
        gevent.sleep(1.0 - (time.time() % 1.0) + 0.01)
        now = time.time()
        rows = _state["agg"].flush(now)
        if isinstance(runner, WorkerRunner):
            _state["outbox"].extend(rows)
            continue
        for row in rows:
            _write({"type": "req", **row})
        if _state["step"] >= 0:
            _write({"type": "tick", "ts": int(now) - 1, "step": _state["step"], "users": runner.user_count})


@events.init.add_listener
def _on_init(environment, **_kwargs):
    if not isinstance(environment.runner, WorkerRunner):
        raw_dir = Path(os.environ.get("CAPKIT_RAW_DIR", "."))
        raw_dir.mkdir(parents=True, exist_ok=True)
        _state["writer"] = JsonlWriter(open(raw_dir / "load.jsonl", "a", encoding="utf-8"))
    if not isinstance(environment.runner, MasterRunner):
        _state["flusher"] = gevent.spawn(_flush_loop, environment)
    else:
        _state["flusher"] = gevent.spawn(_master_ticks, environment)


def _master_ticks(environment) -> None:
    while True:
        gevent.sleep(1.0 - (time.time() % 1.0) + 0.01)
        if _state["step"] >= 0:
            _write({"type": "tick", "ts": int(time.time()) - 1, "step": _state["step"],
                    "users": environment.runner.user_count})


@events.request.add_listener
def _on_request(request_type, name, response_time, response_length, exception=None, response=None, **_kw):
    status = getattr(response, "status_code", None) if response is not None else None
    _state["agg"].record(time.time(), request_type, name, response_time or 0.0, status,
                         response_length or 0, exception is not None)


@events.report_to_master.add_listener
def _on_report_to_master(client_id, data, **_kw):
    data["capkit_rows"] = _state["outbox"]
    _state["outbox"] = []


@events.worker_report.add_listener
def _on_worker_report(client_id, data, **_kw):
    for row in data.get("capkit_rows", ()):
        _write({"type": "req", **row})


@events.test_stop.add_listener
def _on_test_stop(environment, **_kw):
    rows = _state["agg"].flush(None)
    if isinstance(environment.runner, WorkerRunner):
        _state["outbox"].extend(rows)
        return
    for row in rows:
        _write({"type": "req", **row})


@events.quitting.add_listener
def _on_quitting(environment, **_kw):
    if not isinstance(environment.runner, WorkerRunner):
        _write({"type": "end", "ts": time.time(), "reason": "load finished"})
