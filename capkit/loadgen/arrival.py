"""Open-model pacing for arrival-rate stages (imported only inside Locust processes: uses gevent).

A pacer greenlet schedules one *run* (one task execution) every ``1 / rate`` seconds (constant
spacing), or with exponential gaps of mean ``1 / rate`` (Poisson arrivals, seeded), or with gamma
gaps of shape ``burstiness`` and mean ``1 / rate`` (vLLM's ``--burstiness``: coefficient of
variation 1/sqrt(burstiness); 1 is Poisson), or at the offsets of a replayed trace, and hands it
to a user that is waiting for it. A run that finds no waiting user waits in a backlog for the next
free user, at most ``CAPKIT_MAX_LATENESS_S`` seconds (default 1); older runs are dropped and
counted, as k6 counts ``dropped_iterations``: the generator could not send that request on time.

Every run keeps its *intended* start (its slot in the schedule). :func:`lateness_ms` tells the
request listener how late the current user's run started, so each request is also recorded with
its latency from the intended start (wrk2 / Vegeta: coordinated omission corrected).
"""

from __future__ import annotations

import hashlib
import math
import os
import random
import time
import weakref
from collections import deque

import gevent
import numpy as np
from gevent.event import Event

from capkit.loadgen.meters import METERS

DEFAULT_MAX_LATENESS_S = 1.0


class _Ticket:
    """A waiting user's place in the queue: set when a run is released to it, with its intended start."""

    __slots__ = ("event", "intended", "seq")

    def __init__(self) -> None:
        self.event = Event()  # gevent's Event takes no attributes (compiled): the start goes here
        self.intended: float | None = None
        self.seq: int | None = None

    def set(self, intended: float | None = None, seq: int | None = None) -> None:
        self.intended = intended
        self.seq = seq
        self.event.set()


def _seed_int(seed: int | str) -> int:
    return int(hashlib.sha256(f"{seed}".encode()).hexdigest()[:16], 16)


def gamma_gaps(rate: float, burstiness: float, n: int, seed: int | str = 0) -> np.ndarray:
    """``n`` gaps (s) of gamma-distributed arrivals: shape ``burstiness``, mean ``1 / rate``, so the
    coefficient of variation is 1/sqrt(burstiness) (vLLM ``--burstiness``; 1 is Poisson)."""
    return np.random.default_rng(_seed_int(seed)).gamma(burstiness, 1.0 / (rate * burstiness), size=n)


class Pacer:
    """Hands out runs at ``rate`` per second to waiting users; ``rate=None`` means closed model."""

    def __init__(self) -> None:
        self.rate: float | None = None
        self.poisson = False
        self.burstiness = 1.0
        self._schedule: list[tuple[float, int]] | None = None  # a trace's (offset s, sequence number)
        self._k = 0  # runs of this stage released so far (their sequence number without a schedule)
        self._np = np.random.default_rng(0)
        self.max_lateness_s = float(os.environ.get("CAPKIT_MAX_LATENESS_S", DEFAULT_MAX_LATENESS_S))
        self._waiting: deque[_Ticket] = deque()
        self._backlog: deque[tuple[float, int]] = deque()  # (intended start, seq) of runs no user was free for
        self._next: float | None = None
        self._start = 0.0
        self._rng = random.Random(0)
        self._greenlet = None
        # the user greenlet -> (intended start, actual start) of the run it is in
        self._runs: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def set_rate(self, rate: float | None, *, poisson: bool = False, seed: int | str = 0, burstiness: float = 1.0,
                 schedule: list[tuple[float, int]] | None = None) -> None:
        """Pace runs at ``rate`` (None: the closed model); ``poisson`` with ``burstiness`` ≠ 1: gamma gaps;
        ``schedule``: release a run at each (offset s from now, sequence number) instead, then no more."""
        if rate != self.rate or poisson != self.poisson or burstiness != self.burstiness or schedule is not None:
            self.rate = rate
            self.poisson = poisson
            self.burstiness = burstiness
            self._schedule = list(schedule) if schedule is not None else None
            self._k = 0
            self._rng = random.Random(f"{seed}")  # the same seed gives the same gaps
            self._np = np.random.default_rng(_seed_int(seed))
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
        if not self.poisson:
            return 1.0 / rate
        if self.burstiness == 1.0:
            return self._rng.expovariate(rate)
        return float(self._np.gamma(self.burstiness, 1.0 / (rate * self.burstiness)))

    def _first(self, now: float) -> float:
        # a trace starts on the next whole second of the clock: the per-second records then hold
        # whole seconds of it, and the step's analysis window (whole seconds) loses none of it
        wall = time.time()
        self._start = now + (math.ceil(wall) - wall if self._schedule is not None else 0.0)
        if self._schedule is None:
            return now
        return self._start + self._schedule[0][0] if self._schedule else math.inf

    def _advance(self, rate: float) -> None:
        self._k += 1
        if self._schedule is None:
            self._next += self._gap(rate)
        else:
            self._next = self._start + self._schedule[self._k][0] if self._k < len(self._schedule) else math.inf

    def _seq(self) -> int:
        return self._schedule[self._k][1] if self._schedule is not None else self._k

    def _loop(self) -> None:
        while True:
            rate = self.rate
            if not rate:
                gevent.sleep(0.05)
                continue
            now = time.perf_counter()
            self._expire(now)
            if self._next is None:
                self._next = self._first(now)
            if self._next > now:
                gevent.sleep(min(self._next - now, 0.05))
                continue
            # release every run whose time has come (catches up after a late wake-up)
            while self._next <= now and self.rate == rate:
                if self._waiting:
                    self._waiting.popleft().set(self._next, self._seq())
                else:
                    self._backlog.append((self._next, self._seq()))
                self._advance(rate)

    def _expire(self, now: float) -> None:
        while self._backlog and now - self._backlog[0][0] > self.max_lateness_s:
            self._backlog.popleft()
            METERS.add("dropped")

    def wait_for_run(self) -> None:
        """Block the calling user until the pacer releases a run to it (a late one first)."""
        me = gevent.getcurrent()
        self._expire(time.perf_counter())
        if self._backlog:
            intended, seq = self._backlog.popleft()
            self._runs[me] = (intended, time.perf_counter(), seq)
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
            self._runs[me] = (intended, time.perf_counter(), ready.seq)

    def seq(self) -> int | None:
        """The calling user's current run: its number in the stage's schedule (a trace's line), None
        outside arrival-rate runs."""
        run = self._runs.get(gevent.getcurrent())
        return None if run is None else run[2]

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


def run_seq() -> int | None:
    """The current user's run's number in its stage's schedule (a trace's request), None in the closed model."""
    return PACER.seq()


def paced(original_wait_time):
    """A ``wait_time`` that waits for the pacer during arrival-rate stages, else ``original_wait_time``."""

    def wait_time(user):
        if PACER.rate:
            PACER.wait_for_run()
            return 0
        PACER.leave()
        return original_wait_time(user) if original_wait_time is not None else 0

    return wait_time
