"""Scrape a Prometheus text endpoint and map named series to capkit metrics.

A mapping is ``NAME=SERIES[:OP]``: ``SERIES`` is a sample name as exposed (label sets are
summed), ``OP`` is ``rate`` (per-second increase between scrapes, for counters), ``/N`` or
``*N``. A series name may hold colons (vLLM's ``vllm:num_requests_waiting``): what follows the
last colon is an operation when it is one of those, part of the name when it has an underscore,
and a mistyped operation otherwise (``:log``). Example: ``cpu_cores=process_cpu_seconds_total:rate``,
``rss_mib=process_resident_memory_bytes:/1048576``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import httpx

from capkit.errors import ConfigError

# the standard process_* metrics of Prometheus client libraries, in capkit's resource names,
# so that a service capkit did not start can still be measured
DEFAULT_MAPPING = (
    "cpu_cores=process_cpu_seconds_total:rate",
    "rss_mib=process_resident_memory_bytes:/1048576",
    "fds=process_open_fds",
)


@dataclass(frozen=True)
class MetricMap:
    name: str
    series: str
    op: str = ""  # "" | "rate" | "/" | "*"
    factor: float = 1.0

    @classmethod
    def parse(cls, text: str) -> "MetricMap":
        """Parse ``NAME=SERIES[:rate|:/N|:*N]``; raise :class:`ConfigError` naming the bad item."""
        name, sep, rest = text.partition("=")
        series, colon, op = rest.rpartition(":")
        if not colon:
            series, op = rest, ""
        elif op.strip() != "rate" and op.strip()[:1] not in "/*" and "_" in op:
            series, op = rest, ""  # a name with a colon (vLLM's ``vllm:num_requests_waiting``), no operation
        bad = ConfigError(f"metric mapping {text!r} is not NAME=SERIES[:rate|:/N|:*N] "
                          f"(example: --metric cpu_cores=process_cpu_seconds_total:rate)")
        if not sep or not name.strip() or not series.strip():
            raise bad
        op = op.strip()
        if op in ("", "rate"):
            return cls(name.strip(), series.strip(), op)
        if op[0] in "/*":
            try:
                factor = float(op[1:])
            except ValueError:
                raise bad from None
            if factor == 0 or factor != factor:
                raise bad
            return cls(name.strip(), series.strip(), op[0], factor)
        raise bad


def parse_mappings(items: list[str] | tuple[str, ...] | None) -> list[MetricMap]:
    """The mappings of ``--metric`` options, or :data:`DEFAULT_MAPPING` when none are given."""
    return [MetricMap.parse(i) for i in (items or DEFAULT_MAPPING)]


def parse_exposition(text: str) -> dict[str, float]:
    """Sum of the values of every sample name in a Prometheus text exposition."""
    from prometheus_client.parser import text_string_to_metric_families

    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            totals[sample.name] = totals.get(sample.name, 0.0) + float(sample.value)
    return totals


class PrometheusCollector:
    """Scrapes ``url`` once per sample and returns the mapped metrics.

    Parameters
    ----------
    url:
        The ``/metrics`` URL.
    mappings:
        What to keep (see the module docstring); :data:`DEFAULT_MAPPING` by default.
    source:
        The ``source`` of the stored samples: ``service`` when this endpoint is how the
        service's resources are measured (no ``--pid``), else ``prometheus``.
    check:
        Scrape once now and raise :class:`ConfigError` when the URL does not answer with
        metrics or none of the mapped series is exposed.
    """

    def __init__(self, url: str, mappings: list[MetricMap] | None = None, *, source: str = "prometheus",
                 timeout: float = 2.0, check: bool = True):
        self.url = url
        self.mappings = mappings or parse_mappings(None)
        self.source = source
        self._client = httpx.Client(timeout=timeout)
        self._prev: tuple[float, dict[str, float]] | None = None
        if check:
            totals = self._scrape_or_raise()
            missing = [m.series for m in self.mappings if m.series not in totals]
            if len(missing) == len(self.mappings):
                raise ConfigError(f"{url} exposes none of {', '.join(missing)}; map its own series with "
                                  f"--metric NAME=SERIES[:rate|:/N]")

    def _scrape_or_raise(self) -> dict[str, float]:
        try:
            resp = self._client.get(self.url)
            resp.raise_for_status()
            return parse_exposition(resp.text)
        except httpx.HTTPError as exc:
            raise ConfigError(f"cannot scrape Prometheus metrics at {self.url}: {type(exc).__name__}: {exc}") from None
        except ValueError as exc:
            raise ConfigError(f"{self.url} does not serve Prometheus text metrics: {exc}") from None

    def sample(self) -> dict[str, float]:
        try:
            totals = self._scrape_or_raise()
        except ConfigError:
            return {}  # a missed scrape must not end the run
        now = time.monotonic()
        out: dict[str, float] = {}
        prev = self._prev
        for m in self.mappings:
            if m.series not in totals:
                continue
            value = totals[m.series]
            if m.op == "rate":
                if prev is None or m.series not in prev[1] or now <= prev[0]:
                    continue
                value = max(value - prev[1][m.series], 0.0) / (now - prev[0])
            elif m.op == "/":
                value /= m.factor
            elif m.op == "*":
                value *= m.factor
            out[m.name] = value
        self._prev = (now, totals)
        return out

    def close(self) -> None:
        self._client.close()
