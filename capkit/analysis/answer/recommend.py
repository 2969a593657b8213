"""The seed's Capacity Recommendations, derived by stated rules from the measured results.

Each rule reads one result and, when it fires, says what it saw and what to do; the rule's
text is shown with it so a reader can check the reasoning.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from capkit.analysis.fits.regression import ResourceFit
from capkit.schemas import BINDING_ACTIONS, DEFAULT_CRITERIA, RESOURCES, Interval


def recommendations(resources, *, diagnostics: pd.DataFrame | None = None, latency=None,
                    cache_hit_rate: float = math.nan, db_connection_share: float = 0.8, min_cache_hit_rate: float = 0.5,
                    max_rate_limited_share: float = 0.01, answer=None,
                    p95_ms: float = DEFAULT_CRITERIA.p95_warning_ms) -> pd.DataFrame:
    """Recommendations with the rule that produced each.

    Parameters
    ----------
    resources : ResourceCapacity
    diagnostics : DataFrame, optional
        :func:`~capkit.analysis.fits.diagnostics.regression_diagnostics` (non-linearity, leaks).
    latency : LatencyModel, optional
        Where p95 crosses ``p95_ms`` (the criteria's warning threshold).
    cache_hit_rate : float
        Measured share of cache hits (NaN: not measured).
    db_connection_share : float
        DB connections at or above this share of the limit at any measured step → pooling.
    min_cache_hit_rate : float
        Hit rate below this → caching.
    max_rate_limited_share : float
        429 share above this → rate-limit note.

    Returns
    -------
    DataFrame
        ``Rule``, ``Finding``, ``Recommendation``.
    """
    rows = []

    def add(rule, finding, action):
        rows.append({"Rule": rule, "Finding": finding, "Recommendation": action})

    binding = resources.binding
    if answer is not None:
        bind = answer.binding
        if bind is not None and isinstance(bind.users, Interval) and bind.basis in ("measured", "projected"):
            add("binding limit → its action",
                f"{bind.metric} reaches {bind.describe_value()} first: ~{bind.users.estimate:,.0f} users "
                f"({bind.basis}, {bind.range_text()})", BINDING_ACTIONS.get(bind.key, "Scale out"))
        else:
            add("binding limit → its action", "no limit was reached within the measured or projected loads",
                "Measure higher loads (capkit plan searches for the knee) before planning beyond them")
    elif binding is not None:
        label, unit = RESOURCES[binding.resource]
        add("binding constraint → its action",
            f"{label} binds first: ~{binding.capacity.estimate:,.0f} users per replica "
            f"(plan for {binding.capacity.low:,.0f})",
            BINDING_ACTIONS.get(binding.resource, "Scale out"))
    else:
        add("binding constraint → its action", "no measured resource reaches its limit within the trend",
            "Measure higher loads (capkit plan searches for the knee) before planning beyond them")
    steps = resources.steps
    loaded = steps[steps["users"] > 0]
    if "db_connections" in steps and loaded["db_connections"].notna().any():
        top = float(loaded["db_connections"].max())
        share = top / resources.limits.db_connections
        fit = resources.fits.get("db_connections")
        near = (isinstance(fit, ResourceFit) and isinstance(fit.capacity, Interval) and binding is not None
                and fit.capacity.low <= 1.5 * binding.capacity.low)
        if share >= db_connection_share or (near and binding.resource != "db_connections"):
            add(f"DB connections ≥ {db_connection_share:.0%} of the limit, or within 1.5× of the binding capacity",
                f"up to {top:.1f} of {resources.limits.db_connections:g} connections in use ({share:.0%})",
                "Use connection pooling (PgBouncer) and cache frequent queries")
    if math.isfinite(cache_hit_rate) and cache_hit_rate < min_cache_hit_rate:
        add(f"cache hit rate < {min_cache_hit_rate:.0%}", f"cache hit rate {cache_hit_rate:.0%}",
            "Cache frequent queries and responses longer (TTL), check cache keys")
    if len(loaded) and loaded["requests"].sum() > 0:
        limited = float(loaded["rate_limited"].sum() / loaded["requests"].sum())
        if limited > max_rate_limited_share:
            add(f"429 share > {max_rate_limited_share:.0%}",
                f"{limited:.1%} of requests were rate-limited (429), counted apart from failures",
                "Rate limits are protecting the service: keep them, or raise them if this load is legitimate")
    saturated = steps[steps["flags"].str.contains("generator_saturated", na=False)]
    if len(saturated):
        add("generator CPU ≥ 90 % in a step",
            f"the load generator was saturated at {', '.join(map(str, saturated['users']))} users (steps left out)",
            "Add load processes (`capkit plan --processes N`) or workers on another machine")
    if diagnostics is not None and len(diagnostics):
        for row in diagnostics.itertuples():
            if getattr(row, "leak_suspect", False) is True:
                add("drift at constant load", f"{row.Resource}: {row.note}",
                    "Look for a leak (objects, connections, caches without bounds) before trusting the capacity")
            if getattr(row, "nonlinear", False) is True:
                add("significant quadratic term", f"{row.Resource}: {row.note}",
                    "Treat the linear capacity as an upper bound; measure up to the projected limit")
    if latency is not None:
        warn = latency.users_at(p95_ms)
        if binding is not None and np.isfinite(warn.estimate) and warn.estimate < binding.capacity.low:
            add("p95 warning crossed before the binding capacity",
                f"p95 passes {p95_ms:g} ms at ~{warn.estimate:,.0f} users "
                f"(from {warn.low:,.0f})",
                "Investigate bottlenecks and enable aggressive caching; latency limits a replica before resources")
    return pd.DataFrame(rows, columns=["Rule", "Finding", "Recommendation"])
