"""`capkit run --scenario openai-chat` workloads against a real local OpenAI-compatible stub
(tests/runs/openai_stub.py, which logs every request it gets): a trace replayed at its recorded
times with its lengths; conversations that resend their history, recorded per turn; bad input
refused in one line before anything starts."""

from __future__ import annotations

import json
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from capkit import analysis as ca
from capkit.analysis.fits.llm import LlmServing, llm_steps, llm_turns
from capkit.runs.processes import free_port
from capkit.store import open_store
from tests.conftest import assert_one_line_error, run_cli

STUB = Path(__file__).parent / "openai_stub.py"


@pytest.fixture
def stub(tmp_path):
    port, log = free_port(), tmp_path / "stub.jsonl"
    proc = subprocess.Popen([sys.executable, str(STUB), str(port), str(log)])
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                httpx.get(url, timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.05)
        yield url, log
    finally:
        proc.kill()
        proc.wait(5)


def _run(url, tmp_path, *args):
    store = tmp_path / "capkit.sqlite"
    proc = run_cli("run", "--target", url, "--scenario", "openai-chat", "--model", "stub", *args,
                   env={"CAPKIT_STORE_URL": f"sqlite:///{store}", "CAPKIT_RUNS_DIR": str(tmp_path / "runs")},
                   timeout=120)
    assert proc.returncode == 0, proc.stderr[-1500:]
    s = open_store(f"sqlite:///{store}", create=False)
    run = ca.read_run(s, s.latest_run_id())
    s.engine.dispose()
    return run


def _logged(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_a_trace_is_replayed_at_its_recorded_times_with_its_lengths(stub, tmp_path):
    url, log = stub
    rng = random.Random(7)
    t, rows = 1_700_000_000_000, []
    for i in range(30):  # bursts and pauses over ~6 s; each input length unique, to match requests to lines
        t += rng.choice([0, 5, 40, 150, 400, 900])
        rows.append({"timestamp": t, "input_length": 20 + i, "output_length": rng.randint(1, 6), "hash_ids": [i]})
    trace = tmp_path / "trace.jsonl"
    trace.write_text("".join(json.dumps(r) + "\n" for r in rows))
    run = _run(url, tmp_path, "--trace", str(trace), "--trace-scale", "0.5")
    got = {r["last_words"]: r for r in _logged(log) if r["words"] != 1}  # the target check's "ping" apart
    assert sorted(got) == [r["input_length"] for r in rows]  # every line sent once, with its input length
    assert all(got[r["input_length"]]["max_tokens"] == r["output_length"] for r in rows)
    # arrival − scheduled time, per request; the common offset (the stage's start) is their median
    lags = [got[r["input_length"]]["t"] - (r["timestamp"] - rows[0]["timestamp"]) / 1000 * 0.5 for r in rows]
    errors_ms = sorted(abs(lag - statistics.median(lags)) * 1000 for lag in lags)
    print(f"\n|arrival − trace time| around their common offset (ms): median {statistics.median(errors_ms):.1f}, "
          f"90th {errors_ms[26]:.1f}, max {errors_ms[-1]:.1f}")
    # the pacer sleeps to each scheduled time and hands the run to a waiting user at once
    assert errors_ms[26] < 15 and errors_ms[-1] < 60
    table = llm_steps(run.steps, run.llm, warmup_s=run.warmup_s)
    both = table[table["cls"] == "all"].iloc[0]
    # the replay starts on a whole second, so the step's window of whole seconds holds every request
    assert both["requests"] == 30 and both["output_tokens"] == sum(r["output_length"] for r in rows)
    assert run.meta.spec.notes["trace_scale"] == 0.5 and run.meta.spec.plan.stages[0].trace


def test_conversations_resend_their_history_and_are_recorded_per_turn(stub, tmp_path):
    url, log = stub
    run = _run(url, tmp_path, "--prompts", "capkit:conversations", "--stages", "2x4", "--warmup", "0",
               "--shared-prefix", "0.5,40", "--output-tokens", "3,1,2,5")
    sent = [r for r in _logged(log) if r["words"] != 1]
    assert len(sent) > 50
    for r in sent:
        roles = [x for x in r["roles"] if x != "system"]
        users = roles.count("user")
        # the history resent: user/assistant alternating, ending with the new user turn
        assert roles == ["user", "assistant"] * (users - 1) + ["user"]
        assert 2 <= r["max_tokens"] <= 5
    firsts = [r for r in sent if r["roles"].count("user") == 1]
    shared = [r for r in firsts if r["system"] is not None]
    assert all(len(r["system"].split()) == 40 for r in shared)
    assert 0.3 < len(shared) / len(firsts) < 0.7  # half the conversations, binomial over > 40
    assert max(r["roles"].count("user") for r in sent) == 4  # the bundled set's longest conversation
    turns = llm_turns(run.steps, run.llm, warmup_s=run.warmup_s)
    gen = turns[(turns["cls"] == "generated") & (turns["step"] == 0)].set_index("turn")
    assert list(gen.index) == [1, 2, 3, 4]
    assert gen["requests"].sum() == llm_steps(run.steps, run.llm, warmup_s=0).query("cls == 'generated'")[
        "requests"].sum()
    # the server's count of the history resent grows with the turn (~12 words a turn here); turn 4 is
    # the few 4-turn conversations, whose prefix share may differ, so only turns 1-3 are compared in order
    tokens = gen["mean_input_tokens"]
    assert tokens[1] < tokens[2] < tokens[3] and tokens[4] > tokens[2]
    from capkit.analysis.present.llm_figures import plot_ttft_by_turn

    fig = plot_ttft_by_turn(LlmServing(run, llm_steps(run.steps, run.llm, warmup_s=0), None, {}, None, turns))
    assert fig is not None and fig.axes[0].get_xlabel().startswith("turn")


@pytest.mark.parametrize("make, args, needle", [
    (lambda p: p.write_text('{"prompt": "fine"}\n{"prompt": oops}\n'), ["--prompts", "{f}"], "{f}:2: not JSON"),
    (lambda p: p.write_text('{"timestamp": 9, "input_length": 1, "output_length": 1}\n'
                            '{"timestamp": 3, "input_length": 1, "output_length": 1}\n'),
     ["--trace", "{f}"], "{f}:2: time goes backwards"),
    (None, ["--server", "triton", "--stages", "p5x5"], "--server 'triton' is not one of"),
    (None, ["--stages", "p5x5", "--burstiness", "0"], "--burstiness 0 must be > 0"),
    (None, ["--stages", "p5x5", "--burstiness", "-1"], "--burstiness -1 must be > 0"),
    (None, ["--stages", "r5x5", "--burstiness", "2"], "--burstiness shapes the gaps of Poisson stages"),
    (None, ["--stages", "1x5", "--turns", "0"], "--turns '0' is not MEAN"),
    (None, ["--stages", "1x5", "--shared-prefix", "2,10"], "--shared-prefix '2,10' is not SHARE,TOKENS"),
])
def test_bad_input_is_one_line_before_anything_starts(tmp_path, make, args, needle):
    f = tmp_path / "input.jsonl"
    if make is not None:
        make(f)
    args = [a.replace("{f}", str(f)) for a in args]
    # a target nobody serves: every check here must come before the target is asked
    out = run_cli("run", "--target", f"http://127.0.0.1:{free_port()}", "--scenario", "openai-chat",
                  "--model", "m", *args, env={"CAPKIT_STORE_URL": f"sqlite:///{tmp_path / 's.sqlite'}",
                                              "CAPKIT_RUNS_DIR": str(tmp_path / "runs")}, timeout=60)
    assert out.returncode == 2
    assert_one_line_error(out, needle.replace("{f}", str(f)))
    assert not (tmp_path / "runs").exists() and not (tmp_path / "s.sqlite").exists()
