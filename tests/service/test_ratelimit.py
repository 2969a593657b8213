import httpx

from .conftest import fast_settings, login, seed_small

CHEAP = dict(model_tokens=1, model_cpu_ms_per_token=0, model_token_delay_ms=0)


def test_101st_request_in_a_minute_is_429(make_client):
    client = make_client(**CHEAP)
    h = login(client)
    codes = [client.post("/api/chat/message", json={"message": "hi"}, headers=h).status_code for _ in range(101)]
    assert codes[:100] == [200] * 100 and codes[100] == 429
    r = client.post("/api/chat/message", json={"message": "hi"}, headers=h)
    assert r.status_code == 429 and 1 <= int(r.headers["retry-after"]) <= 60
    assert "rate limit" in r.json()["detail"]
    # limits are per user
    other = login(client, "loadtest-0001")
    assert client.post("/api/chat/message", json={"message": "hi"}, headers=other).status_code == 200
    assert 'capkit_rate_limit_rejections_total{scope="chat"} 2.0' in client.get("/metrics").text


def test_configurable_limit_and_redis_storage(make_client, redis_prefix):
    client = make_client(rate_limit_chat="3/minute", redis_url="redis://127.0.0.1:6379/0", redis_prefix=redis_prefix,
                         **CHEAP)
    h = login(client)
    codes = [client.post("/api/chat/stream", json={"message": "yo"}, headers=h).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    assert client.get("/healthz").json()["rate_limit"]["backend"] == "redis"


def test_limit_is_shared_by_two_processes_through_redis(tmp_path, redis_prefix, start_server):
    url = f"sqlite:///{tmp_path / 'shared.sqlite'}"
    seed_small(url)
    settings = fast_settings(database_url=url, redis_url="redis://127.0.0.1:6379/0", redis_prefix=redis_prefix,
                             **CHEAP)
    a, b = start_server(settings), start_server(settings)
    with httpx.Client(timeout=10) as http:
        r = http.post(f"{a}/api/auth/token", json={"username": "loadtest-0002", "password": "loadtest-password"})
        h = {"Authorization": f"Bearer {r.json()['access_token']}"}
        codes = [http.post(f"{(a, b)[i % 2]}/api/chat/message", json={"message": "m"}, headers=h).status_code
                 for i in range(100)]
        assert codes == [200] * 100
        for base in (a, b):
            r = http.post(f"{base}/api/chat/message", json={"message": "m"}, headers=h)
            assert r.status_code == 429 and "retry-after" in r.headers
