"""Locust users for capkit's reference service (a locustfile; imported only by Locust).

Parameters come from the environment the orchestrator sets:
``CAPKIT_MIX`` (default ``"chat=4,analytics=1,auth=1,ws=1"``; ``openai=1`` adds the OpenAI-route user:
user class weights; 0 leaves a class out),
``CAPKIT_THINK`` (``"0.5,1.5"``: think time range in seconds),
``CAPKIT_REPEAT_SHARE`` (``0.2``: share of chat prompts that repeat a common one, so the
response cache sees realistic hits; the rest are new prompts that must be generated),
``CAPKIT_ACCOUNT_PREFIX`` / ``CAPKIT_ACCOUNT_PASSWORD`` / ``CAPKIT_ACCOUNTS`` (the seeded pool).
Every request has a stable ``name`` so parametrised URLs group into one row.

Streams are measured on their body, not only their headers (which is where Locust times them):
every token of ``POST /api/chat/stream`` and of the ``openai`` user's ``POST /v1/chat/completions``
is timed (:mod:`capkit.loadgen.tokens`: TTFT, ITL, TPOT, E2E, output tokens, cached apart; the
``llm`` records of ``load.jsonl``); the text stream also keeps its ``STREAM chat: ttft`` and
``STREAM chat: stream total`` rows, and the WebSocket user ``WS ws: connect``, ``WS ws: message``
(send → done) and ``STREAM ws: first token``. ``STREAM`` rows are derived measurements: the analysis
leaves them out of request totals. Rates (tokens/s) are never recorded as a latency.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import time

import websocket
from locust import between, task
from locust.contrib.fasthttp import FastHttpUser

from capkit.loadgen import DEFAULT_MIX
from capkit.loadgen.meters import METERS
from capkit.loadgen.openai_chat import chat_body
from capkit.loadgen.timing import record_stream
from capkit.loadgen.tokens import read_words, stream_openai
from capkit.records.llm import TokenTiming
from capkit.schemas import parse_mix


def _mix() -> dict[str, int]:
    """Weights per class: exactly the classes named in ``CAPKIT_MIX``, by default every component."""
    raw = os.environ.get("CAPKIT_MIX", "").strip() or DEFAULT_MIX
    return {name: int(w) for name, w in parse_mix(raw, whole=True).items()}


def _think():
    low, _, high = os.environ.get("CAPKIT_THINK", "0.5,1.5").partition(",")
    return between(float(low), float(high or low))


_PREFIX = os.environ.get("CAPKIT_ACCOUNT_PREFIX", "loadtest-")
_PASSWORD = os.environ.get("CAPKIT_ACCOUNT_PASSWORD", "loadtest-password")
_POOL = int(os.environ.get("CAPKIT_ACCOUNTS", "50"))
_next_account = itertools.count()
_MIX = _mix()
_REPEAT_SHARE = float(os.environ.get("CAPKIT_REPEAT_SHARE", "0.2"))

PROMPTS = [
    "How many users can one replica carry?",
    "Summarise yesterday's conversation volume.",
    "What does one more active user cost in CPU?",
    "Explain the binding constraint of this service.",
    "When should we scale out the chat API?",
]


class _TokenUser(FastHttpUser):
    abstract = True
    wait_time = _think()
    username: str = ""

    def on_start(self):
        if not self.username:
            self.username = f"{_PREFIX}{next(_next_account) % _POOL:04d}"
        with self.client.post("/api/auth/token", json={"username": self.username, "password": _PASSWORD},
                              name="POST /api/auth/token", catch_response=True) as resp:
            if resp.status_code != 200:
                resp.failure(f"token: HTTP {resp.status_code}")
                self.token = ""
                return
            self.token = resp.json()["access_token"]

    @property
    def auth(self) -> dict:
        return {"Authorization": f"Bearer {self.token}"}


class _Status:
    """What the recorder reads from a response: its status code (for frames that carry one)."""

    def __init__(self, status_code: int | None):
        self.status_code = status_code


def _fire(user, kind: str, name: str, ms: float, length: int = 0, exception=None, status: int | None = None):
    user.environment.events.request.fire(request_type=kind, name=name, response_time=ms, response_length=length,
                                         exception=exception, context={},
                                         response=_Status(status) if status is not None else None)


def _prompt(username: str) -> str:
    n = next(_next_account)
    prompt = PROMPTS[n % len(PROMPTS)]
    if random.random() >= _REPEAT_SHARE:
        prompt += f" (question {n} from {username})"
    return prompt


class ChatUser(_TokenUser):
    weight = _MIX.get("chat", 0)
    capkit_class = "chat"  # its name in a mix (and in capkit.schemas.REFERENCE_CLASSES)

    @task
    def send_message(self):
        self.client.post("/api/chat/message", json={"message": _prompt(self.username)}, headers=self.auth,
                         name="POST /api/chat/message")

    @task
    def stream_message(self):
        t0 = time.perf_counter()
        resp = self.client.post("/api/chat/stream", json={"message": _prompt(self.username)}, headers=self.auth,
                                name="POST /api/chat/stream", stream=True)
        if resp.status_code != 200 or getattr(resp, "_response", None) is None:
            if getattr(resp, "_response", None) is not None:
                try:
                    resp._response.read()  # drain the error body so the connection can be reused
                except Exception:  # noqa: BLE001
                    pass
            return  # recorded by Locust's own event (429 as rate-limited)
        cached = (resp.headers.get("x-cached") or "").lower() == "true"
        try:
            times, size, total = read_words(resp._response, t0)
        except Exception as exc:  # noqa: BLE001 - a broken stream is a failed request
            total = (time.perf_counter() - t0) * 1000
            _fire(self, "STREAM", "chat: stream total", total, exception=exc)
            record_stream("POST /api/chat/stream", TokenTiming(None, [], total, 0, cached=cached, ok=False))
            return
        if times:
            _fire(self, "STREAM", "chat: ttft", times[0], 1)
        _fire(self, "STREAM", "chat: stream total", total, size)
        record_stream("POST /api/chat/stream", TokenTiming.from_events(times, total, cached=cached, ok=bool(times)))


class OpenAIUser(_TokenUser):
    """Chat through the OpenAI-compatible ``/v1/chat/completions`` (stateless: no conversation rows)."""

    weight = _MIX.get("openai", 0)
    capkit_class = "openai"  # its name in a mix (and in capkit.schemas.REFERENCE_CLASSES)

    @task
    def complete(self):
        stream_openai(self, chat_body(_prompt(self.username)), headers=self.auth)


class AnalyticsAdmin(_TokenUser):
    weight = _MIX.get("analytics", 0)
    capkit_class = "analytics"  # its name in a mix (and in capkit.schemas.REFERENCE_CLASSES)
    username = f"{_PREFIX}admin"

    @task
    def dashboard(self):
        """One dashboard view: the summary, trends, top users and model metrics panels."""
        for path in ("/api/analytics/summary", "/api/analytics/trends", "/api/analytics/users",
                     "/api/analytics/models"):
            self.client.get(path, headers=self.auth, name=f"GET {path}")


class AuthUser(_TokenUser):
    weight = _MIX.get("auth", 0)
    capkit_class = "auth"  # its name in a mix (and in capkit.schemas.REFERENCE_CLASSES)

    @task
    def validate(self):
        self.client.get("/api/auth/validate", headers=self.auth, name="GET /api/auth/validate")


class WebSocketUser(_TokenUser):
    """Chat over ``/api/ws/chat`` with websocket-client (cooperative under Locust's gevent)."""

    weight = _MIX.get("ws", 0)
    capkit_class = "ws"  # its name in a mix (and in capkit.schemas.REFERENCE_CLASSES)
    ws = None

    def on_start(self):
        super().on_start()
        self._connect()

    def _connect(self):
        url = self.host.replace("http", "ws", 1).rstrip("/") + f"/api/ws/chat?token={self.token}"
        t0 = time.perf_counter()
        try:
            ws = websocket.create_connection(url, timeout=30)
            ready = json.loads(ws.recv())
            if ready.get("type") != "ready":
                ws.close()
                raise ConnectionError(f"not ready: {ready.get('detail', ready)}")
        except Exception as exc:  # noqa: BLE001 - a refused connection is a failed request
            _fire(self, "WS", "ws: connect", (time.perf_counter() - t0) * 1000, exception=exc)
            return
        _fire(self, "WS", "ws: connect", (time.perf_counter() - t0) * 1000)
        self.ws = ws
        METERS.incr("ws_connections")

    def on_stop(self):
        if self.ws is not None:
            self.ws.close()
            self.ws = None
            METERS.incr("ws_connections", -1)

    @task
    def chat(self):
        if self.ws is None:
            self._connect()
            return
        t0 = time.perf_counter()
        first, size = None, 0
        try:
            self.ws.send(json.dumps({"message": _prompt(self.username)}))
            while True:
                raw = self.ws.recv()
                size += len(raw.encode() if isinstance(raw, str) else raw)  # the answer's bytes, as HTTP rows count
                frame = json.loads(raw)
                kind = frame.get("type")
                if kind == "token" and first is None:
                    first = (time.perf_counter() - t0) * 1000
                elif kind == "done":
                    break
                elif kind == "error":
                    status = int(frame.get("status") or 0)
                    _fire(self, "WS", "ws: message", (time.perf_counter() - t0) * 1000,
                          exception=RuntimeError(f"{status}: {frame.get('detail')}"), status=status)
                    return
        except Exception as exc:  # noqa: BLE001 - the connection broke: record it, reconnect next time
            _fire(self, "WS", "ws: message", (time.perf_counter() - t0) * 1000, exception=exc)
            self.on_stop()
            return
        _fire(self, "WS", "ws: message", (time.perf_counter() - t0) * 1000, size)
        if first is not None:
            _fire(self, "STREAM", "ws: first token", first)


# Locust refuses user classes of weight 0 in the mix: drop them from this module's namespace.
for _name, _cls in list(globals().items()):
    if isinstance(_cls, type) and issubclass(_cls, _TokenUser) and not _cls.abstract and _cls.weight <= 0:
        del globals()[_name]
del _name, _cls
