"""Per-second, per-endpoint request statistics with HDR latency histograms.

Pure Python (no Locust): the Locust plugin feeds it from request events; the analysis
merges its histograms per step, so step percentiles are exact to the histogram's precision
(3 significant digits), never Locust's cumulative ones.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import IO, Iterable

from hdrh.histogram import HdrHistogram

# latency in microseconds, 1 µs .. 1 h, 3 significant digits
HDR_LOWEST_US = 1
HDR_HIGHEST_US = 3_600_000_000
HDR_DIGITS = 3


def new_histogram() -> HdrHistogram:
    return HdrHistogram(HDR_LOWEST_US, HDR_HIGHEST_US, HDR_DIGITS)


def decode_histogram(encoded: str) -> HdrHistogram:
    return HdrHistogram.decode(encoded)


def merge_histograms(encoded: Iterable[str]) -> HdrHistogram:
    """One histogram holding every value of the encoded ones."""
    total = new_histogram()
    for item in encoded:
        total.add(HdrHistogram.decode(item))
    return total


def status_class(status: int | None) -> str:
    if status is None or status == 0:
        return "status_other"
    return _STATUS_CLASSES.get(status // 100, "status_other")


_STATUS_CLASSES = {2: "status_2xx", 3: "status_2xx", 4: "status_4xx", 5: "status_5xx"}


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
        us = math.ceil(latency_ms * 1000)
        self.hist.record_value(HDR_LOWEST_US if us < HDR_LOWEST_US else HDR_HIGHEST_US if us > HDR_HIGHEST_US else us)

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


class JsonlWriter:
    """Appends one JSON object per line and flushes, so a killed run keeps what it wrote."""

    def __init__(self, stream: IO[str]):
        self._stream = stream

    def write(self, record: dict) -> None:
        self._stream.write(json.dumps(record, separators=(",", ":")) + "\n")
        self._stream.flush()


def read_new_lines(stream: IO[str]) -> list[dict]:
    """Read the complete lines appended since the last call (a partial last line is left)."""
    out = []
    while True:
        pos = stream.tell()
        line = stream.readline()
        if not line:
            break
        if not line.endswith("\n"):
            stream.seek(pos)
            break
        out.append(json.loads(line))
    return out


class GeneratorMeters:
    """Levels (``set``) and per-second counts (``add``) measured inside a load process, such as
    open WebSocket connections or arrival-rate runs dropped; the plugin writes them with each
    tick and the orchestrator stores them as ``generator`` samples."""

    def __init__(self) -> None:
        self.levels: dict[str, float] = {}
        self.counts: dict[str, float] = {}

    def set(self, name: str, value: float) -> None:
        self.levels[name] = value

    def incr(self, name: str, by: float = 1.0) -> None:
        self.levels[name] = self.levels.get(name, 0.0) + by

    def add(self, name: str, by: float = 1.0) -> None:
        self.counts[name] = self.counts.get(name, 0.0) + by

    def take(self) -> dict:
        """``{"levels": …, "counts": …}`` with the counts since the previous call (then reset)."""
        counts, self.counts = self.counts, {}
        return {"levels": dict(self.levels), "counts": counts}


# one per load process: the scenarios and the plugin share it
METERS = GeneratorMeters()


def combine_meters(parts: list[dict]) -> dict[str, float]:
    """Sum levels and counts of several processes (workers) into one ``metric -> value``."""
    out: dict[str, float] = {}
    for part in parts:
        for kind in ("levels", "counts"):
            for name, value in (part.get(kind) or {}).items():
                out[name] = out.get(name, 0.0) + float(value)
    return out
