"""Added to a benchmark's locustfiles: measure the generator over its steady part.

BENCH_WINDOW_SKIP (seconds) and BENCH_WINDOW_OUT (a file): from SKIP seconds after the test
starts until it begins to stop, the requests Locust counted and the CPU time this process used
are written there as JSON. Start-up (imports, spawning) and shutdown stay outside the figure;
Locust spends about one CPU-second starting, which would otherwise weigh on short or shared runs.
"""
import json
import os
import resource
import time

import gevent
from locust import events

_mark: dict = {}


def _now(environment) -> tuple[int, float, float]:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return environment.stats.total.num_requests, r.ru_utime + r.ru_stime, time.monotonic()


@events.test_start.add_listener
def _start(environment, **_kwargs):
    def mark():
        gevent.sleep(float(os.environ["BENCH_WINDOW_SKIP"]))
        _mark["start"] = _now(environment)

    gevent.spawn(mark)


@events.test_stopping.add_listener
def _stopping(environment, **_kwargs):
    if "start" not in _mark:
        return  # stopped before the window opened: no file, the harness says so
    (n0, c0, t0), (n1, c1, t1) = _mark.pop("start"), _now(environment)
    with open(os.environ["BENCH_WINDOW_OUT"], "w") as fh:
        json.dump({"requests": n1 - n0, "cpu_s": c1 - c0, "seconds": t1 - t0}, fh)
