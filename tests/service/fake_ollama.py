"""A tiny server speaking Ollama's streaming ``POST /api/generate`` protocol, for tests."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeOllama:
    """Streams ``tokens`` NDJSON chunks, ``delay_s`` apart, after ``first_delay_s``."""

    def __init__(self, tokens=("hello", " from", " ollama"), *, first_delay_s=0.0, delay_s=0.01, status=200):
        self.tokens = list(tokens)
        self.first_delay_s = first_delay_s
        self.delay_s = delay_s
        self.status = status
        self.requests: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                outer.requests.append(body)
                if self.path != "/api/generate" or outer.status != 200:
                    self.send_response(outer.status if outer.status != 200 else 404)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/x-ndjson")
                self.end_headers()
                time.sleep(outer.first_delay_s)
                try:
                    for tok in outer.tokens:
                        self.wfile.write(json.dumps({"model": body.get("model"), "response": tok, "done": False})
                                         .encode() + b"\n")
                        self.wfile.flush()
                        time.sleep(outer.delay_s)
                    self.wfile.write(json.dumps({"model": body.get("model"), "response": "", "done": True}).encode()
                                     + b"\n")
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
