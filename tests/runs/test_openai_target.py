"""`capkit run --scenario openai-chat` against the reference service's real /v1 route: every token
timed, counts equal to the server's, TTFT under full slots, goodput under an SLO; bad input refused."""

from __future__ import annotations

import subprocess
import sys
import time

import httpx
import pytest

from capkit import analysis as ca
from capkit.analysis.fits.llm import llm_steps, slo_of
from capkit.runs.processes import free_port
from capkit.store import open_store
from tests.conftest import assert_one_line_error, run_cli

TOKENS, DELAY_MS = 12, 20.0

NOT_OPENAI = '''
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class H(BaseHTTPRequestHandler):
    def do_GET(self):
        self._answer()
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._answer()
    def _answer(self):
        json_ok = sys.argv[2] == "json"
        body = b'{"ok": true}' if json_ok else b"not here"
        self.send_response(200 if json_ok else 404)
        self.send_header("Content-Type", "application/json" if json_ok else "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass

ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
'''


@pytest.fixture
def llm_service(reference_service):
    return reference_service(openai_auth="none", model_tokens=TOKENS, model_token_delay_ms=DELAY_MS,
                             model_cpu_ms_per_token=0.05, model_max_concurrent=2, rate_limit_chat="100000/minute")


def _run(svc, tmp_path, *args):
    store = tmp_path / "capkit.sqlite"
    proc = run_cli("run", "--target", svc.url, "--scenario", "openai-chat", *args,
                   env={"CAPKIT_STORE_URL": f"sqlite:///{store}", "CAPKIT_RUNS_DIR": str(tmp_path / "runs")},
                   timeout=120)
    assert proc.returncode == 0, proc.stderr[-1500:]
    s = open_store(f"sqlite:///{store}", create=False)
    run = ca.read_run(s, s.latest_run_id())
    s.engine.dispose()
    return run, llm_steps(run.steps, run.llm, warmup_s=run.warmup_s, slo=slo_of(run))


def test_openai_chat_times_every_token_and_goodput_falls_with_a_tighter_slo(llm_service, tmp_path):
    # 2 users fit the 2 model slots; 8 users wait for them (TTFT grows by whole answers)
    run, loose = _run(llm_service, tmp_path, "--stages", "2x5,8x5", "--warmup", "1", "--slo", "ttft=5s,e2e=10s")
    gen = loose[loose["cls"] == "generated"].set_index("users")
    print("\n" + gen[["requests", "ttft_p50_ms", "ttft_p99_ms", "itl_p50_ms", "itl_p99_ms", "tpot_p50_ms",
                      "e2e_p50_ms", "output_tokens_per_s", "goodput", "good_share"]].round(2).to_string())
    assert run.meta.spec.notes["slo"] == {"ttft_ms": 5000.0, "e2e_ms": 10000.0}
    assert (gen["requests"] > 5).all()
    # the server's usage.completion_tokens: every answer has exactly the model's tokens
    assert (gen["output_tokens"] == TOKENS * gen["requests"]).all()
    for users in (2, 8):
        assert gen.loc[users, "itl_p50_ms"] == pytest.approx(DELAY_MS, abs=3)  # the set delay, within jitter
        assert gen.loc[users, "tpot_p50_ms"] == pytest.approx(DELAY_MS, abs=3)
    assert gen.loc[8, "ttft_p50_ms"] > 3 * gen.loc[2, "ttft_p50_ms"] + 100  # waiting for a model slot
    assert (gen["good_share"] == 1).all()

    _, tight = _run(llm_service, tmp_path, "--stages", "2x5,8x5", "--warmup", "1", "--slo", "ttft=100ms,e2e=10s")
    t = tight[tight["cls"] == "generated"].set_index("users")
    print(t[["ttft_p50_ms", "goodput", "good_share"]].round(2).to_string())
    assert t.loc[8, "good_share"] < 0.5 and t.loc[8, "goodput"] < 0.5 * gen.loc[8, "goodput"]


def test_repeated_prompts_are_classified_as_cached(llm_service, tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("the same question every time\n")
    _, table = _run(llm_service, tmp_path, "--stages", "2x4", "--warmup", "1", "--prompts", str(prompts),
                    "--max-tokens", "6")
    cached = table[table["cls"] == "cached"].iloc[0]
    assert cached["requests"] > 20 and cached["output_tokens"] == 6 * cached["requests"]  # max_tokens caps
    assert cached["itl_p50_ms"] < 0.5 * DELAY_MS  # replayed, not generated
    assert "goodput" not in table  # no SLO given


@pytest.mark.parametrize("kind, needle", [("404", "HTTP 404"), ("json", "not text/event-stream")])
def test_a_target_that_is_not_openai_compatible_is_refused(tmp_path, kind, needle):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", NOT_OPENAI, str(port), kind])
    try:
        for _ in range(100):
            try:
                httpx.get(f"http://127.0.0.1:{port}", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.05)
        out = run_cli("run", "--target", f"http://127.0.0.1:{port}", "--scenario", "openai-chat", "--model", "m",
                      "--stages", "1x5", env={"CAPKIT_STORE_URL": f"sqlite:///{tmp_path / 's.sqlite'}",
                                              "CAPKIT_RUNS_DIR": str(tmp_path / "runs")}, timeout=60)
    finally:
        proc.kill()
        proc.wait(5)
    assert out.returncode == 2
    assert_one_line_error(out, "is not an OpenAI-compatible streaming endpoint", needle)
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("slo", ["ttft=500", "ttft=fast", "speed=1s"])
def test_an_slo_that_does_not_parse_is_one_line(tmp_path, slo):
    out = run_cli("run", "--stages", "1x5", "--slo", slo, env={"CAPKIT_STORE_URL": f"sqlite:///{tmp_path / 's'}"},
                  timeout=30)
    assert out.returncode == 2
    assert_one_line_error(out, "--slo item")
    assert not (tmp_path / "s").exists()
