"""The ModelManager: backends in priority order, each with a bounded queue, a concurrency
limit and health state; a request that cannot be served by one falls back to the next."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import AsyncIterator

import anyio

from capkit.service.backends import BuiltinBackend, OllamaBackend, OpenAIBackend
from capkit.service.observability import BusyClock
from capkit.service.unavailable import Unavailable

log = logging.getLogger(__name__)


class ModelUnavailable(Unavailable):
    """No backend could take the request."""


class _Skip(Exception):
    """This backend cannot take the request now (queue full, queue timeout)."""


class BackendSlot:
    """One backend plus its admission control and health."""

    def __init__(self, backend, *, max_concurrent: int, queue_size: int, queue_timeout_s: float,
                 first_token_timeout_s: float):
        self.backend = backend
        self.name = backend.name
        self.max_concurrent = max_concurrent
        self.queue_size = queue_size
        self.queue_timeout_s = queue_timeout_s
        self.first_token_timeout_s = first_token_timeout_s
        self.waiting = 0
        self.busy = BusyClock()  # slot-seconds in use: its rate is the mean of ``active``
        self.unhealthy_until = 0.0
        self.last_error: str | None = None
        self._sem: asyncio.Semaphore | None = None

    @property
    def active(self) -> int:
        """Generations holding a slot now."""
        return self.busy.level

    @property
    def healthy(self) -> bool:
        return time.monotonic() >= self.unhealthy_until

    async def acquire(self) -> float:
        """Wait for a generation slot; returns the seconds waited or raises :class:`_Skip`."""
        if self._sem is None:
            self._sem = asyncio.Semaphore(self.max_concurrent)
        if not self._sem.locked():
            await self._sem.acquire()
            self.busy.add(1)
            return 0.0
        if self.waiting >= self.queue_size:
            raise _Skip("queue full")
        self.waiting += 1
        t0 = time.monotonic()
        try:
            # a cancel scope in this task (not wait_for's extra task): no permit is lost on timeout
            with anyio.fail_after(self.queue_timeout_s):
                await self._sem.acquire()
        except TimeoutError:
            raise _Skip("queue timeout") from None
        finally:
            self.waiting -= 1
        self.busy.add(1)
        return time.monotonic() - t0

    def release(self) -> None:
        self.busy.add(-1)
        self._sem.release()

    def mark_unhealthy(self, reason: str, for_s: float) -> None:
        self.last_error = reason
        self.unhealthy_until = time.monotonic() + for_s


class Generation:
    """A started generation: ``model`` is known and the first token is in hand.

    Iterate it for the tokens (first included), at most ``max_tokens`` of them whatever the
    backend sends; the backend slot is released when the iteration ends or :meth:`aclose` is
    called. ``tokens`` counts the tokens handed out.
    """

    def __init__(self, slot: BackendSlot, agen, first: str | None, *, fallback: bool, queue_wait_s: float,
                 manager: "ModelManager", max_tokens: int | None = None):
        self.model = slot.name
        self.fallback = fallback
        self.queue_wait_s = queue_wait_s
        self.max_tokens = max_tokens
        self.tokens = 0
        self._slot = slot
        self._agen = agen
        self._first = first
        self._manager = manager
        self._released = False

    def _release(self) -> None:
        if not self._released:
            self._released = True
            self._slot.release()

    async def __aiter__(self) -> AsyncIterator[str]:
        try:
            if self._first is not None:
                self.tokens += 1
                yield self._first
            cap = self.max_tokens
            if cap is None or self.tokens < cap:
                async for token in self._agen:
                    self.tokens += 1
                    yield token
                    if cap is not None and self.tokens >= cap:
                        break  # an upstream that ignores max_tokens is cut here
            await self._agen.aclose()
        except Exception as exc:
            self._slot.mark_unhealthy(f"failed mid-stream: {exc}", self._manager.unhealthy_s)
            raise
        finally:
            self._release()
            self._manager._observe_tokens(self.model, self.tokens)

    async def aclose(self) -> None:
        try:
            await self._agen.aclose()
        finally:
            self._release()


class ModelManager:
    """Routes each prompt to the first backend (in priority order) that can take it.

    A backend is skipped when its queue is full or the wait passes its queue timeout; a
    backend that fails or is slower than its first-token timeout is marked unhealthy for
    ``unhealthy_s`` and tried last meanwhile. When none can serve: :class:`ModelUnavailable`.
    """

    def __init__(self, slots: list[BackendSlot], *, unhealthy_s: float = 5.0, metrics=None):
        if not slots:
            raise ValueError("a ModelManager needs at least one backend")
        self.slots = slots
        self.unhealthy_s = unhealthy_s
        self.metrics = metrics
        self.fallbacks = 0

    @property
    def primary(self) -> str:
        return self.slots[0].name

    def _observe_tokens(self, model: str, tokens: int) -> None:
        if self.metrics is not None:
            self.metrics.model_tokens.labels(model).inc(tokens)

    def _outcome(self, model: str, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.model_requests.labels(model, outcome).inc()

    async def open(self, prompt: str, max_tokens: int | None = None) -> Generation:
        """Start a generation on the best available backend (its first token already produced).

        Parameters
        ----------
        prompt : str
            The whole prompt.
        max_tokens : int, optional
            The most tokens to generate (the backend's own length when None).
        """
        ordered = [s for s in self.slots if s.healthy] + [s for s in self.slots if not s.healthy]
        reasons = []
        for slot in ordered:
            try:
                waited = await slot.acquire()
            except _Skip as exc:
                reasons.append(f"{slot.name}: {exc}")
                self._outcome(slot.name, "skipped")
                continue
            if self.metrics is not None:
                self.metrics.model_queue_wait.labels(slot.name).observe(waited)
            agen = slot.backend.stream(prompt, max_tokens)
            try:
                # same task as the later tokens: the backend's HTTP stream stays in one task
                with anyio.fail_after(slot.first_token_timeout_s):
                    first = await agen.__anext__()
            except StopAsyncIteration:
                first = None
            except Exception as exc:  # noqa: BLE001 - any backend failure means: try the next one
                reason = "first token timeout" if isinstance(exc, TimeoutError) else str(exc) or repr(exc)
                slot.release()
                slot.mark_unhealthy(reason, self.unhealthy_s)
                reasons.append(f"{slot.name}: {reason}")
                self._outcome(slot.name, "failed")
                log.warning("model backend %s failed, falling back: %s", slot.name, reason)
                try:
                    await agen.aclose()
                except Exception:  # noqa: BLE001
                    pass
                continue
            fallback = slot is not self.slots[0]
            if fallback:
                self.fallbacks += 1
                if self.metrics is not None:
                    self.metrics.model_fallbacks.labels(self.slots[0].name, slot.name).inc()
            self._outcome(slot.name, "ok")
            return Generation(slot, agen, first, fallback=fallback, queue_wait_s=waited, manager=self,
                              max_tokens=max_tokens)
        retry = min(s.queue_timeout_s for s in self.slots)
        raise ModelUnavailable("no model backend available (" + "; ".join(reasons) + ")", retry_after=retry)

    async def complete(self, prompt: str, max_tokens: int | None = None) -> tuple[str, Generation]:
        """Generate a whole answer; returns ``(text, generation)``."""
        gen = await self.open(prompt, max_tokens)
        parts = [token async for token in gen]
        return "".join(parts), gen

    def health(self) -> list[dict]:
        return [{"model": s.name, "kind": s.backend.kind, "healthy": s.healthy, "active": s.active,
                 "waiting": s.waiting, "max_concurrent": s.max_concurrent, "last_error": s.last_error}
                for s in self.slots]

    async def aclose(self) -> None:
        for slot in self.slots:
            await slot.backend.aclose()


def build_manager(settings, metrics=None) -> ModelManager:
    """The manager described by ``settings.model_backends`` (e.g. ``"openai,builtin"``)."""
    slots = []
    for kind in [k.strip() for k in settings.model_backends.split(",") if k.strip()]:
        if kind == "builtin":
            backend = BuiltinBackend(settings.model_name, tokens=settings.model_tokens,
                                     cpu_ms_per_token=settings.model_cpu_ms_per_token,
                                     token_delay_ms=settings.model_token_delay_ms)
        elif kind == "ollama":
            backend = OllamaBackend(settings.ollama_url, settings.ollama_model,
                                    timeout_s=settings.model_first_token_timeout_s)
        elif kind == "openai":
            key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
            backend = OpenAIBackend(settings.openai_url, settings.openai_model, api_key=key,
                                    timeout_s=settings.model_first_token_timeout_s)
        else:
            from capkit.errors import ConfigError

            raise ConfigError(f"unknown model backend {kind!r} in CAPKIT_MODEL_BACKENDS; "
                              "use builtin, ollama and/or openai")
        slots.append(BackendSlot(backend, max_concurrent=settings.model_max_concurrent,
                                 queue_size=settings.model_queue_size, queue_timeout_s=settings.model_queue_timeout_s,
                                 first_token_timeout_s=settings.model_first_token_timeout_s))
    return ModelManager(slots, unhealthy_s=settings.model_unhealthy_s, metrics=metrics)
