import asyncio
import time

import pytest

from capkit.service.backends import BuiltinBackend, OllamaBackend, burn_cpu
from capkit.service.models import BackendSlot, ModelManager, ModelUnavailable

from .conftest import free_port, login
from .fake_ollama import FakeOllama


def slot(backend, **kw):
    args = dict(max_concurrent=2, queue_size=4, queue_timeout_s=1.0, first_token_timeout_s=1.0)
    args.update(kw)
    return BackendSlot(backend, **args)


def run(coro):
    return asyncio.run(coro)


def test_burn_cpu_spends_thread_cpu():
    t0 = time.thread_time()
    burn_cpu(20, b"x")
    assert time.thread_time() - t0 >= 0.019


def test_builtin_is_deterministic_and_sized():
    b = BuiltinBackend(tokens=5, cpu_ms_per_token=0, token_delay_ms=0)

    async def collect(p):
        return [t async for t in b.stream(p)]

    assert run(collect("a")) == run(collect("a"))
    assert run(collect("a")) != run(collect("b"))
    assert len(run(collect("a"))) == 5


def test_ollama_backend_streams_from_protocol_server():
    with FakeOllama(tokens=["one", " two", " three"]) as fake:
        b = OllamaBackend(fake.url, "tiny")

        async def collect():
            try:
                return [t async for t in b.stream("hi")]
            finally:
                await b.aclose()

        assert run(collect()) == ["one", " two", " three"]
        assert fake.requests[0] == {"model": "tiny", "prompt": "hi", "stream": True}


def test_fallback_when_first_backend_is_down():
    dead = OllamaBackend(f"http://127.0.0.1:{free_port()}", "dead")
    manager = ModelManager([slot(dead), slot(BuiltinBackend(tokens=3, token_delay_ms=0))])

    async def go():
        text, gen = await manager.complete("hello")
        await manager.aclose()
        return text, gen

    text, gen = run(go())
    assert gen.model == "capkit-builtin" and gen.fallback and gen.tokens == 3
    assert manager.slots[0].healthy is False and manager.fallbacks == 1


def test_fallback_when_first_backend_is_slow():
    with FakeOllama(first_delay_s=1.0) as fake:
        slow = OllamaBackend(fake.url, "slow")
        manager = ModelManager([slot(slow, first_token_timeout_s=0.2), slot(BuiltinBackend(tokens=2))])

        async def go():
            t0 = time.monotonic()
            _text, gen = await manager.complete("x")
            await manager.aclose()
            return gen, time.monotonic() - t0

        gen, took = run(go())
        assert gen.fallback and gen.model == "capkit-builtin" and took < 0.9


def test_queue_timeout_falls_back_then_503():
    slow = BuiltinBackend("busy", tokens=3, cpu_ms_per_token=0, token_delay_ms=150)
    spare = BuiltinBackend("spare", tokens=1, cpu_ms_per_token=0, token_delay_ms=0)
    manager = ModelManager([slot(slow, max_concurrent=1, queue_timeout_s=0.05), slot(spare, max_concurrent=1,
                                                                                     queue_size=0)])

    async def go():
        first = asyncio.create_task(manager.complete("a"))
        await asyncio.sleep(0.02)
        second = await manager.complete("b")  # busy is full → waits 50 ms → spare
        held = await manager.open("c")  # spare now held open; busy still busy
        with pytest.raises(ModelUnavailable) as err:
            await manager.open("d")
        await held.aclose()
        await first
        return second[1], err.value

    gen, err = run(go())
    assert gen.model == "spare" and gen.fallback
    assert err.retry_after >= 1 and "no model backend available" in err.detail


def test_chat_falls_back_through_the_app(make_client):
    client = make_client(model_backends="ollama,builtin", ollama_url=f"http://127.0.0.1:{free_port()}")
    h = login(client)
    r = client.post("/api/chat/message", json={"message": "hello"}, headers=h)
    assert r.status_code == 200 and r.json()["model"] == "capkit-builtin"
    health = client.get("/healthz").json()["model"]
    assert [m["healthy"] for m in health] == [False, True]
    assert 'capkit_model_fallbacks_total{primary="tinyllama",served_by="capkit-builtin"} 1.0' in client.get(
        "/metrics").text


def test_chat_uses_ollama_when_healthy(make_client):
    with FakeOllama(tokens=["a", " b"]) as fake:
        client = make_client(model_backends="ollama,builtin", ollama_url=fake.url, ollama_model="tiny")
        r = client.post("/api/chat/stream", json={"message": "hello"}, headers=login(client))
        assert r.status_code == 200 and r.text == "a b" and r.headers["x-model"] == "tiny"


def test_all_backends_down_is_503_with_retry_after(make_client):
    client = make_client(model_backends="ollama", ollama_url=f"http://127.0.0.1:{free_port()}")
    r = client.post("/api/chat/message", json={"message": "hello"}, headers=login(client))
    assert r.status_code == 503 and int(r.headers["retry-after"]) >= 1
    assert "no model backend available" in r.json()["detail"]
