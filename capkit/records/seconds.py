"""Per-second, per-endpoint request statistics with HDR latency histograms.

Pure Python (no Locust): the Locust plugin feeds it from request events, the synthetic runs
from drawn requests; the analysis merges its histograms per step.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hdrh.histogram import HdrHistogram

from capkit.records.histograms import clamp_us, new_histogram


@dataclass
class EndpointSecond:
    """What one endpoint did in one second."""

    count: int = 0
    failures: int = 0
    rate_limited: int = 0
    status_2xx: int = 0
    status_4xx: int = 0
    status_5xx: int = 0
    status_other: int = 0
    bytes: int = 0
    latency_sum_ms: float = 0.0
    latency_max_ms: float = 0.0
    hist: HdrHistogram = field(default_factory=new_histogram)

    def record(self, latency_ms: float, status: int | None, nbytes: int, failed: bool) -> None:
        # the load generator's hot path (once per request): plain branches, no lookups by name
        self.count += 1
        if status == 429:
            self.rate_limited += 1  # rate-limited is not a saturation failure
        elif failed:
            self.failures += 1
        klass = status // 100 if status else 0
        if klass == 2 or klass == 3:
            self.status_2xx += 1
        elif klass == 4:
            self.status_4xx += 1
        elif klass == 5:
            self.status_5xx += 1
        else:
            self.status_other += 1
        if nbytes and nbytes > 0:
            self.bytes += int(nbytes)
        if latency_ms < 0:
            latency_ms = 0.0
        self.latency_sum_ms += latency_ms
        if latency_ms > self.latency_max_ms:
            self.latency_max_ms = latency_ms
        self.hist.record_value(clamp_us(latency_ms))

    def to_row(self, ts: int, method: str, name: str) -> dict:
        return {
            "ts": ts, "method": method, "name": name, "count": self.count, "failures": self.failures,
            "rate_limited": self.rate_limited, "status_2xx": self.status_2xx, "status_4xx": self.status_4xx,
            "status_5xx": self.status_5xx, "status_other": self.status_other, "bytes": self.bytes,
            "latency_sum_ms": round(self.latency_sum_ms, 3), "latency_max_ms": round(self.latency_max_ms, 3),
            "hdr": self.hist.encode().decode("ascii"),
        }


class SecondAggregator:
    """Accumulates request events into (second, method, name) buckets; flushes whole seconds."""

    def __init__(self) -> None:
        self._buckets: dict[tuple[int, str, str], EndpointSecond] = {}

    def record(self, ts: float, method: str, name: str, latency_ms: float, status: int | None,
               nbytes: int, failed: bool) -> None:
        key = (int(ts), method, name)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = EndpointSecond()
        bucket.record(latency_ms, status, nbytes, failed)

    def flush(self, before_ts: float | None = None) -> list[dict]:
        """Rows for every second earlier than ``before_ts`` (all when None), removed from memory."""
        keys = [k for k in self._buckets if before_ts is None or k[0] < int(before_ts)]
        keys.sort()
        return [self._buckets.pop(k).to_row(*k) for k in keys]
