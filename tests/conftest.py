"""Shared fixtures: the notebooks' fixture store, fresh PostgreSQL databases, CLI runner."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixture_store import FIXTURE_RUN, FIXTURE_RUN_B, FIXTURE_STORE, ROOT  # noqa: F401 (re-exported)

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
