"""Collectors of resource samples: process tree (psutil), network, PostgreSQL, Redis, Prometheus.

Every collector has a ``source`` and a ``sample() -> dict[metric, value]``; the orchestrator
calls them once per sample interval.
"""

from capkit.metrics.network import LoopbackNetworkSampler
from capkit.metrics.postgres import PostgresCollector
from capkit.metrics.process import DbTarget, ProcessTreeSampler
from capkit.metrics.prometheus import DEFAULT_MAPPING, MetricMap, PrometheusCollector, parse_mappings
from capkit.metrics.redis_info import RedisCollector

__all__ = ["DbTarget", "LoopbackNetworkSampler", "ProcessTreeSampler", "PostgresCollector", "RedisCollector",
           "PrometheusCollector", "MetricMap", "parse_mappings", "DEFAULT_MAPPING"]
