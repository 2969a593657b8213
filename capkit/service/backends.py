"""Model backends: the built-in CPU-bound generator and an Ollama-compatible HTTP client.

A backend has a ``name`` and ``stream(prompt)``, an async iterator of text tokens.
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
        Tokens per answer.
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

    async def stream(self, prompt: str) -> AsyncIterator[str]:
        base = hashlib.sha256(prompt.encode()).digest()
        delay = self.token_delay_ms / 1000
        for i in range(self.tokens):
            burn_cpu(self.cpu_ms_per_token, base + i.to_bytes(4, "big"))
            yield self.token(base, i)
            if delay and i < self.tokens - 1:
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

    async def stream(self, prompt: str) -> AsyncIterator[str]:
        body = {"model": self.name, "prompt": prompt, "stream": True}
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
