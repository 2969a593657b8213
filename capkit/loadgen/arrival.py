"""Open-model pacing for arrival-rate stages (imported only inside Locust processes: uses gevent).

A pacer greenlet schedules one *run* (one task execution) every ``1 / rate`` seconds (constant
spacing), or with exponential gaps of mean ``1 / rate`` (Poisson arrivals, seeded), and hands it
to a user that is waiting for it. A run that finds no waiting user waits in a backlog for the next
free user, at most ``CAPKIT_MAX_LATENESS_S`` seconds (default 1); older runs are dropped and
counted, as k6 counts ``dropped_iterations``: the generator could not send that request on time.

Every run keeps its *intended* start (its slot in the schedule). :func:`lateness_ms` tells the
request listener how late the current user's run started, so each request is also recorded with
its latency from the intended start (wrk2 / Vegeta: coordinated omission corrected).
"""

from __future__ import annotations

import os
import random
import time
import weakref
from collections import deque

import gevent
from gevent.event import Event

from capkit.loadgen.meters import METERS

DEFAULT_MAX_LATENESS_S = 1.0


class _Ticket:
    """A waiting user's place in the queue: set when a run is released to it, with its intended start."""

    __slots__ = ("event", "intended")

    def __init__(self) -> None:
        self.event = Event()  # gevent's Event takes no attributes (compiled): the start goes here
        self.intended: float | None = None

    def set(self, intended: float | None = None) -> None:
        self.intended = intended
        self.event.set()


class Pacer:
    """Hands out runs at ``rate`` per second to waiting users; ``rate=None`` means closed model."""

    def __init__(self) -> None:
        self.rate: float | None = None
        self.poisson = False
        self.max_lateness_s = float(os.environ.get("CAPKIT_MAX_LATENESS_S", DEFAULT_MAX_LATENESS_S))
        self._waiting: deque[_Ticket] = deque()
        self._backlog: deque[float] = deque()  # intended starts of runs no user was free for
        self._next: float | None = None
        self._rng = random.Random(0)
        self._greenlet = None
        # the user greenlet -> (intended start, actual start) of the run it is in
        self._runs: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def set_rate(self, rate: float | None, *, poisson: bool = False, seed: int | str = 0) -> None:
        if rate != self.rate or poisson != self.poisson:
            self.rate = rate
            self.poisson = poisson
            self._rng = random.Random(f"{seed}")  # the same seed gives the same gaps
            self._next = None  # restart the schedule at the new rate
            METERS.add("dropped", len(self._backlog))  # runs of the old rate that never started
            self._backlog.clear()
            if not rate:  # back to the closed model: let every waiting user go
                while self._waiting:
                    self._waiting.popleft().set()

    def start(self) -> None:
        if self._greenlet is None:
            self._greenlet = gevent.spawn(self._loop)

    def _gap(self, rate: float) -> float:
        return self._rng.expovariate(rate) if self.poisson else 1.0 / rate

    def _loop(self) -> None:
        while True:
            rate = self.rate
            if not rate:
                gevent.sleep(0.05)
                continue
            now = time.perf_counter()
            self._expire(now)
            if self._next is None:
                self._next = now
            if self._next > now:
                gevent.sleep(min(self._next - now, 0.05))
                continue
            # release every run whose time has come (catches up after a late wake-up)
            while self._next <= now and self.rate == rate:
                if self._waiting:
                    self._waiting.popleft().set(self._next)
                else:
                    self._backlog.append(self._next)
                self._next += self._gap(rate)

    def _expire(self, now: float) -> None:
        while self._backlog and now - self._backlog[0] > self.max_lateness_s:
            self._backlog.popleft()
            METERS.add("dropped")

    def wait_for_run(self) -> None:
        """Block the calling user until the pacer releases a run to it (a late one first)."""
        me = gevent.getcurrent()
        self._expire(time.perf_counter())
        if self._backlog:
            intended = self._backlog.popleft()
            self._runs[me] = (intended, time.perf_counter())
            return
        ready = _Ticket()
        self._waiting.append(ready)
        try:
            ready.event.wait()
        finally:
            if not ready.event.is_set():  # killed while waiting (users stopped): leave the queue
                try:
                    self._waiting.remove(ready)
                except ValueError:
                    pass
        intended = ready.intended
        if intended is None:  # released because the step went back to the closed model
            self._runs.pop(me, None)
        else:
            self._runs[me] = (intended, time.perf_counter())

    def lateness_ms(self) -> float | None:
        """How late the calling user's current run started (ms), None outside arrival-rate runs."""
        run = self._runs.get(gevent.getcurrent())
        return None if run is None else max(run[1] - run[0], 0.0) * 1000

    def leave(self) -> None:
        """The calling user is back in the closed model: its requests have no intended start."""
        self._runs.pop(gevent.getcurrent(), None)


PACER = Pacer()


def lateness_ms() -> float | None:
    """How late the current user's arrival-rate run started, in ms (None in the closed model)."""
    return PACER.lateness_ms()


def paced(original_wait_time):
    """A ``wait_time`` that waits for the pacer during arrival-rate stages, else ``original_wait_time``."""

    def wait_time(user):
        if PACER.rate:
            PACER.wait_for_run()
            return 0
        PACER.leave()
        return original_wait_time(user) if original_wait_time is not None else 0

    return wait_time
