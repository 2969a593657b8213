"""The OpenAI-compatible API (/v1) and the OpenAI-compatible model backend, on real apps."""

import asyncio
import json
import time

import pytest

from capkit.config import get_settings
from capkit.errors import ConfigError
from capkit.service.agent import render_prompt
from capkit.service.backends import BackendError, BuiltinBackend, OpenAIBackend
from capkit.service.models import BackendSlot, ModelManager
from capkit.service.server import settings_to_env

from .conftest import fast_settings, free_port, login
from .fake_ollama import FakeOllama
from .fake_openai import FakeOpenAI, chunk

NONE = dict(openai_auth="none")


def ask(content="how many users fit?", **extra) -> dict:
    return {"model": "anything", "messages": [{"role": "user", "content": content}], **extra}


def parse_sse(text: str) -> list[dict]:
    """A strict reading of an OpenAI stream: events end with a blank line, each is exactly one
    ``data: `` line, every one a JSON object but the last, which is ``[DONE]``."""
    assert "\r" not in text and text.endswith("\n\n"), text[-200:]
    events = text[:-2].split("\n\n")
    assert events[-1] == "data: [DONE]"
    chunks = []
    for event in events[:-1]:
        assert "\n" not in event and event.startswith("data: "), event
        chunks.append(json.loads(event[len("data: "):]))
        assert isinstance(chunks[-1], dict)
    return chunks


def read_stream(chunks: list[dict], *, usage: bool) -> dict:
    """Check the chunks' shape; return the content deltas, finish reason, usage and cached marks."""
    assert len({c["id"] for c in chunks}) == 1 and chunks[0]["id"].startswith("chatcmpl-")
    assert all(c["object"] == "chat.completion.chunk" and isinstance(c["created"], int) for c in chunks)
    body = chunks[:-1] if usage else chunks
    assert all(("usage" in c) == usage and (not usage or c["usage"] is None) for c in body)
    assert body[0]["choices"] == [{"index": 0, "delta": {"role": "assistant"}, "finish_reason": None}]
    contents = []
    for c in body[1:-1]:
        (choice,) = c["choices"]
        assert choice["index"] == 0 and choice["finish_reason"] is None and set(choice["delta"]) == {"content"}
        contents.append(choice["delta"]["content"])
    (last,) = body[-1]["choices"]
    assert last["delta"] == {} and last["finish_reason"] in ("stop", "length")
    out = {"contents": contents, "finish": last["finish_reason"], "model": chunks[0]["model"],
           "cached": {c["capkit"]["cached"] for c in chunks}}
    if usage:
        assert chunks[-1]["choices"] == []
        u = out["usage"] = chunks[-1]["usage"]
        assert u["total_tokens"] == u["prompt_tokens"] + u["completion_tokens"] and u["prompt_tokens"] > 0
    return out


def stream(client, body, headers=None):
    r = client.post("/v1/chat/completions", json={**body, "stream": True}, headers=headers)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/event-stream")
    return r


def assert_error(r, status: int, code: str | None = None) -> dict:
    assert r.status_code == status, (r.status_code, r.text)
    doc = r.json()
    err = doc["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["message"] and "\n" not in err["message"]
    assert doc["detail"] == err["message"]  # what the service's other 4xx carry
    if code is not None:
        assert err["code"] == code, err
    return err


def test_stream_framing_usage_and_cached_repeat(make_client):
    client = make_client(**NONE)
    body = ask(stream_options={"include_usage": True})
    first = stream(client, body)
    got = read_stream(parse_sse(first.text), usage=True)
    assert first.headers["x-cached"] == "false" and got["cached"] == {False}
    assert len(got["contents"]) == 8 and got["usage"]["completion_tokens"] == 8  # CAPKIT_MODEL_TOKENS
    assert got["finish"] == "stop" and got["model"] == "capkit-builtin"
    again = stream(client, body)
    replay = read_stream(parse_sse(again.text), usage=True)
    assert again.headers["x-cached"] == "true" and replay["cached"] == {True}
    assert replay["contents"] == got["contents"] and replay["usage"] == got["usage"]
    # without include_usage: no usage chunk, no usage field
    plain = read_stream(parse_sse(stream(client, ask("other")).text), usage=False)
    assert len(plain["contents"]) == 8 and "usage" not in plain


def test_max_tokens_caps_and_is_part_of_the_cache_key(make_client):
    client = make_client(**NONE)
    usage = {"stream_options": {"include_usage": True}}
    three = read_stream(parse_sse(stream(client, ask(max_tokens=3, **usage)).text), usage=True)
    assert len(three["contents"]) == 3 == three["usage"]["completion_tokens"] and three["finish"] == "length"
    five = stream(client, ask(max_tokens=5, **usage))
    got = read_stream(parse_sse(five.text), usage=True)
    assert five.headers["x-cached"] == "false"  # same prompt, other cap: not the 3-token answer
    assert got["contents"][:3] == three["contents"] and got["usage"]["completion_tokens"] == 5
    # max_completion_tokens (OpenAI's newer name) caps too; a cap above the model's length does not cut
    newer = read_stream(parse_sse(stream(client, ask("newer", max_completion_tokens=2)).text), usage=False)
    assert len(newer["contents"]) == 2 and newer["finish"] == "length"
    loose = read_stream(parse_sse(stream(client, ask("loose", max_tokens=100, **usage)).text), usage=True)
    assert loose["usage"]["completion_tokens"] == 8 and loose["finish"] == "stop"


def test_non_streaming_completion(make_client):
    client = make_client(**NONE)
    r = client.post("/v1/chat/completions", json=ask(max_tokens=4))
    assert r.status_code == 200 and r.headers["x-cached"] == "false"
    doc = r.json()
    assert doc["object"] == "chat.completion" and doc["id"].startswith("chatcmpl-")
    assert doc["capkit"] == {"cached": False}
    (choice,) = doc["choices"]
    assert choice["message"]["role"] == "assistant" and choice["finish_reason"] == "length"
    assert doc["usage"]["completion_tokens"] == 4 and len(choice["message"]["content"].split()) == 4
    # the streamed answer to the same request is that cached answer, token for token
    s = stream(client, ask(max_tokens=4))
    assert s.headers["x-cached"] == "true"
    assert "".join(read_stream(parse_sse(s.text), usage=False)["contents"]) == choice["message"]["content"]


def test_tokens_are_sent_as_produced(make_client):
    client = make_client(model_tokens=6, model_token_delay_ms=60, response_cache=False, **NONE)
    t0, arrivals = time.monotonic(), []
    with client.stream("POST", "/v1/chat/completions", json=ask(stream=True)) as r:
        for line in r.iter_lines():
            if '"content"' in line:
                arrivals.append(time.monotonic() - t0)
    assert len(arrivals) == 6 and arrivals[-1] - arrivals[0] > 0.2  # 5 gaps of 60 ms


def test_bearer_auth_is_required_by_default(client):
    r = client.post("/v1/chat/completions", json=ask())
    err = assert_error(r, 401, "invalid_api_key")
    assert "bearer token" in err["message"] and r.headers["www-authenticate"] == "Bearer"
    assert_error(client.post("/v1/chat/completions", json=ask(), headers={"Authorization": "Bearer sk-no-key"}), 401)
    assert_error(client.get("/v1/models"), 401)
    h = login(client)
    assert client.post("/v1/chat/completions", json=ask(), headers=h).status_code == 200
    models = client.get("/v1/models", headers=h).json()
    assert models["object"] == "list" and [m["id"] for m in models["data"]] == ["capkit-builtin"]


def test_auth_none_serves_without_a_token(make_client):
    client = make_client(**NONE)
    assert client.post("/v1/chat/completions", json=ask()).status_code == 200
    dummy = {"Authorization": "Bearer sk-no-key-required"}
    assert client.post("/v1/chat/completions", json=ask(stream=True), headers=dummy).status_code == 200
    assert client.get("/v1/models").json()["data"][0]["id"] == "capkit-builtin"
    assert client.post("/api/chat/message", json={"message": "hi"}).status_code == 401  # /api stays bearer


@pytest.mark.parametrize("body, param", [
    ({"model": "m"}, "messages"),
    ({"model": "m", "messages": []}, "messages"),
    (ask(max_tokens=0), "max_tokens"),
    (ask(max_tokens=10**9), "max_tokens"),
    (ask(max_tokens="many"), "max_tokens"),
    (ask(max_completion_tokens=-1), "max_completion_tokens"),
    ({"messages": [{"role": "user", "content": "hi"}]}, "model"),
    ({"model": "m", "messages": [{"role": "wizard", "content": "hi"}]}, "messages.0.role"),
    ({"model": "m", "messages": [{"role": "user", "content": 5}]}, "messages.0.content.str"),
    ({"model": "m", "messages": "hi"}, "messages"),
    (ask(stream_options="yes"), "stream_options"),
    ([1, 2], None),
])
def test_bad_bodies_are_422_in_openai_shape(client, body, param):
    err = assert_error(client.post("/v1/chat/completions", json=body, headers=login(client)), 422)
    assert err["type"] == "invalid_request_error" and err["param"] == param


def test_more_bad_input_is_4xx_never_5xx(client):
    h = login(client)
    json_type = {**h, "Content-Type": "application/json"}
    bad_json = client.post("/v1/chat/completions", content=b"{not json", headers=json_type)
    assert assert_error(bad_json, 422, "json_invalid")["message"].startswith("request body is not valid JSON")
    long = assert_error(client.post("/v1/chat/completions", json=ask("x" * 4001), headers=h), 422)
    assert "limit is 4000" in long["message"]
    huge = client.post("/v1/chat/completions", json=ask("x" * 2_000_000), headers=h)
    assert huge.status_code == 413


def test_rate_limit_is_429_with_retry_after(make_client):
    client = make_client(rate_limit_chat="2/minute")
    h = login(client)
    assert [client.post("/v1/chat/completions", json=ask(), headers=h).status_code for _ in range(2)] == [200, 200]
    r = client.post("/v1/chat/completions", json=ask(stream=True), headers=h)
    err = assert_error(r, 429, "rate_limit_exceeded")
    assert 1 <= int(r.headers["retry-after"]) <= 60 and "rate limit 2/minute" in err["message"]
    assert client.post("/v1/chat/completions", json=ask(), headers=login(client, "loadtest-0001")).status_code == 200
    assert client.get("/v1/models", headers=h).status_code == 200  # listing models is not a chat request


def test_anonymous_callers_are_rate_limited_too(make_client):
    client = make_client(rate_limit_chat="2/minute", **NONE)
    codes = [client.post("/v1/chat/completions", json=ask()).status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    assert client.post("/v1/chat/completions", json=ask(), headers=login(client)).status_code == 200  # a user's own


def test_no_model_is_503_with_retry_after(make_client):
    client = make_client(model_backends="ollama", ollama_url=f"http://127.0.0.1:{free_port()}", **NONE)
    for body in (ask(), ask(stream=True)):
        r = client.post("/v1/chat/completions", json=body)
        err = assert_error(r, 503, "service_unavailable")
        assert int(r.headers["retry-after"]) >= 1 and "no model backend available" in err["message"]


def test_cached_replay_sends_the_tokens_the_model_sent(make_client):
    """Sub-word tokens (as real models send) come back from the cache as they were, and are
    counted as sent: the WebSocket ``done`` frame, /api/chat/stream and /v1 usage agree."""
    with FakeOllama(tokens=["cap", "kit", " plan", "s"], delay_s=0) as fake:
        client = make_client(model_backends="ollama", ollama_url=fake.url, ollama_model="tiny", **NONE)
        token = login(client)["Authorization"][7:]
        with client.websocket_connect(f"/api/ws/chat?token={token}") as ws:
            ws.receive_json()
            done = []
            for _ in range(2):  # two new conversations, the same prompt: the second is the cached answer
                ws.send_json({"message": "same question"})
                frames = []
                while not frames or frames[-1]["type"] != "done":
                    frames.append(ws.receive_json())
                assert [f["token"] for f in frames if f["type"] == "token"] == ["cap", "kit", " plan", "s"]
                done.append(frames[-1])
        assert [d["cached"] for d in done] == [False, True] and [d["tokens"] for d in done] == [4, 4]
        usage = {"stream_options": {"include_usage": True}}
        runs = [read_stream(parse_sse(stream(client, ask("q", **usage)).text), usage=True) for _ in range(2)]
        assert [r["cached"] for r in runs] == [{False}, {True}]
        assert all(r["contents"] == ["cap", "kit", " plan", "s"] and r["usage"]["completion_tokens"] == 4
                   for r in runs)
        assert fake.requests[-1]["model"] == "tiny" and "options" not in fake.requests[-1]
        # a cap reaches Ollama as num_predict; this fake ignores it, and the manager cuts the stream
        capped = read_stream(parse_sse(stream(client, ask("q", max_tokens=2, **usage)).text), usage=True)
        assert fake.requests[-1]["options"] == {"num_predict": 2}
        assert capped["contents"] == ["cap", "kit"] and capped["finish"] == "length"


# ---- the OpenAI-compatible backend ---------------------------------------------------------


def slot(backend, **kw):
    return BackendSlot(backend, **{**dict(max_concurrent=2, queue_size=4, queue_timeout_s=1.0,
                                          first_token_timeout_s=2.0), **kw})


def collect(backend, prompt="hi", max_tokens=None):
    async def go():
        try:
            return [t async for t in backend.stream(prompt, max_tokens)]
        finally:
            await backend.aclose()

    return asyncio.run(go())


def test_openai_backend_against_a_second_reference_service(tmp_path, start_server, make_client):
    upstream = start_server(fast_settings(database_url=f"sqlite:///{tmp_path / 'upstream.sqlite'}",
                                          model_tokens=5, **NONE))
    local = BuiltinBackend(tokens=5, cpu_ms_per_token=0, token_delay_ms=0)

    async def builtin_answer(prompt, n=None):
        return [t async for t in local.stream(render_prompt([("user", prompt)]), n)]

    expected = asyncio.run(builtin_answer("hello upstream"))
    assert collect(OpenAIBackend(upstream, "up"), "hello upstream") == expected
    assert collect(OpenAIBackend(upstream, "up"), "hello upstream", max_tokens=2) == expected[:2]

    manager = ModelManager([slot(OpenAIBackend(upstream, "up")), slot(BuiltinBackend(tokens=3, token_delay_ms=0))])
    client = make_client(model_backends="openai,builtin", openai_url=upstream, openai_model="up", **NONE)

    async def complete(prompt):
        return await manager.complete(prompt)

    text, gen = asyncio.run(complete("via manager"))
    assert gen.model == "up" and not gen.fallback and gen.tokens == 5
    assert text == "".join(asyncio.run(builtin_answer("via manager")))
    r = stream(client, ask("via service", max_tokens=3, stream_options={"include_usage": True}))
    got = read_stream(parse_sse(r.text), usage=True)
    assert r.headers["x-model"] == "up" and got["model"] == "up" and got["usage"]["completion_tokens"] == 3
    # the upstream saw the whole rendered prompt as one user message and the cap
    assert got["contents"] == asyncio.run(builtin_answer(render_prompt([("user", "via service")]), 3))

    start_server.stop(upstream)
    text, gen = asyncio.run(complete("after the upstream stopped"))
    assert gen.model == "capkit-builtin" and gen.fallback and gen.tokens == 3
    assert manager.slots[0].healthy is False and "openai" in manager.slots[0].last_error
    asyncio.run(manager.aclose())
    r = stream(client, ask("after the upstream stopped", stream_options={"include_usage": True}))
    got = read_stream(parse_sse(r.text), usage=True)
    assert got["model"] == "capkit-builtin" and got["usage"]["completion_tokens"] == 8
    health = client.get("/healthz").json()["model"]
    assert [(m["kind"], m["healthy"]) for m in health] == [("openai", False), ("builtin", True)]
    assert 'capkit_model_fallbacks_total{primary="up",served_by="capkit-builtin"} 1.0' in client.get("/metrics").text


def test_openai_backend_protocol_edges():
    lines = [": keep-alive", "event: message", chunk(None), chunk("a"), chunk(""), chunk(" b"),
             chunk(None, "stop"), 'data: {"id":"c1","choices":[],"usage":{"completion_tokens":2}}', "data: [DONE]"]
    with FakeOpenAI(lines) as fake:
        assert collect(OpenAIBackend(fake.url, "m", api_key="sk-secret"), "p", max_tokens=7) == ["a", " b"]
        assert fake.requests[0] == {"model": "m", "messages": [{"role": "user", "content": "p"}], "stream": True,
                                    "max_tokens": 7}
        assert fake.headers[0]["authorization"] == "Bearer sk-secret"
        assert collect(OpenAIBackend(fake.url, "m")) == ["a", " b"]
        assert "authorization" not in fake.headers[1]
        assert "sk-secret" not in repr(OpenAIBackend(fake.url, "m", api_key="sk-secret"))

    for bad, says in (([chunk("a"), "data: {nope"], "not JSON"),
                      ([chunk("a")], "without [DONE]"),
                      (["data: [1]"], "not a JSON object"),
                      (['data: {"choices": 3}'], "choices"),
                      (['data: {"error": {"message": "overloaded"}}'], "overloaded")):
        with FakeOpenAI(bad) as fake, pytest.raises(BackendError) as err:
            collect(OpenAIBackend(fake.url, "m", api_key="sk-secret"))
        assert says in str(err.value) and "sk-secret" not in str(err.value)

    body = json.dumps({"error": {"message": "model not found", "type": "invalid_request_error"}})
    with FakeOpenAI(status=404, body=body) as fake, pytest.raises(BackendError) as err:
        collect(OpenAIBackend(fake.url, "m"))
    assert str(err.value) == f"openai {fake.url} answered 404: model not found"
    with pytest.raises(BackendError, match="ConnectError"):
        collect(OpenAIBackend(f"http://127.0.0.1:{free_port()}", "m"))


def test_upstream_ignoring_max_tokens_is_cut_by_the_manager():
    with FakeOpenAI([chunk(t) for t in "abcdef"] + ["data: [DONE]"]) as fake:
        manager = ModelManager([slot(OpenAIBackend(fake.url, "m"))])

        async def go():
            try:
                return await manager.complete("p", max_tokens=2)
            finally:
                await manager.aclose()

        text, gen = asyncio.run(go())
    assert text == "ab" and gen.tokens == 2 and manager.slots[0].active == 0


def test_openai_settings():
    s = get_settings(model_backends="openai, builtin", openai_api_key="sk-1")
    assert s.model_backends == "openai,builtin" and s.openai_auth == "bearer"
    assert "sk-1" not in repr(s) and settings_to_env(s)["CAPKIT_OPENAI_API_KEY"] == "sk-1"
    with pytest.raises(ConfigError, match="builtin/ollama/openai"):
        get_settings(model_backends="openai,vllm")
    with pytest.raises(ConfigError, match="openai_auth"):
        get_settings(openai_auth="maybe")
