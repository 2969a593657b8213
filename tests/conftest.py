"""Shared fixtures: the notebooks' fixture store, fresh PostgreSQL databases, CLI runner."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixture_store import FIXTURE_RUN, FIXTURE_RUN_B, FIXTURE_STORE, ROOT  # noqa: F401 (re-exported)

# Tests whose assertions read measured timing (a capacity within 10 %, an arrival rate, CPU seconds
# per user): `make test` runs them alone after the rest, which run in parallel (pytest-xdist), since
# a neighbouring test's CPU would move what they measure. Marked here, by file, in one place.
LOAD_MEASURING = {
    "tests/runs/test_search.py", "tests/runs/test_mix.py", "tests/cli/test_whatif.py", "tests/cli/test_plan_e2e.py",
    "tests/runs/test_openai_target.py", "tests/faults/test_search_faults.py", "tests/faults/test_soak.py",
    "tests/loadgen/test_arrival.py", "tests/loadgen/test_coordinated_omission.py", "tests/metrics/test_process.py",
    "tests/runs/test_distributed.py",  # two workers' arrival rate within 19-21.5 req/s of 20: read 22 beside a load run
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.nodeid.split("::")[0] in LOAD_MEASURING:
            item.add_marker(pytest.mark.load)


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
