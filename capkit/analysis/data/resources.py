"""Resource samples from every collector under one canonical name per resource.

The service's process tree (psutil) writes ``cpu_cores``, ``rss_mib``, ``db_connections``…;
the PostgreSQL, Redis and Prometheus collectors write their own names. Each canonical resource
lists the (source, metric, scale) it may come from, first match wins; a resource none of them
measured is simply absent, and the tables show it as "not measured".
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from capkit.analysis.data.steps import assign_steps

# canonical column -> candidates (source, metric name or prefix, scale to the canonical unit)
METRIC_SOURCES: dict[str, tuple[tuple[str, str, float], ...]] = {
    "cpu_cores": (("service", "cpu_cores", 1.0),),
    "rss_mib": (("service", "rss_mib", 1.0),),
    "db_connections": (("service", "db_connections", 1.0), ("postgres", "pg_connections_active", 1.0),
                       ("postgres", "pg_connections", 1.0), ("postgres", "connections", 1.0)),
    # the service's own bytes (its /metrics: response bodies) when it exports them; else the
    # loopback interface, which also carries the database's, Redis's and the collectors' traffic
    "network_kbps": (("prometheus", "service_sent_bytes_per_s", 1 / 1024), ("service", "network_kbps", 1.0)),
    "redis_memory_mib": (("redis", "redis_used_memory_mib", 1.0), ("redis", "used_memory_mib", 1.0),
                         ("redis", "redis_used_memory", 1 / 1048576), ("redis", "used_memory", 1 / 1048576)),
    "model_queue": (("service", "model_queue", 1.0), ("prometheus", "model_queue", 1.0),
                    ("prometheus", "capkit_model_queue_depth", 1.0), ("service", "model_queue_depth", 1.0)),
    # pools: the time average between scrapes (a busy-seconds counter's rate) before the gauge,
    # which is one point of a level that changes every few milliseconds
    "model_slots": (("prometheus", "model_slots_busy", 1.0), ("service", "model_slots_busy", 1.0),
                    ("prometheus", "model_slots_in_use", 1.0), ("service", "model_slots_in_use", 1.0)),
    "db_pool": (("prometheus", "db_pool_busy", 1.0), ("service", "db_pool_busy", 1.0),
                ("prometheus", "db_pool_checked_out", 1.0), ("service", "db_pool_checked_out", 1.0)),
    "model_slots_size": (("prometheus", "model_slots_size", 1.0), ("service", "model_slots_size", 1.0)),
    "db_pool_size": (("prometheus", "db_pool_size", 1.0), ("service", "db_pool_size", 1.0)),
    "db_cpu_cores": (("postgres", "pg_backend_cpu_cores", 1.0), ("postgres", "pg_cpu_cores", 1.0),
                     ("postgres", "db_cpu_cores", 1.0),
                     ("postgres", "cpu_cores", 1.0), ("postgres", "pg_cpu_percent", 0.01)),
}
# hit / miss rates per second (capkit.metrics.redis_info), then cumulative counters
CACHE_RATES = (("redis", "redis_hits_per_s", "redis_misses_per_s"),)
CACHE_COUNTERS = (("prometheus", "capkit_cache_hits", "capkit_cache_misses"),
                  ("redis", "redis_keyspace_hits", "redis_keyspace_misses"),
                  ("redis", "keyspace_hits", "keyspace_misses"))


def _matches(metric: pd.Series, name: str) -> pd.Series:
    """``name`` itself or a labelled series of it (``name{model="a"}``)."""
    return (metric == name) | metric.str.startswith(name + "{")


def resource_frame(samples: pd.DataFrame, steps: pd.DataFrame, warmup_s: float,
                   custom: tuple[str, ...] = ()) -> pd.DataFrame:
    """Wide per-second table over every source: ``ts, step, users`` and one column per measured
    canonical resource of :data:`METRIC_SOURCES` (labelled series of a metric are summed).

    Parameters
    ----------
    samples, steps : DataFrame
        ``RunData.samples`` and ``RunData.steps``.
    warmup_s : float
        Seconds trimmed from the start of each step.

    Returns
    -------
    DataFrame
        Rows inside a step's trimmed window only.
    """
    if samples.empty:
        return pd.DataFrame(columns=["ts", "step", "users"])
    # match on the few distinct (source, metric) pairs, then select rows with one isin per resource
    present = samples.groupby(["source", "metric"], sort=False).size().index
    parts = []
    sources = dict(METRIC_SOURCES)
    for name in custom:  # a target's own series with a --limit: as mapped, from its /metrics
        sources[name] = (("service", name, 1.0), ("prometheus", name, 1.0))
    for column, candidates in sources.items():
        for source, name, scale in candidates:
            names = [m for s, m in present if s == source and (m == name or m.startswith(name + "{"))]
            if not names:
                continue
            s = samples[(samples["source"] == source) & samples["metric"].isin(names)]
            if len(names) == 1:
                per_tick = s.groupby("ts")["value"].mean() * scale
            else:  # labelled series of one metric: average each per tick, then sum them
                per_tick = s.groupby(["ts", "metric"])["value"].mean().groupby(level="ts").sum() * scale
            parts.append(per_tick.rename(column))
            break
    if not parts:
        return pd.DataFrame(columns=["ts", "step", "users"])
    wide = pd.concat(parts, axis=1)
    wide.index.name = "ts"
    wide = wide.reset_index()
    # collectors tick at slightly different instants: align each to its whole second
    wide["ts"] = np.floor(wide["ts"]) + 0.5
    wide = wide.groupby("ts", as_index=False).mean()
    return assign_steps(wide, steps, warmup_s)


def step_resource_means(per_second: pd.DataFrame) -> pd.DataFrame:
    """Mean of every resource column per step (index ``step``)."""
    cols = [c for c in per_second.columns if c not in ("ts", "step", "users")]
    if per_second.empty or not cols:
        return pd.DataFrame(index=pd.Index([], name="step"))
    return per_second.groupby("step")[cols].mean()


def cache_hit_rate(samples: pd.DataFrame) -> float:
    """Share of cache lookups that hit over the run (from hit/miss rates or cumulative counters),
    NaN if not measured."""
    for source, hits_name, misses_name in CACHE_RATES:
        s = samples[samples["source"] == source]
        hits = s.loc[s["metric"] == hits_name, "value"].sum()
        misses = s.loc[s["metric"] == misses_name, "value"].sum()
        if hits + misses > 0:
            return float(hits / (hits + misses))
    for source, hits_name, misses_name in CACHE_COUNTERS:
        s = samples[samples["source"] == source]
        hits = s[_matches(s["metric"], hits_name)]
        misses = s[_matches(s["metric"], misses_name)]
        if hits.empty or misses.empty:
            continue
        dh = hits.groupby("metric")["value"].agg(lambda v: v.max() - v.min()).sum()
        dm = misses.groupby("metric")["value"].agg(lambda v: v.max() - v.min()).sum()
        if dh + dm > 0:
            return float(dh / (dh + dm))
    for source, name in (("redis", "redis_hit_ratio"), ("redis", "redis_hit_rate"),
                         ("prometheus", "cache_hit_ratio"), ("prometheus", "capkit_cache_hit_ratio")):
        s = samples[(samples["source"] == source) & _matches(samples["metric"], name)]
        if not s.empty:
            return float(s["value"].mean())
    return math.nan
