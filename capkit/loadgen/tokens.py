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
from dataclasses import dataclass, field

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


@dataclass
class SseAnswer:
    """What one streamed completion brought: token event times (ms since sending), the server's
    usage counts (None when it sent none), the cached mark, E2E (ms) and the answer's text."""

    times: list[float] = field(default_factory=list)
    completion_tokens: int | None = None
    prompt_tokens: int | None = None
    cached: bool = False
    e2e_ms: float = 0.0
    text: str = ""


def read_sse(raw, t0: float) -> SseAnswer:
    """Read an OpenAI stream of server-sent events to its end (``[DONE]`` or the last byte)."""
    out = SseAnswer()
    parts: list[str] = []
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
            out.e2e_ms, out.text = now_ms, "".join(parts)
            return out
        doc = json.loads(data)
        if doc.get("error") and not doc.get("choices"):
            raise StreamError(f"error event: {str(doc['error'])[:200]}")
        out.cached = out.cached or bool((doc.get("capkit") or {}).get("cached"))
        for choice in doc.get("choices") or ():
            delta = choice.get("delta") or {}
            if delta.get("content") or delta.get("reasoning_content"):
                out.times.append(now_ms)
                parts.append(delta.get("content") or "")  # the history resent holds the answer, not the reasoning
                break
        if doc.get("usage"):
            out.completion_tokens = doc["usage"].get("completion_tokens")
            out.prompt_tokens = doc["usage"].get("prompt_tokens")
    out.e2e_ms, out.text = (time.perf_counter() - t0) * 1000, "".join(parts)
    return out


def stream_openai(user, body: dict, *, headers: dict | None = None, path: str = "/v1/chat/completions",
                  name: str = "POST /v1/chat/completions", turn: int = 1) -> str | None:
    """Send one streamed chat completion and record its token timing under ``name`` (with its
    conversation ``turn``); the answer's text, or None when the request failed."""
    body = {**body, "stream": True, "stream_options": {"include_usage": True}}
    t0 = time.perf_counter()
    with user.client.post(path, json=body, headers=headers, name=name, stream=True, catch_response=True) as resp:
        if resp.status_code != 200 or getattr(resp, "_response", None) is None:
            _drain(resp)
            resp.failure(f"HTTP {resp.status_code}")
            return None
        if not (resp.headers.get("content-type") or "").startswith("text/event-stream"):
            _drain(resp)
            resp.failure(f"not a stream of server-sent events ({resp.headers.get('content-type')})")
            return None
        try:
            got = read_sse(resp._response, t0)
        except Exception as exc:  # noqa: BLE001 - a broken stream is a failed request
            record_stream(name, TokenTiming(None, [], (time.perf_counter() - t0) * 1000, 0, ok=False, turn=turn))
            resp.failure(f"stream broke: {exc}")
            return None
        cached = got.cached or (resp.headers.get("x-cached") or "").lower() == "true"
    record_stream(name, TokenTiming.from_events(got.times, got.e2e_ms, output_tokens=got.completion_tokens,
                                                cached=cached, ok=bool(got.times), turn=turn,
                                                input_tokens=got.prompt_tokens))
    return got.text if got.times else None


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


__all__ = ["SseAnswer", "StreamError", "read_sse", "read_words", "stream_openai"]
