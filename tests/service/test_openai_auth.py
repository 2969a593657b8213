"""How a client authenticates to the real service's ``/v1``: what `capkit serve` says on start-up,
`capkit token` (a bearer token the route accepts), ``CAPKIT_OPENAI_AUTH=none`` and its refusal
in production; each against a real `capkit serve` process, stopped by PID."""

from __future__ import annotations

import httpx
import pytest

from capkit.runs.processes import free_port, start_service
from capkit.service.server import settings_to_env
from tests.conftest import assert_one_line_error, run_cli

from .conftest import fast_settings

ASK = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}


@pytest.fixture
def serve(tmp_path):
    """``serve(**settings)`` → (ServiceProcess, its log text once healthy); stopped by PID afterwards."""
    started = []

    def _start(**overrides):
        settings = fast_settings(seed_on_start=True, database_url=f"sqlite:///{tmp_path / 'svc.sqlite'}",
                                 **overrides)
        log = tmp_path / f"serve{len(started)}.log"
        svc = start_service(host="127.0.0.1", port=free_port(), env=settings_to_env(settings), log_path=log)
        started.append(svc)
        return svc, log.read_text()

    yield _start
    for svc in started:
        svc.stop()


def test_bearer_default_says_how_and_capkit_token_gives_a_token_v1_accepts(serve):
    svc, log = serve()
    assert f"capkit serve: reference service at {svc.url}" in log
    assert f"/v1 (OpenAI-compatible) wants a bearer token: `capkit token --target {svc.url}` prints one" in log
    assert httpx.post(f"{svc.url}/v1/chat/completions", json=ASK, timeout=10).status_code == 401

    proc = run_cli("token", "--target", svc.url, timeout=60)
    assert proc.returncode == 0, proc.stderr
    token = proc.stdout.strip()
    assert len(proc.stdout.splitlines()) == 1 and token.count(".") == 2  # one JWT, nothing else
    r = httpx.post(f"{svc.url}/v1/chat/completions", json=ASK, headers={"Authorization": f"Bearer {token}"},
                   timeout=10)
    assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] == 2

    err = assert_one_line_error(run_cli("token", "--target", svc.url, "--password", "wrong", timeout=60),
                                "refused user 'loadtest-0000'", "--password")
    assert "HTTP 401" in err


def test_an_openai_chat_run_without_a_token_says_how_to_get_one(serve, tmp_path):
    svc, _ = serve()
    env = {"CAPKIT_STORE_URL": f"sqlite:///{tmp_path / 'capkit.sqlite'}", "CAPKIT_RUNS_DIR": str(tmp_path / "runs")}
    assert_one_line_error(run_cli("run", "--target", svc.url, "--scenario", "openai-chat", "--stages", "1x5",
                                  env=env, timeout=60),
                          "HTTP 401", "--api-key-env", f"capkit token --target {svc.url}", "CAPKIT_OPENAI_AUTH=none")
    assert not (tmp_path / "runs").exists()  # refused before anything is written


def test_auth_none_is_said_on_start_up_and_serves_without_a_token(serve):
    svc, log = serve(openai_auth="none", rate_limit_chat="1000/minute")
    assert "/v1 (OpenAI-compatible): no token needed (CAPKIT_OPENAI_AUTH=none)" in log
    assert "1000/minute, CAPKIT_RATE_LIMIT_CHAT" in log
    assert httpx.post(f"{svc.url}/v1/chat/completions", json=ASK, timeout=10).status_code == 200


def test_token_from_a_service_that_is_not_there_is_one_line():
    assert_one_line_error(run_cli("token", "--target", f"http://127.0.0.1:{free_port()}", timeout=60),
                          "does not answer", "capkit serve")


def test_auth_none_is_refused_in_production(tmp_path):
    env = {"CAPKIT_ENV": "production", "CAPKIT_JWT_SECRET": "a-real-production-secret-0123456789abcdef",
           "CAPKIT_OPENAI_AUTH": "none", "CAPKIT_DATABASE_URL": f"sqlite:///{tmp_path / 'svc.sqlite'}"}
    err = assert_one_line_error(run_cli("serve", "--port", str(free_port()), env=env, timeout=60),
                                "CAPKIT_OPENAI_AUTH=none", "CAPKIT_ENV=production")
    assert "CAPKIT_SETTINGS" not in err  # a rule across settings names its own variables
    assert not (tmp_path / "svc.sqlite").exists()  # refused before anything is written
