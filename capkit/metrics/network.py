"""Network bytes per second through an interface (the service's own bytes come from its /metrics)."""

from __future__ import annotations

import time

import psutil

from capkit.errors import ConfigError


class LoopbackNetworkSampler:
    """Bytes per second through an interface (loopback by default), in KB/s.

    Per-process network counters do not exist on Linux; on a machine where the service is the
    only talker on loopback, the interface rate is the service's traffic (both directions).
    """

    def __init__(self, nic: str = "lo"):
        counters = psutil.net_io_counters(pernic=True)
        if nic not in counters:
            raise ConfigError(f"network interface {nic!r} not found; choose one of {', '.join(counters)}")
        self.nic = nic
        self._prev = (time.monotonic(), counters[nic].bytes_sent)

    def sample(self) -> dict[str, float]:
        now = time.monotonic()
        sent = psutil.net_io_counters(pernic=True)[self.nic].bytes_sent
        t0, b0 = self._prev
        self._prev = (now, sent)
        if now <= t0:
            return {}
        return {"network_kbps": (sent - b0) / (now - t0) / 1024}
