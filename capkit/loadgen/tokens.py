"""Read streamed answers token by token and time every token (inside Locust processes only).

Two streams are read:

- OpenAI ``POST /v1/chat/completions`` with ``stream: true`` (server-sent events): a token event
  is a chunk whose ``delta`` carries content; the output token count is the server's
  ``usage.completion_tokens`` (asked for with ``stream_options.include_usage``), or the number of
  content chunks when the server sends no usage. Cached answers are marked by the server
  (``"capkit": {"cached": true}`` or ``X-Cached: true``).
- capkit's text stream ``POST /api/chat/stream``: every token the reference service sends after
  the first begins with whitespace (the service's own token boundary, ``agent.split_tokens``),
  so a token event is the arrival of a new whitespace-led word; the count equals the server's for
  the built-in model.

Each stream is timed from just before the request is sent (see :class:`capkit.records.llm.TokenTiming`).
Locust's own request row for the POST still times the headers.
"""

from __future__ import annotations

import json
import time

from capkit.loadgen.timing import record_stream
from capkit.records.llm import TokenTiming


class StreamError(Exception):
    """The stream broke or is not what the endpoint promised."""


def _drain(resp) -> None:
    raw = getattr(resp, "_response", None)
    if raw is not None:
        try:
            raw.read()  # the rest of the body, so the connection can be reused
        except Exception:  # noqa: BLE001
            pass


def read_sse(raw, t0: float) -> tuple[list[float], int | None, bool, float]:
    """(token event times in ms since ``t0``, the server's completion_tokens or None, cached, E2E ms)."""
    times: list[float] = []
    usage = None
    cached = False
    while True:
        line = raw.readline(b"\n")
        if not line:
            break
        line = line.strip()
        if not line.startswith(b"data:"):
            continue  # comments, event names, blank separators
        data = line[5:].strip()
        now_ms = (time.perf_counter() - t0) * 1000
        if data == b"[DONE]":
            raw.read()
            return times, usage, cached, now_ms
        doc = json.loads(data)
        if doc.get("error") and not doc.get("choices"):
            raise StreamError(f"error event: {str(doc['error'])[:200]}")
        cached = cached or bool((doc.get("capkit") or {}).get("cached"))
        for choice in doc.get("choices") or ():
            delta = choice.get("delta") or {}
            if delta.get("content") or delta.get("reasoning_content"):
                times.append(now_ms)
                break
        if doc.get("usage"):
            usage = doc["usage"].get("completion_tokens")
    return times, usage, cached, (time.perf_counter() - t0) * 1000


def stream_openai(user, body: dict, *, headers: dict | None = None, path: str = "/v1/chat/completions",
                  name: str = "POST /v1/chat/completions") -> None:
    """Send one streamed chat completion and record its token timing under ``name``."""
    body = {**body, "stream": True, "stream_options": {"include_usage": True}}
    t0 = time.perf_counter()
    with user.client.post(path, json=body, headers=headers, name=name, stream=True, catch_response=True) as resp:
        if resp.status_code != 200 or getattr(resp, "_response", None) is None:
            _drain(resp)
            resp.failure(f"HTTP {resp.status_code}")
            return
        if not (resp.headers.get("content-type") or "").startswith("text/event-stream"):
            _drain(resp)
            resp.failure(f"not a stream of server-sent events ({resp.headers.get('content-type')})")
            return
        try:
            times, usage, cached, e2e = read_sse(resp._response, t0)
        except Exception as exc:  # noqa: BLE001 - a broken stream is a failed request
            record_stream(name, TokenTiming(None, [], (time.perf_counter() - t0) * 1000, 0, ok=False))
            resp.failure(f"stream broke: {exc}")
            return
        cached = cached or (resp.headers.get("x-cached") or "").lower() == "true"
    record_stream(name, TokenTiming.from_events(times, e2e, output_tokens=usage, cached=cached, ok=bool(times)))


def read_words(raw, t0: float) -> tuple[list[float], int, float]:
    """(token event times in ms since ``t0``, bytes, E2E ms) of a text stream of whitespace-led tokens."""
    first = raw.read(1)  # returns as soon as the first byte of the first token arrives
    if not first:
        return [], 0, (time.perf_counter() - t0) * 1000
    times = [(time.perf_counter() - t0) * 1000]
    size = len(first)
    while True:
        part = raw.readline(b" ")  # returns when the next token's leading space has arrived
        size += len(part)
        if not part.endswith(b" "):
            break  # the last token's tail: the body is complete
        times.append((time.perf_counter() - t0) * 1000)
    size += len(raw.read())  # readline leaves the last token's tail in the buffer
    return times, size, (time.perf_counter() - t0) * 1000


__all__ = ["StreamError", "read_sse", "read_words", "stream_openai"]
