"""A tiny OpenAI-compatible streaming server for the tests: every ``POST /v1/chat/completions`` is
logged (arrival time, roles, words of every message, the system message, max_tokens) as one JSON line
to LOG, then answered with ``max_tokens`` (default 4) streamed tokens ``tokN`` a few ms apart and a
usage chunk whose ``prompt_tokens`` counts the words of the messages. ``GET /metrics`` answers in
vLLM's names: the requests in flight as running, and a KV cache that each of them fills by an
eighth. ``python openai_stub.py PORT LOG``."""

import json
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

GAP_S = 0.002
KV_PER_REQUEST = 0.125
_lock = threading.Lock()
_in_flight = [0]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _send(self, status: int, body: bytes, kind: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/metrics":
            n = _in_flight[0]
            text = (f"# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running{{engine=\"0\"}} {n}\n"
                    f"# TYPE vllm:num_requests_waiting gauge\nvllm:num_requests_waiting{{engine=\"0\"}} 0\n"
                    f"# TYPE vllm:kv_cache_usage_perc gauge\n"
                    f"vllm:kv_cache_usage_perc{{engine=\"0\"}} {min(n * KV_PER_REQUEST, 1.0)}\n")
            self._send(200, text.encode(), "text/plain; version=0.0.4")
        elif self.path == "/v1/models":
            self._send(200, b'{"object": "list", "data": [{"id": "stub", "object": "model"}]}')
        else:
            self._send(200, b"ok", "text/plain")

    def do_POST(self):
        arrived = time.time()
        doc = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
        messages = doc.get("messages") or []
        words = sum(len(str(m.get("content") or "").split()) for m in messages)
        system = next((m["content"] for m in messages if m.get("role") == "system"), None)
        tokens = int(doc.get("max_tokens") or 4)
        with _lock, open(sys.argv[2], "a", encoding="utf-8") as log:
            log.write(json.dumps({"t": arrived, "roles": [m.get("role") for m in messages], "words": words,
                                  "last_words": len(str(messages[-1].get("content") or "").split()),
                                  "system": system, "max_tokens": doc.get("max_tokens")}) + "\n")
            _in_flight[0] += 1
        try:
            self._stream(tokens, words)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client went away (the target check reads one event; a run's end closes streams)
        finally:
            with _lock:
                _in_flight[0] -= 1

    def _stream(self, tokens: int, words: int) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

        def event(obj) -> None:
            data = b"data: " + (obj if isinstance(obj, bytes) else json.dumps(obj).encode()) + b"\n\n"
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()

        for i in range(tokens):
            event({"choices": [{"index": 0, "delta": {"content": f" tok{i}"}, "finish_reason": None}]})
            time.sleep(GAP_S)
        event({"choices": [], "usage": {"prompt_tokens": words, "completion_tokens": tokens,
                                        "total_tokens": words + tokens}})
        event(b"[DONE]")
        self.wfile.write(b"0\r\n\r\n")

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
