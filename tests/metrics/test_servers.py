"""``--server``: each inference server's mapping reads its recorded ``/metrics`` text, served over real
HTTP to the real Prometheus collector: queue, running batch, KV cache (and vLLM's preemption rate)."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from capkit.errors import ConfigError
from capkit.metrics import PrometheusCollector, parse_mappings
from capkit.metrics.servers import SERVERS, server_signals

FIXTURES = Path(__file__).parent / "fixtures"


class _Serve:
    """Serves ``texts`` in turn at /metrics (the last one again once they run out)."""

    def __init__(self, texts: list[str]):
        self.texts = texts
        served = self

        class H(BaseHTTPRequestHandler):
            def do_GET(self):
                text = served.texts.pop(0) if len(served.texts) > 1 else served.texts[0]
                body = text.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return f"http://127.0.0.1:{self.server.server_address[1]}/metrics"

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def _collect(server: str, texts: list[str]) -> tuple[dict, dict]:
    with _Serve(texts) as url:
        c = PrometheusCollector(url, parse_mappings(SERVERS[server].mappings), source="service")
        first = c.sample()
        time.sleep(0.3)
        second = c.sample()
        c.close()
    return first, second


def test_vllm_maps_queue_batch_kv_cache_and_preemptions():
    text = (FIXTURES / "vllm.metrics").read_text()
    later = text.replace('Llama-3.1-8B-Instruct"} 12.0', 'Llama-3.1-8B-Instruct"} 18.0')
    assert later != text
    t0 = time.monotonic()
    first, second = _collect("vllm", [text, text, later])  # the collector's check scrapes once first
    elapsed = time.monotonic() - t0
    assert first == {"queue_waiting": 7.0, "batch_running": 24.0, "kv_cache": 0.8125}  # a rate needs two scrapes
    assert second["kv_cache"] == 0.8125 and second["queue_waiting"] == 7.0
    assert 6 / elapsed <= second["preemptions_per_s"] <= 6 / 0.3  # 6 preemptions between the scrapes
    assert dict(SERVERS["vllm"].limits) == {"kv_cache": 1.0, "queue_waiting": 1.0}


def test_older_vllm_names_its_kv_cache_gpu_cache_usage():
    first, _ = _collect("vllm", [(FIXTURES / "vllm-older.metrics").read_text()])
    assert first == {"queue_waiting": 0.0, "batch_running": 31.0, "kv_cache": 0.42}


def test_sglang_maps_queue_batch_and_token_usage():
    first, second = _collect("sglang", [(FIXTURES / "sglang.metrics").read_text()])
    assert first == second == {"queue_waiting": 3.0, "batch_running": 64.0, "kv_cache": 0.28}


def test_tgi_has_a_queue_and_a_batch_but_no_kv_cache_share():
    first, _ = _collect("tgi", [(FIXTURES / "tgi.metrics").read_text()])
    assert first == {"queue_waiting": 5.0, "batch_running": 16.0}
    assert dict(SERVERS["tgi"].limits) == {"queue_waiting": 1.0} and "KV-cache" in SERVERS["tgi"].note


def test_ollama_maps_nothing_and_says_so_and_unknown_servers_are_one_line():
    assert SERVERS["ollama"].mappings == () and "no Prometheus metrics" in SERVERS["ollama"].note
    assert server_signals("vLLM") is SERVERS["vllm"] and server_signals(None) is None
    with pytest.raises(ConfigError, match="--server 'triton' is not one of vllm, sglang, tgi, ollama"):
        server_signals("triton")
