"""Shared fixtures: the notebooks' fixture store, fresh PostgreSQL databases, CLI runner."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURE_STORE = ROOT / "tests" / "fixtures" / "fixture.sqlite"
FIXTURE_RUN = "fixture-run"
FIXTURE_RUN_B = "fixture-run-b"  # the comparison notebook's second run (known different CPU cost)
PG_BASE = os.environ.get("CAPKIT_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() == "true"


def build_fixture_store(path: Path = FIXTURE_STORE) -> None:
    """The seeded synthetic run the notebooks' default parameters point at."""
    from capkit.store import open_store
    from capkit.synthetic import fixture_truth, write_synthetic_run

    path.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    store = open_store(f"sqlite:///{path}")
    write_synthetic_run(store, FIXTURE_RUN, seed=7, truth=fixture_truth("a"), git_sha="a" * 40)
    write_synthetic_run(store, FIXTURE_RUN_B, seed=8, truth=fixture_truth("b"), start=1.7e9 + 3600,
                        git_sha="b" * 40)
    store.engine.dispose()


_built = []


def ensure_fixture_store() -> None:
    """Build the fixture store once per session (``tests/`` and ``notebooks/`` both ask for it)."""
    if not _built:
        build_fixture_store()
        _built.append(True)


def pytest_sessionstart(session):
    ensure_fixture_store()


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

    from capkit.dbadmin import create_database, drop_database

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
