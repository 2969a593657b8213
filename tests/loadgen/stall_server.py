"""A real HTTP server that stalls: every request is held while the clock is in the first second of
each 3-second cycle (a GC pause, a failover), else answered at once. ``python stall_server.py PORT``."""

import socket
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CYCLE_S, STALL_S = 3.0, 1.0


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        # headers and body go out in two writes: without this, Nagle + delayed ACK add 40 ms each
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self):
        phase = time.time() % CYCLE_S
        if phase < STALL_S:
            time.sleep(STALL_S - phase)  # blocked until the stall ends, like every other request
        body = b"ok"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
