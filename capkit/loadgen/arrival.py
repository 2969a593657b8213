"""Open-model pacing for arrival-rate stages (imported only inside Locust processes: uses gevent).

A pacer greenlet releases one *run* (one task execution) every ``1 / rate`` seconds to a user
that is waiting for it. A scheduled run that finds no waiting user is dropped and counted, as
k6 counts ``dropped_iterations``: the generator could not send that request on time.
"""

from __future__ import annotations

import time
from collections import deque

import gevent
from gevent.event import Event

from capkit.loadgen.meters import METERS


class Pacer:
    """Hands out runs at ``rate`` per second to waiting users; ``rate=None`` means closed model."""

    def __init__(self) -> None:
        self.rate: float | None = None
        self._waiting: deque[Event] = deque()
        self._next: float | None = None
        self._greenlet = None

    def set_rate(self, rate: float | None) -> None:
        if rate != self.rate:
            self.rate = rate
            self._next = None  # restart the schedule at the new rate
            if not rate:  # back to the closed model: let every waiting user go
                while self._waiting:
                    self._waiting.popleft().set()

    def start(self) -> None:
        if self._greenlet is None:
            self._greenlet = gevent.spawn(self._loop)

    def _loop(self) -> None:
        while True:
            rate = self.rate
            if not rate:
                gevent.sleep(0.05)
                continue
            now = time.perf_counter()
            if self._next is None:
                self._next = now
            if self._next > now:
                gevent.sleep(min(self._next - now, 0.05))
                continue
            # release every run whose time has come (catches up after a late wake-up)
            while self._next <= now and self.rate == rate:
                if self._waiting:
                    self._waiting.popleft().set()
                else:
                    METERS.add("dropped")
                self._next += 1.0 / rate

    def wait_for_run(self) -> None:
        """Block the calling user until the pacer releases a run to it."""
        ready = Event()
        self._waiting.append(ready)
        try:
            ready.wait()
        finally:
            if not ready.is_set():  # killed while waiting (users stopped): leave the queue
                try:
                    self._waiting.remove(ready)
                except ValueError:
                    pass


PACER = Pacer()


def paced(original_wait_time):
    """A ``wait_time`` that waits for the pacer during arrival-rate stages, else ``original_wait_time``."""

    def wait_time(user):
        if PACER.rate:
            PACER.wait_for_run()
            return 0
        return original_wait_time(user) if original_wait_time is not None else 0

    return wait_time
