"""ops/run-load-tests.sh: the seed's entry point runs the four scenarios through the CLI."""

from __future__ import annotations

import os
import subprocess

from capkit import analysis as ca
from capkit.store import open_store
from tests.conftest import ROOT

SCRIPT = ROOT / "ops" / "run-load-tests.sh"


def _run(*args, env=None, timeout=180):
    return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT,
                          env={**os.environ, **(env or {})})


def test_help_documents_the_options():
    proc = _run("--help")
    assert proc.returncode == 0
    for option in ("--profile", "--stages", "--mix", "--think", "--target", "--pid", "--prometheus", "--report"):
        assert option in proc.stdout
    assert _run("--bogus").returncode == 2


def test_runs_chat_analytics_auth_and_websocket(tmp_path):
    env = {"CAPKIT_STORE_URL": f"sqlite:///{tmp_path / 'capkit.sqlite'}", "CAPKIT_RUNS_DIR": str(tmp_path / "runs"),
           "CAPKIT_DATABASE_URL": f"sqlite:///{tmp_path / 'service.sqlite'}", "CAPKIT_SEED_CONVERSATIONS": "200",
           "CAPKIT_MODEL_TOKENS": "8"}
    proc = _run("--stages", "0x3,4x5", "--think", "0.1,0.3", "--mix", "chat=1,analytics=1,auth=1,ws=1", env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    store = open_store(env["CAPKIT_STORE_URL"], create=False)
    data = ca.read_run(store)
    store.engine.dispose()
    names = set(data.requests["name"])
    assert {"chat: ttft", "GET /api/analytics/summary", "GET /api/auth/validate", "ws: message"} <= names
    assert data.meta.status == "complete"
