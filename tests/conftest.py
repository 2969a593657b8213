"""Shared fixtures: the notebooks' fixture store, fresh PostgreSQL databases, CLI runner."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

# One BLAS/OpenMP thread per process, set before anything imports numpy (nothing before this file
# does; pytest-xdist's workers, the CLI, services and notebook kernels the tests start inherit it).
# With OpenBLAS's default, a thread per core, the parallel pass's processes spun threads against each
# other on this 2-core machine: tests/analysis/test_step_quantiles.py took 45 s of CPU, 17 s with one.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

from tests.fixture_store import FIXTURE_RUN, FIXTURE_RUN_B, FIXTURE_STORE, ROOT  # noqa: E402, F401 (re-exported)

# Tests whose assertions read measured timing (a capacity within 10 %, an arrival rate, CPU seconds
# per user): `make test` runs them alone after the rest, which run in parallel (pytest-xdist), since
# a neighbouring test's CPU would move what they measure. Marked here, in one place: a file (every
# test in it) or a file and the tests of it that measure (the file's others, bad input refused before
# any load, synthetic data, exact counts, run with the rest).
LOAD_MEASURING = {
    "tests/runs/test_search.py": ("test_search_agrees_with_a_confirming_run_within_10_percent",
                                  "test_a_cpu_heavy_configuration_binds_on_cpu"),
    "tests/runs/test_mix.py": None,
    "tests/cli/test_plan_e2e.py": None,
    "tests/runs/test_openai_target.py": ("test_openai_chat_times_every_token_and_goodput_falls_with_a_tighter_slo",
                                         "test_repeated_prompts_are_classified_as_cached"),
    "tests/faults/test_search_faults.py": None,
    "tests/faults/test_soak.py": ("test_reference_service_leak_is_caught",),
    "tests/loadgen/test_arrival.py": None,
    # a trace's send times against its own (a few ms); the conversation run reads no timing
    "tests/runs/test_openai_workloads.py": ("test_a_trace_is_replayed_at_its_recorded_times_with_its_lengths",),
    "tests/loadgen/test_coordinated_omission.py": None,
    "tests/metrics/test_process.py": ("test_cpu_of_a_child_is_counted",),
    # a busy loop's throttled share under a quota: a loop starved of CPU by neighbours is throttled less
    "tests/metrics/test_cgroups.py": ("test_a_busy_loop_over_its_quota_is_throttled",),
    # two workers' arrival rate within 19-21.5 req/s of 20: read 22 beside a load run
    "tests/runs/test_distributed.py": ("test_master_and_two_workers_share_an_arrival_rate",),
}


def _measures(nodeid: str) -> bool:
    path, _, name = nodeid.partition("::")
    if path not in LOAD_MEASURING:
        return False
    tests = LOAD_MEASURING[path]
    return tests is None or name.split("[")[0] in tests


# the parallel pass's longest files (a few minutes each on one worker) start first, so that none of
# them is the last thing a worker still runs when the others are done; a file's order is kept
LONGEST_FIRST = ("tests/test_install.py", "tests/analysis/test_coverage.py")


def pytest_collection_modifyitems(config, items):
    first = {path: n for n, path in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda i: first.get(i.nodeid.partition("::")[0], len(first)))
    for item in items:
        if _measures(item.nodeid):
            item.add_marker(pytest.mark.load)
        tests = LOAD_MEASURING.get(item.nodeid.partition("::")[0])
        missing = [t for t in tests or () if not hasattr(item.module, t)]
        if missing:  # a renamed test must not slip into the parallel pass
            raise pytest.UsageError(f"tests/conftest.py LOAD_MEASURING names tests not in {item.nodeid}'s file: "
                                    f"{missing}")


PG_BASE = os.environ.get("CAPKIT_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() == "true"


def _pg_available() -> bool:
    from sqlalchemy import create_engine, text

    try:
        engine = create_engine(PG_BASE)
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
        return True
    except Exception:  # noqa: BLE001
        return False


@pytest.fixture
def pg_url():
    """A fresh PostgreSQL database for one test, dropped afterwards (never skipped under CI=true)."""
    from sqlalchemy.engine import make_url

    from capkit.store.admin import create_database, drop_database

    if not _pg_available():
        if IN_CI:
            pytest.fail(f"PostgreSQL at {PG_BASE} is not reachable; CI must run this test")
        pytest.skip("PostgreSQL not reachable")
    url = make_url(PG_BASE).set(database=f"capkit_t_{secrets.token_hex(4)}").render_as_string(hide_password=False)
    create_database(url)
    try:
        yield url
    finally:
        drop_database(url)


def run_cli(*args: str, env: dict | None = None, cwd: Path | None = None, timeout: float = 300):
    """Run ``python -m capkit ARGS`` in a subprocess; return the CompletedProcess."""
    return subprocess.run([sys.executable, "-m", "capkit", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, cwd=cwd or ROOT, timeout=timeout)


def assert_one_line_error(proc, *needles) -> str:
    """A CLI failure as users must see it: non-zero exit, one `capkit: error:` line, no traceback."""
    assert proc.returncode != 0
    err = proc.stderr.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert err.startswith("capkit: error: ")
    for needle in needles:
        assert needle in err, err
    return err
