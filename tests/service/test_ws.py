import time

import pytest
from starlette.websockets import WebSocketDisconnect

from .conftest import login


def _turn(ws, message, conversation_id=None):
    ws.send_json({"message": message, "conversation_id": conversation_id})
    out = []
    while True:
        m = ws.receive_json()
        out.append((time.monotonic(), m))
        if m["type"] in ("done", "error"):
            return out


def test_ws_streams_tokens_with_query_token(make_client):
    client = make_client(model_tokens=5, model_token_delay_ms=40, response_cache=False)
    token = login(client)["Authorization"][7:]
    with client.websocket_connect(f"/api/ws/chat?token={token}") as ws:
        assert ws.receive_json() == {"type": "ready", "sub": "loadtest-0000"}
        out = _turn(ws, "hello socket")
        kinds = [m["type"] for _, m in out]
        assert kinds == ["start"] + ["token"] * 5 + ["done"]
        tokens = [t for t, m in out if m["type"] == "token"]
        assert tokens[-1] - tokens[0] > 0.1  # produced over time, not in one burst
        done = out[-1][1]
        assert done["tokens"] == 5 and done["model"] == "capkit-builtin"
        again = _turn(ws, "second", done["conversation_id"])
        assert again[-1][1]["conversation_id"] == done["conversation_id"]
        metrics = client.get("/metrics").text
        assert "capkit_websocket_connections 1.0" in metrics
    assert "capkit_websocket_connections 0.0" in client.get("/metrics").text


def test_ws_token_as_first_message_and_errors(client):
    token = login(client)["Authorization"][7:]
    with client.websocket_connect("/api/ws/chat") as ws:
        ws.send_json({"token": token})
        assert ws.receive_json()["type"] == "ready"
        err = _turn(ws, "")[-1][1]
        assert err["type"] == "error" and err["status"] == 422
        err = _turn(ws, "hi", 999999)[-1][1]
        assert err["status"] == 404
        ws.send_text("not json")
        assert ws.receive_json()["status"] == 400
        assert _turn(ws, "still works")[-1][1]["type"] == "done"


def test_ws_refuses_bad_token(client):
    with client.websocket_connect("/api/ws/chat?token=nope") as ws:
        m = ws.receive_json()
        assert m["type"] == "error" and m["status"] == 401
        with pytest.raises(WebSocketDisconnect) as err:
            ws.receive_json()
        assert err.value.code == 4401
