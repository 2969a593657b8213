"""The reference scenarios against a real service: streams, WebSocket, 429s, raw-log agreement."""

from __future__ import annotations

from capkit import analysis as ca
from capkit.analysis.data.steps import endpoint_table, summarize_steps
from tests.loadrun import assert_close_to_raw, raw_in_step, read_raw_requests, run_reference_load


def test_full_mix_records_streams_websocket_and_matches_the_raw_log(reference_service, store, tmp_path):
    svc = reference_service()
    result = run_reference_load(store, tmp_path, svc, "0x2,4x5", env={
        "CAPKIT_MIX": "chat=1,analytics=1,auth=1,ws=1", "CAPKIT_RAW_REQUESTS": "1"})
    assert result.status == "complete", result.reason
    data = ca.read_run(store, result.run_id)
    names = set(data.requests["name"])
    assert "chat: tokens/s" not in names  # a rate is not a latency: token rates live in llm_stats
    assert {"POST /api/chat/stream", "chat: ttft", "chat: stream total",
            "GET /api/analytics/summary", "GET /api/analytics/trends", "GET /api/analytics/users",
            "GET /api/analytics/models", "GET /api/auth/validate", "ws: connect", "ws: message",
            "ws: first token"} <= names
    table = endpoint_table(data.requests, data.steps, warmup_s=data.warmup_s)
    step1 = table[table["step"] == 1].set_index("name")
    # the whole stream takes at least as long as its first token, which comes after the headers
    assert step1.loc["chat: stream total", "p50_ms"] >= step1.loc["chat: ttft", "p50_ms"]
    assert step1.loc["chat: ttft", "requests"] == step1.loc["chat: stream total", "requests"]
    # every token of the text stream timed; counts equal the server's (8 tokens, fast_settings)
    llm = data.llm[data.llm["name"] == "POST /api/chat/stream"]
    gen = llm[llm["cls"] == "generated"]
    # (one user in four chats, for 5 s: 3 streams on a slow machine, so only "some")
    assert gen["requests"].sum() > 0 and (gen["output_tokens"] == 8 * gen["requests"]).all()
    assert gen["itl_count"].sum() == 7 * gen["requests"].sum()
    ws = data.samples[(data.samples["source"] == "generator") & (data.samples["metric"] == "ws_connections")]
    assert ws["value"].max() >= 1  # one of the 4 users is the WebSocket user
    # a WebSocket answer carries its frames' bytes (8 token frames and "done"), as HTTP rows do
    msgs = data.requests[data.requests["name"] == "ws: message"]
    assert msgs["count"].sum() > 0 and msgs["bytes"].sum() / msgs["count"].sum() > 8 * 20

    # per-step percentiles equal those of the raw per-request log (within HDR precision)
    raw = read_raw_requests(result.raw_dir)
    steps = summarize_steps(data.steps, data.requests, data.samples, warmup_s=data.warmup_s)
    st = data.steps.set_index("step").loc[1]
    in_step = raw_in_step(raw, st, data.warmup_s)
    counted = [r for r in in_step if r[1] != "STREAM"]
    assert steps.loc[1, "requests"] == len(counted) > 20
    for q in (50, 95, 99):
        assert_close_to_raw(steps.loc[1, f"p{q}_ms"], [r[3] for r in counted], q)
    for name, row in step1.iterrows():
        values = [r[3] for r in in_step if r[2] == name]
        assert row["requests"] == len(values)
        assert_close_to_raw(row["p95_ms"], values, 95)


def test_429s_are_rate_limited_not_failures(reference_service, store, tmp_path):
    svc = reference_service(rate_limit_chat="3/minute")
    result = run_reference_load(store, tmp_path, svc, "0x2,3x4", env={"CAPKIT_MIX": "chat=1"})
    assert result.status == "complete", result.reason
    data = ca.read_run(store, result.run_id)
    chat = data.requests[data.requests["name"].str.startswith("POST /api/chat/")]
    assert chat["rate_limited"].sum() > 0
    assert chat["failures"].sum() == 0
    steps = summarize_steps(data.steps, data.requests, data.samples, warmup_s=data.warmup_s)
    assert steps.loc[1, "rate_limited"] > 0 and steps.loc[1, "error_rate"] == 0
    assert "errors" not in steps.loc[1, "flags"]
