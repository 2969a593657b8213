"""Model backends: the built-in CPU-bound generator and HTTP clients for Ollama's and OpenAI's
streaming APIs.

A backend has a ``kind``, a ``name`` and ``stream(prompt, max_tokens=None)``, an async iterator
of text tokens (at most ``max_tokens`` of them when it is given).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from typing import AsyncIterator

import httpx

_VOCAB = (
    "the a capacity is measured per user and each step adds load until latency grows because the "
    "queue fills so we scale out replicas when cpu crosses its threshold while cache hits keep the "
    "database calm and tokens stream back to you as they are produced by this model which does real "
    "work for every token it writes in order that the load test sees honest cost"
).split()


class BackendError(Exception):
    """The backend failed to produce an answer."""


def burn_cpu(cpu_ms: float, seed: bytes) -> bytes:
    """Spend ``cpu_ms`` milliseconds of this thread's CPU time hashing; return the last digest.

    Measured with the thread CPU clock, so time spent descheduled does not count.
    """
    digest = hashlib.sha256(seed).digest()
    if cpu_ms <= 0:
        return digest
    deadline = time.thread_time_ns() + int(cpu_ms * 1e6)
    while True:
        for _ in range(16):
            digest = hashlib.sha256(digest).digest()
        if time.thread_time_ns() >= deadline:
            return digest


class BuiltinBackend:
    """A deterministic text generator doing real CPU work per token.

    Parameters
    ----------
    name : str
        The model name reported to clients.
    tokens : int
        Tokens per answer (a request's ``max_tokens`` can only lower it, as it caps a real model).
    cpu_ms_per_token : float
        CPU milliseconds spent producing each token (on the event loop thread: it is the cost
        the capacity test measures).
    token_delay_ms : float
        Non-CPU pause between tokens, so concurrent streams interleave.
    """

    kind = "builtin"

    def __init__(self, name: str = "capkit-builtin", *, tokens: int = 48, cpu_ms_per_token: float = 0.25,
                 token_delay_ms: float = 4.0):
        self.name = name
        self.tokens = tokens
        self.cpu_ms_per_token = cpu_ms_per_token
        self.token_delay_ms = token_delay_ms

    def token(self, prompt_digest: bytes, i: int) -> str:
        h = hashlib.sha256(prompt_digest + i.to_bytes(4, "big")).digest()
        word = _VOCAB[int.from_bytes(h[:4], "big") % len(_VOCAB)]
        return word if i == 0 else " " + word

    async def stream(self, prompt: str, max_tokens: int | None = None) -> AsyncIterator[str]:
        base = hashlib.sha256(prompt.encode()).digest()
        delay = self.token_delay_ms / 1000
        n = self.tokens if max_tokens is None else min(self.tokens, max_tokens)
        for i in range(n):
            burn_cpu(self.cpu_ms_per_token, base + i.to_bytes(4, "big"))
            yield self.token(base, i)
            if delay and i < n - 1:
                await asyncio.sleep(delay)

    async def aclose(self) -> None:
        pass


class OllamaBackend:
    """Streams from an Ollama-compatible ``POST {url}/api/generate`` (newline-delimited JSON)."""

    kind = "ollama"

    def __init__(self, url: str, model: str, *, timeout_s: float = 60.0):
        self.url = url.rstrip("/")
        self.name = model
        self.timeout_s = timeout_s
        self._client: httpx.AsyncClient | None = None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=httpx.Timeout(self.timeout_s, connect=2.0))
        return self._client

    async def stream(self, prompt: str, max_tokens: int | None = None) -> AsyncIterator[str]:
        body = {"model": self.name, "prompt": prompt, "stream": True}
        if max_tokens is not None:
            body["options"] = {"num_predict": max_tokens}
        try:
            async with self._http().stream("POST", f"{self.url}/api/generate", json=body) as resp:
                if resp.status_code != 200:
                    raise BackendError(f"ollama {self.url} answered {resp.status_code}")
                async for line in resp.aiter_lines():
                    if not line.strip():
                        continue
                    chunk = json.loads(line)
                    if chunk.get("error"):
                        raise BackendError(f"ollama error: {chunk['error']}")
                    if chunk.get("response"):
                        yield chunk["response"]
                    if chunk.get("done"):
                        return
        except httpx.HTTPError as exc:
            raise BackendError(f"ollama {self.url} failed: {exc.__class__.__name__}: {exc}") from None
        except json.JSONDecodeError:
            raise BackendError(f"ollama {self.url} sent a line that is not JSON") from None

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


class OpenAIBackend:
    """Streams from an OpenAI-compatible ``POST {url}/v1/chat/completions`` (server-sent events).

    vLLM, llama.cpp's server, TGI, SGLang, Ollama's ``/v1`` and capkit's own service speak it.
    The prompt goes up as one user message; each content delta is one token.

    Parameters
    ----------
    url : str
        The server's base URL (``/v1/chat/completions`` is appended).
    model : str
        The model name sent upstream and reported to clients.
    api_key : str, optional
        Sent as ``Authorization: Bearer``; kept out of messages and ``repr``.
    timeout_s : float
        Read timeout between two events.
    """

    kind = "openai"

    def __init__(self, url: str, model: str, *, api_key: str | None = None, timeout_s: float = 60.0):
        self.url = url.rstrip("/")
        self.name = model
        self.timeout_s = timeout_s
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client: httpx.AsyncClient | None = None

    def __repr__(self) -> str:
        return f"OpenAIBackend({self.url!r}, {self.name!r})"

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=httpx.Timeout(self.timeout_s, connect=2.0),
                                             headers=self._headers)
        return self._client

    async def stream(self, prompt: str, max_tokens: int | None = None) -> AsyncIterator[str]:
        body = {"model": self.name, "messages": [{"role": "user", "content": prompt}], "stream": True}
        if max_tokens is not None:
            body["max_tokens"] = max_tokens
        where = f"openai {self.url}"
        try:
            async with self._http().stream("POST", f"{self.url}/v1/chat/completions", json=body) as resp:
                if resp.status_code != 200:
                    await resp.aread()
                    raise BackendError(f"{where} answered {resp.status_code}: {_error_message(resp)}")
                async for line in resp.aiter_lines():
                    # blank lines end events; ":" lines are keep-alive comments; event:/id:/retry: carry nothing here
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        return
                    for content in _deltas(json.loads(data), where):
                        yield content
        except httpx.HTTPError as exc:
            raise BackendError(f"{where} failed: {exc.__class__.__name__}: {exc}") from None
        except json.JSONDecodeError:
            raise BackendError(f"{where} sent an event that is not JSON") from None
        # without [DONE] the upstream stopped mid-answer (crashed, restarted): not a complete answer
        raise BackendError(f"{where} ended its stream without [DONE]")

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


def _deltas(chunk, where: str) -> list[str]:
    """The non-empty content deltas of one ``chat.completion.chunk`` (an error event raises)."""
    if not isinstance(chunk, dict):
        raise BackendError(f"{where} sent an event that is not a JSON object")
    if chunk.get("error"):
        err = chunk["error"]
        raise BackendError(f"{where} error: {err.get('message', err) if isinstance(err, dict) else err}")
    choices = chunk.get("choices")
    if not isinstance(choices, list):
        raise BackendError(f"{where} sent a chunk without a choices list")
    out = []
    for choice in choices:
        delta = choice.get("delta") if isinstance(choice, dict) else None
        if not isinstance(delta, dict):
            raise BackendError(f"{where} sent a choice without a delta object")
        content = delta.get("content")
        if content:
            out.append(str(content))
    return out


def _error_message(resp: httpx.Response) -> str:
    """The ``error.message`` of an OpenAI-style error body, else the start of the body."""
    try:
        err = resp.json().get("error")
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
    except (ValueError, AttributeError):
        pass
    return resp.text[:200].replace("\n", " ") or resp.reason_phrase
