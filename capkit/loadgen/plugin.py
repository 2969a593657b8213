"""capkit's Locust plugin: the stepped shape and the per-second recorder.

This file is a locustfile: it is given to Locust next to the scenario file
(``locust -f scenarios.py,plugin.py``) and is only ever imported inside a Locust process.
Its input comes from the environment the orchestrator sets: ``CAPKIT_STAGE_PLAN`` (a
StagePlan as JSON) and ``CAPKIT_RAW_DIR`` (where ``load.jsonl`` is appended).

Records in ``load.jsonl`` (one JSON object per line):
``{"type": "step", "step", "users", "rate", "planned_s", "started_at"}`` when a stage begins,
``{"type": "tick", "ts", "step", "users", "meters"}`` every second (``meters``: generator-side
levels and counts such as ``ws_connections`` and arrival-rate runs ``dropped``, summed over workers),
``{"type": "req", "ts", "method", "name", "count", ..., "hdr"}`` per second and endpoint,
``{"type": "end", "ts", "reason"}`` when the load stops;
``{"type": "llm", …}`` (per-token timing of streamed answers) and ``{"type": "cor", …}`` (latency
from the intended start in arrival-rate steps) per second, from :mod:`capkit.loadgen.timing`.

Mixed stages (``mix`` set, ``--design mix``) hold an exact number of users per class: the
class weights become Locust ``fixed_count``s (largest remainder of ``users × weight``, matched on
each user class's ``capkit_class``) and the step starts from zero users for one tick, because
Locust's dispatcher only adds or removes users incrementally (last in, first out) and would carry
the previous step's classes over. Each tick records the users per class (``users_<class>``).

Arrival-rate stages (``rate`` set) pace every user class through :mod:`capkit.loadgen.arrival`:
each task run waits for the pacer. With ``CAPKIT_RAW_REQUESTS=1`` every request is also written
to ``requests.raw.<pid>.jsonl`` (for checking the per-second histograms; slow, tests only).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import gevent
from locust import LoadTestShape, events
from locust.runners import MasterRunner, WorkerRunner

from capkit.loadgen import fleet, timing
from capkit.loadgen.arrival import PACER, paced
from capkit.loadgen.meters import METERS, combine_meters
from capkit.records.jsonl import JsonlWriter
from capkit.records.seconds import SecondAggregator

_state = {"agg": SecondAggregator(), "writer": None, "step": -1, "outbox": [], "flusher": None,
          "worker_levels": {}, "worker_counts": []}
_raw = {"file": None}  # the opt-in per-request log of this process


def _plan() -> dict:
    """The stage plan from ``CAPKIT_STAGE_PLAN``; empty on a worker started without one."""
    raw = os.environ.get("CAPKIT_STAGE_PLAN")
    return json.loads(raw) if raw else {"stages": []}


def _write(record: dict) -> None:
    writer = _state["writer"]
    if writer is not None:
        writer.write(record)


class CapkitStepShape(LoadTestShape):
    """Stepped users from the stage plan; an idle stage holds 0 users.

    With ``CAPKIT_STAGES_FILE`` set (a search), the orchestrator appends the next stages to that
    file as it decides them, one JSON stage per line, or ``{"stop": reason}``: the shape holds
    the current stage until the next one is there, and stops after ``stop``."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        plan = _plan()
        self.stages = list(plan["stages"])
        self.spawn_rate = float(plan.get("spawn_rate", 50.0))
        self.more = os.environ.get("CAPKIT_STAGES_FILE")
        self.stop_after_last = not self.more
        self._read = 0
        self.index = -1
        self.started = 0.0

    @property
    def bounds(self) -> list[float]:
        """Planned end of each known stage (run time, s); a search that may add stages ends at ∞."""
        ends, end = [], 0.0
        for stage in self.stages:
            end += float(stage["seconds"])
            ends.append(end)
        return ends + ([float("inf")] if not self.stop_after_last else [])

    def _poll(self) -> None:
        """Take the stages appended to the stages file since the last tick (whole lines only)."""
        try:
            size = os.path.getsize(self.more)
        except OSError:
            return
        if size <= self._read:
            return
        with open(self.more, "rb") as fh:
            fh.seek(self._read)
            data = fh.read()
        whole = data[: data.rfind(b"\n") + 1]
        self._read += len(whole)
        for line in whole.decode().splitlines():
            record = json.loads(line)
            if "stop" in record:
                self.stop_after_last = True
            else:
                self.stages.append(record)

    def tick(self):
        run_time = self.get_run_time()
        if self.more:
            self._poll()
        due = self.index < 0 or run_time - self.started >= float(self.stages[self.index]["seconds"])
        if due:
            if self.index + 1 >= len(self.stages):
                if self.stop_after_last:
                    return None
            else:
                # on time: the next stage starts at the planned bound (no drift over a fixed plan)
                bound = self.started + float(self.stages[self.index]["seconds"]) if self.index >= 0 else 0.0
                self.started = bound if run_time - bound < 1.5 else run_time
                self.index += 1
                stage = self.stages[self.index]
                _state["step"] = self.index
                self._set_rate(stage, f"{_plan().get('seed', 0)}:{self.index}")
                counts = self._set_mix(stage)
                _write({"type": "step", "step": self.index, "users": int(stage["users"]),
                        "rate": stage.get("rate"), "planned_s": float(stage["seconds"]),
                        "started_at": time.time(), **({"mix": counts} if counts is not None else {})})
                if counts is not None and self.runner.user_count > 0:
                    return 0, self.spawn_rate  # empty first: the new step's classes from zero
        stage = self.stages[self.index]
        return int(stage["users"]), self.spawn_rate

    def _set_mix(self, stage: dict) -> dict[str, int] | None:
        """Fixed users per class for a mixed stage (None for a plain one: the classes' weights)."""
        mix = stage.get("mix")
        classes = self.runner.user_classes if self.runner is not None else []
        if not mix:
            for cls in classes:
                cls.fixed_count = 0
            return None
        counts = class_counts(int(stage["users"]), mix)
        for cls in classes:
            cls.fixed_count = counts.get(getattr(cls, "capkit_class", cls.__name__), 0)
        return counts

    def _set_rate(self, stage: dict, seed: str = "0") -> None:
        runner = self.runner
        rate, poisson, trace = stage.get("rate"), bool(stage.get("poisson")), bool(stage.get("trace"))
        burstiness = float(_plan().get("burstiness", 1.0))
        if isinstance(runner, MasterRunner):
            share = rate / max(runner.worker_count, 1) if rate else None
            runner.send_message("capkit_rate", {"rate": share, "poisson": poisson, "seed": seed,
                                                "burstiness": burstiness, "trace": trace,
                                                "workers": max(runner.worker_count, 1)})
        else:
            PACER.set_rate(rate, poisson=poisson, seed=seed, burstiness=burstiness,
                           schedule=trace_schedule() if trace else None)


def class_counts(users: int, mix: dict[str, float]) -> dict[str, int]:
    """``users`` split by the weights ``mix`` (largest remainder: the counts sum to ``users``)."""
    total = sum(w for w in mix.values() if w > 0)
    if total <= 0:
        return {name: 0 for name in mix}
    exact = {name: users * max(w, 0.0) / total for name, w in mix.items()}
    counts = {name: int(v) for name, v in exact.items()}
    left = users - sum(counts.values())
    for name in sorted(exact, key=lambda n: (counts[n] - exact[n], n))[:left]:
        counts[name] += 1
    return counts


def trace_schedule(worker: int = 0, workers: int = 1) -> list[tuple[float, int]]:
    """(offset s, line number) of this process's share of the ``CAPKIT_TRACE`` requests (every
    ``workers``-th, from ``worker``), times scaled by ``CAPKIT_TRACE_SCALE``."""
    from capkit.records.traces import load_trace

    trace = load_trace(os.environ["CAPKIT_TRACE"], scale=float(os.environ.get("CAPKIT_TRACE_SCALE", "1")))
    return [(r.at_s, i) for i, r in enumerate(trace) if i % workers == worker]


def _on_rate_message(environment, msg, **_kw):
    # each worker its own Poisson stream: the same seed on every worker would synchronise them
    index = getattr(environment.runner, "worker_index", 0)
    seed = f"{msg.data.get('seed', 0)}:{index}"
    schedule = trace_schedule(index, int(msg.data.get("workers", 1))) if msg.data.get("trace") else None
    PACER.set_rate(msg.data.get("rate"), poisson=bool(msg.data.get("poisson")), seed=seed,
                   burstiness=float(msg.data.get("burstiness", 1.0)), schedule=schedule)


def _tick(ts: int, users: int) -> None:
    if _state["step"] < 0:
        return
    runner = getattr(_state.get("environment"), "runner", None)
    if runner is not None:  # users per class (the step's measured mix)
        by_name = runner.environment.user_classes_by_name
        counts = runner.reported_user_classes_count if isinstance(runner, MasterRunner) else runner.user_classes_count
        for name, count in counts.items():
            cls = by_name.get(name)
            METERS.set(f"users_{getattr(cls, 'capkit_class', name)}", float(count))
    parts = [METERS.take(), *({"levels": v} for v in _state["worker_levels"].values()), *_state["worker_counts"]]
    _state["worker_counts"] = []
    _write({"type": "tick", "ts": ts, "step": _state["step"], "users": users, "meters": combine_meters(parts)})


def _flush_loop(environment) -> None:
    runner = environment.runner
    while True:
        gevent.sleep(1.0 - (time.time() % 1.0) + 0.01)
        now = time.time()
        rows = _state["agg"].flush(now)
        extra = timing.flush(now)
        if isinstance(runner, WorkerRunner):
            _state["outbox"].extend(rows)
            _state.setdefault("timing_outbox", []).extend(extra)
            continue
        for row in rows:
            _write({"type": "req", **row})
        for record in extra:
            _write(record)
        _tick(int(now) - 1, runner.user_count)


@events.init.add_listener
def _on_init(environment, **_kwargs):
    runner = environment.runner
    _state["environment"] = environment
    raw_dir = Path(os.environ.get("CAPKIT_RAW_DIR", "."))
    raw_dir.mkdir(parents=True, exist_ok=True)
    if not isinstance(runner, WorkerRunner):
        if not os.environ.get("CAPKIT_STAGE_PLAN"):
            raise RuntimeError("CAPKIT_STAGE_PLAN is not set: run Locust through `capkit run`")
        _state["writer"] = JsonlWriter(open(raw_dir / "load.jsonl", "a", encoding="utf-8"))
    if not isinstance(runner, MasterRunner):
        _state["flusher"] = gevent.spawn(_flush_loop, environment)
        if os.environ.get("CAPKIT_RAW_REQUESTS") == "1":
            _raw["file"] = open(raw_dir / f"requests.raw.{os.getpid()}.jsonl", "a", encoding="utf-8")
        for cls in environment.user_classes:
            cls.wait_time = paced(getattr(cls, "wait_time", None))
        PACER.start()
        if isinstance(runner, WorkerRunner):
            runner.register_message("capkit_rate", _on_rate_message)
    else:
        _state["flusher"] = gevent.spawn(_master_ticks, environment)
    fleet.install(environment)  # version handshake and watchdogs of master and workers


def _master_ticks(environment) -> None:
    while True:
        gevent.sleep(1.0 - (time.time() % 1.0) + 0.01)
        end = fleet.master_tick(environment, _state)
        METERS.set("workers", environment.runner.worker_count)
        _tick(int(time.time()) - 1, environment.runner.user_count)
        if end is not None and not _state.get("ended"):  # every worker gone: end the run, incomplete
            _write(end)
            _state["ended"] = True
            environment.process_exit_code = fleet.EXIT_LEFT
            environment.runner.quit()


@events.request.add_listener
def _on_request(request_type, name, response_time, response_length, exception=None, response=None, **_kw):
    # the hot path: one bucket update per request (and a line only when the raw log is on)
    status = getattr(response, "status_code", None) if response is not None else None
    now = time.time()
    _state["agg"].record(now, request_type, name, response_time or 0.0, status,
                         response_length or 0, exception is not None)
    if _raw["file"] is not None:
        _raw["file"].write(json.dumps([now, request_type, name, response_time or 0.0, status,
                                       exception is not None]) + "\n")


@events.report_to_master.add_listener
def _on_report_to_master(client_id, data, **_kw):
    data["capkit_rows"] = _state["outbox"]
    data["capkit_meters"] = METERS.take()
    _state["outbox"] = []
    data["capkit_timing"], _state["timing_outbox"] = _state.get("timing_outbox", []), []


@events.worker_report.add_listener
def _on_worker_report(client_id, data, **_kw):
    for row in data.get("capkit_rows", ()):
        _write({"type": "req", **row})
    for record in data.get("capkit_timing", ()):
        _write(record)
    meters = data.get("capkit_meters")
    if meters:
        _state["worker_levels"][client_id] = meters.get("levels") or {}
        _state["worker_counts"].append({"counts": meters.get("counts") or {}})


@events.test_stop.add_listener
def _on_test_stop(environment, **_kw):
    PACER.set_rate(None)
    rows = _state["agg"].flush(None)
    extra = timing.flush(None)
    if _raw["file"] is not None:
        _raw["file"].flush()
    if isinstance(environment.runner, WorkerRunner):
        _state["outbox"].extend(rows)
        _state.setdefault("timing_outbox", []).extend(extra)
        return
    for row in rows:
        _write({"type": "req", **row})
    for record in extra:
        _write(record)


@events.quitting.add_listener
def _on_quitting(environment, **_kw):
    if _raw["file"] is not None:
        _raw["file"].close()
        _raw["file"] = None
    master = isinstance(environment.runner, MasterRunner)
    if master and not _state.get("ended") and fleet.unfinished(environment, _state):
        _write(fleet.early_end("the load stopped before the plan's end (workers left, or it was stopped)"))
    elif not isinstance(environment.runner, WorkerRunner) and not _state.get("ended"):
        _write({"type": "end", "ts": time.time(), "reason": "load finished"})
