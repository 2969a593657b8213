from prometheus_client.parser import text_string_to_metric_families

from .conftest import login


def test_metrics_content(client):
    h = login(client)
    client.post("/api/chat/message", json={"message": "count me"}, headers=h)
    client.get("/api/chat/history/424242", headers=h)
    client.get("/no/such/path")
    text = client.get("/metrics").text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    for name in ("capkit_http_requests", "capkit_http_request_duration_seconds", "capkit_http_requests_in_flight",
                 "capkit_db_pool_size", "capkit_db_pool_checked_out", "capkit_db_pool_overflow", "capkit_cache_hits",
                 "capkit_cache_misses", "capkit_cache_evictions", "capkit_model_queue_depth",
                 "capkit_model_queue_wait_seconds", "capkit_model_fallbacks", "capkit_websocket_connections",
                 "capkit_rate_limit_rejections", "capkit_model_tokens", "capkit_circuit_breaker_open",
                 "capkit_redis_degraded", "process_cpu_seconds", "process_resident_memory_bytes",
                 "capkit_model_active", "capkit_model_slots_in_use", "capkit_model_slots", "capkit_db_pool_limit",
                 "capkit_event_loop_lag_seconds", "capkit_http_request_bytes", "capkit_http_response_bytes"):
        assert name in families, name
    for name in ("capkit_model_slots_in_use", "capkit_model_slots", "capkit_db_pool_limit",
                 "capkit_event_loop_lag_seconds", "capkit_http_request_bytes", "capkit_http_response_bytes"):
        assert len(families[name].documentation) > 15, name  # the soft-limit series say what they are
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families.values() for s in f.samples}
    assert samples[("capkit_http_requests_total",
                    (("method", "POST"), ("route", "/api/chat/message"), ("status", "200")))] == 1
    assert samples[("capkit_http_requests_total", (("method", "GET"), ("route", "/api/chat/history/{conversation_id}"),
                                                   ("status", "404")))] == 1
    assert samples[("capkit_http_requests_total", (("method", "GET"), ("route", "unmatched"), ("status", "404")))] == 1
    assert samples[("capkit_model_tokens_total", (("model", "capkit-builtin"),))] == 8
    assert samples[("capkit_db_pool_size", ())] == 5
    assert samples[("capkit_http_requests_in_flight", ())] == 1  # the scrape itself


def test_registries_are_per_app(make_client):
    a, b = make_client(), make_client()
    login(a)
    assert 'route="/api/auth/token"' in a.get("/metrics").text
    assert 'route="/api/auth/token"' not in b.get("/metrics").text


def test_healthz(client):
    body = client.get("/healthz").json()
    assert body["status"] == "ok" and body["db"] == "ok" and body["cache"]["ok"]
    assert body["model"][0]["model"] == "capkit-builtin" and body["model"][0]["healthy"]


def test_every_module_route_is_served_and_documented(client):
    """The app serves its modules' routes from its own route list (not through include_router):
    each one is there once, answers (no 404), and the OpenAPI document lists those in the schema."""
    from capkit.service import analytics, auth, chat, observability, openai, ws

    app = client.app
    served = [(r.path, tuple(sorted(getattr(r, "methods", None) or ()))) for r in app.routes]
    documented = client.get("/openapi.json").json()["paths"]
    for module in (auth, chat, analytics, ws, openai, observability):
        for route in module.router.routes:
            key = (route.path, tuple(sorted(getattr(route, "methods", None) or ())))
            assert served.count(key) == 1, key
            if getattr(route, "include_in_schema", False):
                assert set(documented[route.path]) >= {m.lower() for m in route.methods}, route.path
    assert client.get("/api/auth/validate").status_code == 401  # reached, refused for want of a token
    assert client.get("/api/analytics/summary").status_code == 401
    assert client.get("/v1/models").status_code == 401
