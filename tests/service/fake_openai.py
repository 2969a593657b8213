"""A tiny server answering ``POST /v1/chat/completions`` with scripted SSE lines, for the
protocol's edge cases (a real upstream, another reference service, covers the normal flow)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def chunk(content: str | None = None, finish: str | None = None) -> str:
    """One ``data:`` line of a ``chat.completion.chunk`` carrying ``content``."""
    delta = {} if content is None else {"content": content}
    return "data: " + json.dumps({"id": "c1", "object": "chat.completion.chunk", "model": "fake",
                                  "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})


class FakeOpenAI:
    """Sends ``lines`` (each followed by a blank line) with status 200, or ``status`` with ``body``.

    ``requests`` holds the JSON bodies received and ``headers`` their headers.
    """

    def __init__(self, lines=(), *, status: int = 200, body: str = ""):
        self.lines = list(lines)
        self.status = status
        self.body = body
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"  # the body ends when the connection closes

            def log_message(self, *args):
                pass

            def do_POST(self):
                outer.requests.append(json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0)))))
                outer.headers.append({k.lower(): v for k, v in self.headers.items()})
                if outer.status != 200:
                    self.send_response(outer.status)
                    self.send_header("Content-Type", "application/json")
                    self.end_headers()
                    self.wfile.write(outer.body.encode())
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                try:
                    for line in outer.lines:
                        self.wfile.write(line.encode() + b"\n\n")
                        self.wfile.flush()
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
