import socket

import httpx
import pytest

from capkit.errors import ServiceError
from capkit.service.server import check_port_free, serve

from .conftest import fast_settings


def test_port_in_use_is_one_clear_error():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        port = sock.getsockname()[1]
        with pytest.raises(ServiceError) as err:
            check_port_free("127.0.0.1", port)
        assert str(err.value) == f"port {port} on 127.0.0.1 is in use; choose another with --port"
        with pytest.raises(ServiceError):
            serve(fast_settings(), "127.0.0.1", port)


def test_serve_with_two_workers_seeds_and_answers(tmp_path, start_server):
    settings = fast_settings(database_url=f"sqlite:///{tmp_path / 'srv.sqlite'}", seed_on_start=True)
    base = start_server(settings, workers=2)
    with httpx.Client(timeout=10) as http:
        r = http.post(f"{base}/api/auth/token", json={"username": "loadtest-0004", "password": "loadtest-password"})
        assert r.status_code == 200
        h = {"Authorization": f"Bearer {r.json()['access_token']}"}
        assert http.get(f"{base}/api/analytics/summary", headers=h).json()["conversations"] == 120
        with http.stream("POST", f"{base}/api/chat/stream", json={"message": "hi"}, headers=h) as resp:
            chunks = list(resp.iter_text())
        assert resp.status_code == 200 and len(chunks) >= 2 and "x-conversation-id" in resp.headers
