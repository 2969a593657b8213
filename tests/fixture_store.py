"""A pytest plugin (``-p tests.fixture_store`` in pyproject's addopts): builds the fixture store once per
session and hands it to the notebooks through ``CAPKIT_REPORT_STORE_URL``, so `pytest notebooks/`
alone runs them on it while their defaults, opened in JupyterLab, analyse the reader's own runs."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIXTURE_STORE = ROOT / "tests" / "fixtures" / "fixture.sqlite"
FIXTURE_RUN = "fixture-run"
FIXTURE_RUN_B = "fixture-run-b"  # stored after FIXTURE_RUN: the latest run (known different CPU cost)


def build_fixture_store(path: Path = FIXTURE_STORE) -> None:
    """Two seeded synthetic runs with known truth; the latest (B) also has LLM records (token timing
    under an SLO), the first has none (the LLM-serving page's "not measured" case)."""
    from capkit.records.llm import Slo
    from capkit.store import open_store
    from capkit.synthetic import fixture_truth, write_synthetic_run
    from capkit.synthetic.llm import LlmTruth

    path.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    store = open_store(f"sqlite:///{path}")
    write_synthetic_run(store, FIXTURE_RUN, seed=7, truth=fixture_truth("a"), git_sha="a" * 40)
    write_synthetic_run(store, FIXTURE_RUN_B, seed=8, truth=fixture_truth("b"), start=1.7e9 + 3600,
                        git_sha="b" * 40, llm=LlmTruth(slo=Slo.parse("ttft=300ms,itl=50ms,e2e=2s")))
    store.engine.dispose()


def pytest_sessionstart(session):
    # under pytest-xdist the controller builds it before its workers start (xdist starts them in a
    # trylast sessionstart); a worker only reads it
    if not hasattr(session.config, "workerinput"):
        build_fixture_store()
    os.environ["CAPKIT_REPORT_STORE_URL"] = f"sqlite:///{FIXTURE_STORE}"
