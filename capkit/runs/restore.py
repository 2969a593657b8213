"""`capkit load RUN_DIR`: restore a run into the store from its raw files (e.g. after the store was down).

The raw files (``run.json``, ``load.jsonl``, ``resources.jsonl``) are the source of truth; the
store is rebuilt from them through the same ingest path a live run uses.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from capkit.errors import ConfigError, RunNotFoundError
from capkit.records.jsonl import read_jsonl
from capkit.runs.ingest import Ingestor
from capkit.schemas import RunSpec, RunStatus
from capkit.store import Store


@dataclass
class Restored:
    run_id: str
    status: str
    steps: int
    request_rows: int
    samples: int


def read_run_dir(run_dir: Path) -> RunSpec:
    """The run spec of a raw run folder; one-line :class:`ConfigError` if it is not one."""
    spec_path = run_dir / "run.json"
    if not run_dir.is_dir():
        raise ConfigError(f"{run_dir} is not a folder; give a run folder such as runs/<run_id>")
    if not spec_path.exists() or not (run_dir / "load.jsonl").exists():
        raise ConfigError(f"{run_dir} holds no capkit run (run.json and load.jsonl are missing)")
    try:
        return RunSpec.model_validate_json(spec_path.read_text())
    except (ValidationError, ValueError):
        raise ConfigError(f"{spec_path} is not a capkit run spec (damaged or from another tool)") from None


def restore_run(run_dir: Path, store: Store, *, replace: bool = False) -> Restored:
    """Load the raw run in ``run_dir`` into ``store``; refuse to overwrite unless ``replace``.

    Nothing is left half-written: a failure removes what this call added.
    """
    spec = read_run_dir(run_dir)
    try:
        store.get_run(spec.run_id)
        exists = True
    except RunNotFoundError:
        exists = False
    if exists and not replace:
        raise ConfigError(f"run {spec.run_id} is already in the store; add --replace to load it again")
    records = read_jsonl(run_dir / "load.jsonl")
    samples = [r for r in read_jsonl(run_dir / "resources.jsonl") if {"ts", "source", "metric", "value"} <= r.keys()]
    if not any(r.get("type") == "step" for r in records):
        raise ConfigError(f"{run_dir / 'load.jsonl'} holds no step: the load never started")
    if exists:
        store.delete_run(spec.run_id)
    machine_path = run_dir / "machine.json"
    machine = json.loads(machine_path.read_text()) if machine_path.exists() else {}
    first = min(r["started_at"] for r in records if r.get("type") == "step")
    store.create_run(run_id=spec.run_id, target=spec.target, scenario=spec.scenario,
                     spec=json.loads(spec.model_dump_json()), machine=machine, created_at=first)
    try:
        ingest = Ingestor(store, spec.run_id)
        rows = ingest.feed(records)
        for i in range(0, len(samples), 5000):
            store.add_samples(spec.run_id, samples[i:i + 5000])
        last = max([r.get("ts", 0) for r in records if r.get("type") in ("tick", "req", "end")] + [first])
        ended = ingest.ended["ts"] if ingest.ended else last + 1
        ingest.finish(ended, last_complete=ingest.ended is not None)
        status = RunStatus.COMPLETE if ingest.ended else RunStatus.INCOMPLETE
        store.finish_run(spec.run_id, status, None if ingest.ended else "load ended without its end record",
                         ended_at=ended)
        store.add_event(spec.run_id, "loaded", f"from raw files in {run_dir.name}")
    except BaseException:
        store.delete_run(spec.run_id)
        raise
    return Restored(spec.run_id, status, len(ingest.steps), len(rows), len(samples))
