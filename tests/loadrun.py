"""Fixtures for load tests: a real reference service (killed by PID), short runs, raw logs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from capkit.runs.processes import free_port, start_service
from capkit.schemas import RunSpec, StagePlan
from capkit.service.server import settings_to_env
from capkit.store import open_store
from tests.service.conftest import fast_settings

# a plain locustfile, as a team would bring its own
PLAIN = '''
from locust import FastHttpUser, between, task


class Plain(FastHttpUser):
    wait_time = between(0.02, 0.05)

    @task
    def health(self):
        self.client.get("/healthz", name="GET /healthz")
'''


BASE_ENV = {"CAPKIT_THINK": "0.1,0.3", "CAPKIT_ACCOUNTS": "5"}


@pytest.fixture
def reference_service(tmp_path):
    """``reference_service(**settings)`` → a started ServiceProcess on a seeded SQLite file."""
    started = []

    def _start(**overrides):
        overrides.setdefault("database_url", f"sqlite:///{tmp_path / f'service{len(started)}.sqlite'}")
        settings = fast_settings(seed_on_start=True, **overrides)
        svc = start_service(host="127.0.0.1", port=free_port(), env=settings_to_env(settings),
                            log_path=tmp_path / f"service{len(started)}.log")
        started.append(svc)
        return svc

    yield _start
    for svc in started:
        svc.stop()


@pytest.fixture
def store(tmp_path):
    s = open_store(f"sqlite:///{tmp_path / 'capkit.sqlite'}")
    yield s
    s.engine.dispose()


def run_reference_load(store, tmp_path: Path, svc, stages: str, *, env: dict, warmup_s: float = 1.0,
                       processes: int = 1, locustfiles=None, run_id: str = "t-run"):
    """Run a short stage plan against ``svc`` in this process (Locust is a subprocess)."""
    from capkit.loadgen import SCENARIOS
    from capkit.runs.orchestrator import run_load

    spec = RunSpec(run_id=run_id, target=svc.url, plan=StagePlan.parse(stages, warmup_s=warmup_s),
                   processes=processes)
    return run_load(spec, store=store, raw_dir=tmp_path / "runs" / run_id,
                    locustfiles=locustfiles or [SCENARIOS], service_pid=svc.pid,
                    env={**BASE_ENV, **env})


def read_raw_requests(raw_dir: Path) -> list[list]:
    """Every line of every ``requests.raw.*.jsonl`` (one per load process)."""
    out = []
    for path in sorted(raw_dir.glob("requests.raw.*.jsonl")):
        out += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return out


def raw_in_step(raw: list[list], step_row, warmup_s: float) -> list[list]:
    """Raw requests whose second lies wholly in the step's trimmed window (as the analysis counts)."""
    lo = math.ceil(step_row["started_at"] + warmup_s)
    hi = math.floor(step_row["ended_at"])
    return [r for r in raw if lo <= int(r[0]) and int(r[0]) + 1 <= hi]


def nearest_rank(values: list[float], q: float) -> float:
    """The q-th percentile by HDR's definition: the value of rank round(q/100 × n) (at least 1)."""
    ordered = np.sort(np.asarray(values, dtype=float))
    return float(ordered[max(int(q * len(ordered) / 100 + 0.5), 1) - 1])


def assert_close_to_raw(hdr_ms: float, values: list[float], q: float) -> None:
    """HDR keeps 3 significant digits: its value is the raw one rounded up by at most 0.1 %."""
    exact = nearest_rank(values, q)
    assert abs(hdr_ms - exact) <= exact * 0.002 + 0.002, (q, hdr_ms, exact)
