"""A circuit breaker: after N consecutive failures it opens for T seconds, then probes half-open."""

from __future__ import annotations

import threading
import time
from typing import Callable

from capkit.service.unavailable import Unavailable

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


class CircuitOpen(Unavailable):
    """Raised at once, without touching the dependency, while the breaker is open."""


class CircuitBreaker:
    """Counts consecutive failures of a dependency and fails fast while it is known to be down.

    Parameters
    ----------
    name : str
        What is guarded (``"database"``), used in messages and metrics.
    failures : int
        Consecutive failures that open the breaker.
    reset_s : float
        Seconds it stays open before one half-open probe is let through.
    """

    def __init__(self, name: str, *, failures: int, reset_s: float, clock: Callable[[], float] = time.monotonic):
        self.name = name
        self.failures = failures
        self.reset_s = reset_s
        self._clock = clock
        self._lock = threading.Lock()
        self._state = CLOSED
        self._consecutive = 0
        self._opened_at = 0.0
        self._probe_in_flight = False
        self.opened_total = 0

    @property
    def state(self) -> str:
        with self._lock:
            if self._state == OPEN and self._clock() - self._opened_at >= self.reset_s:
                return HALF_OPEN
            return self._state

    def before(self) -> None:
        """Call before using the dependency: raises :class:`CircuitOpen` while it must not be used."""
        with self._lock:
            if self._state == CLOSED:
                return
            remaining = self._opened_at + self.reset_s - self._clock()
            if self._state == OPEN and remaining > 0:
                raise CircuitOpen(f"{self.name} unavailable (circuit open)", retry_after=remaining)
            if self._probe_in_flight:  # one probe at a time while half-open
                raise CircuitOpen(f"{self.name} unavailable (circuit half-open, probing)", retry_after=1)
            self._state = HALF_OPEN
            self._probe_in_flight = True

    def success(self) -> None:
        with self._lock:
            self._state = CLOSED
            self._consecutive = 0
            self._probe_in_flight = False

    def failure(self) -> None:
        with self._lock:
            self._consecutive += 1
            self._probe_in_flight = False
            if self._state == HALF_OPEN or self._consecutive >= self.failures:
                if self._state != OPEN:
                    self.opened_total += 1
                self._state = OPEN
                self._opened_at = self._clock()

    def release(self) -> None:
        """The call ended without telling anything about the dependency's health."""
        with self._lock:
            if self._state == HALF_OPEN:
                self._state = OPEN  # keep it open-but-elapsed so the next call probes again
                self._opened_at = self._clock() - self.reset_s
            self._probe_in_flight = False
