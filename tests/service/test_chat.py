import time

from .conftest import login, seed_small


def test_message_answer_and_history(client):
    h = login(client)
    r = client.post("/api/chat/message", json={"message": "how many users fit?"}, headers=h)
    assert r.status_code == 200
    body = r.json()
    assert body["tokens"] == 8 and body["model"] == "capkit-builtin" and body["cached"] is False
    cid = body["conversation_id"]
    r2 = client.post("/api/chat/message", json={"message": "and then?", "conversation_id": cid}, headers=h)
    assert r2.json()["conversation_id"] == cid
    hist = client.get(f"/api/chat/history/{cid}", headers=h).json()["messages"]
    assert [m["role"] for m in hist] == ["user", "assistant", "user", "assistant"]
    assert hist[1]["content"] == body["reply"]
    # someone else's conversation is not found, then deletion
    other = login(client, "loadtest-0001")
    assert client.get(f"/api/chat/history/{cid}", headers=other).status_code == 404
    assert client.delete(f"/api/chat/history/{cid}", headers=h).json()["deleted_messages"] == 4
    assert client.get(f"/api/chat/history/{cid}", headers=h).status_code == 404


def test_cache_hit_on_repeat(client):
    h = login(client)
    first = client.post("/api/chat/message", json={"message": "repeat me"}, headers=h).json()
    second = client.post("/api/chat/message", json={"message": "repeat me"}, headers=h).json()
    assert first["cached"] is False and second["cached"] is True
    assert second["reply"] == first["reply"] and second["conversation_id"] != first["conversation_id"]
    metrics = client.get("/metrics").text
    assert 'capkit_cache_hits_total{cache="response"} 1.0' in metrics


def test_stream_arrives_incrementally(make_client):
    client = make_client(model_tokens=6, model_token_delay_ms=60, response_cache=False)
    h = login(client)
    t0 = time.monotonic()
    arrivals = []
    with client.stream("POST", "/api/chat/stream", json={"message": "stream please"}, headers=h) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
        cid = int(r.headers["x-conversation-id"])
        for chunk in r.iter_text():
            arrivals.append((time.monotonic() - t0, chunk))
    assert len(arrivals) == 6
    # the first token came well before the last (5 gaps of 60 ms between them)
    assert arrivals[-1][0] - arrivals[0][0] > 0.2
    text = "".join(c for _, c in arrivals)
    hist = client.get(f"/api/chat/history/{cid}", headers=h).json()["messages"]
    assert hist[-1]["content"] == text


def test_bad_input_is_4xx(client):
    h = login(client)
    post = lambda **kw: client.post("/api/chat/message", headers=h, **kw)  # noqa: E731
    bad = client.post("/api/chat/message", content=b"{not json", headers={**h, "Content-Type": "application/json"})
    assert bad.status_code == 422 and "JSON" in bad.text
    assert post(json={"message": 123}).status_code == 422
    assert post(json={"message": ""}).status_code == 422
    assert post(json={}).status_code == 422
    assert post(json={"message": "hi", "conversation_id": "abc"}).status_code == 422
    big = post(json={"message": "x" * 4001})
    assert big.status_code == 422 and "limit is 4000" in big.json()["detail"]
    missing = post(json={"message": "hi", "conversation_id": 987654})
    assert missing.status_code == 404 and "987654" in missing.json()["detail"]
    assert client.get("/api/chat/history/0", headers=h).status_code == 422
    assert client.get("/api/chat/history/99999999999999", headers=h).status_code == 422
    assert client.post("/api/chat/message", json={"message": "hi"}).status_code == 401
    huge = client.post("/api/chat/message", json={"message": "x" * 2_000_000}, headers=h)
    assert huge.status_code == 413 and "exceeds the limit" in huge.json()["detail"]


def test_chat_on_postgresql(pg_url, make_client):
    seed_small(pg_url)
    client = make_client(database_url=pg_url)
    h = login(client)
    first = client.post("/api/chat/message", json={"message": "hello pg"}, headers=h).json()
    body = {"message": "more", "conversation_id": first["conversation_id"]}
    with client.stream("POST", "/api/chat/stream", json=body, headers=h) as r:
        text = "".join(r.iter_text())
    hist = client.get(f"/api/chat/history/{first['conversation_id']}", headers=h).json()["messages"]
    assert [m["content"] for m in hist] == ["hello pg", first["reply"], "more", text]
    assert first["conversation_id"] > 120  # after the seeded ids
