"""The machine around a load run: what else used its CPU, CPU steal, clock frequency.

A service's speed can move between steps at the same load (the reference service's time per
generation differed by ~30 % between two steps at one load); the usual causes are outside it — a
neighbour's CPU, steal by the hypervisor, a clock that changes frequency. This sampler records
them once a second (source ``machine``) so a step can be read beside them.
"""

from __future__ import annotations

import time

import psutil


class MachineSampler:
    """Machine-wide CPU busy and steal (cores, since the previous call) and mean clock (MHz)."""

    source = "machine"

    def __init__(self):
        self._prev = (time.monotonic(), psutil.cpu_times())

    def sample(self) -> dict[str, float]:
        now, times = time.monotonic(), psutil.cpu_times()
        t0, before = self._prev
        self._prev = (now, times)
        if now <= t0:
            return {}
        span = now - t0
        idle = ("idle", "iowait", "steal", "guest", "guest_nice")
        busy = sum(getattr(times, f) - getattr(before, f) for f in times._fields if f not in idle)
        out = {"machine_busy_cores": max(busy, 0.0) / span}
        if hasattr(times, "steal"):
            out["machine_steal_cores"] = max(times.steal - before.steal, 0.0) / span
        freq = psutil.cpu_freq()
        if freq is not None and freq.current:
            out["cpu_mhz"] = float(freq.current)
        return out
