"""The capacity answer: where each limit is reached, from measurements near it, with its basis.

A users-at-limit figure is **measured** when valid steps bracket it (a load below the limit and one
at or above it). It is the root of a local fit over every step near it, its range carrying each
step's own noise and the step-to-step offset (:mod:`capkit.analysis.fits.crossing`): of log p95
for latency, of the plain value for a resource or a pool; the error limit, a step from working to
failing, is interpolated between the two bracketing steps, and its interval is the bracket.
Otherwise it is **projected** from a model — the latency model for p95; for a resource,
its line against users, or, when it follows throughput more closely (the utilization law
U = U₀ + D·X), its line against throughput carried through the USL curve X(N), so that a
resource bends where throughput does — and **extrapolated** when that lies beyond 1.25× the
highest valid measured load (never the headline). **not reached** when the model never gets there.

One answer feeds the headline, the Baseline Metrics table, the scaling thresholds, the replicas
and the recommendations, so they agree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from capkit.analysis.fits.crossing import chord, local_crossing
from capkit.schemas import SERVICE_EXITED, Basis, Interval, NotMeasured, RunStatus, load_basis


def valid_steps(steps: pd.DataFrame) -> pd.DataFrame:
    """Steps whose measurements describe the service: loaded, complete, with requests, the load
    reached and the generator not saturated. Unlike the fits' ``clean`` steps, steps flagged for
    errors count: an overloaded step is exactly the evidence that a limit was passed."""
    if steps.empty:
        return steps
    ok = (steps["users"] > 0) & steps["complete"] & (steps["requests"] > 0)
    flags = steps["flags"].fillna("")
    for bad in ("generator_saturated", "users_not_reached", "rate_not_reached", "no_requests", "workers_lost",
                "replicas_lost"):
        ok &= ~flags.str.contains(bad)
    return steps[ok].sort_values("users")


def measured_crossing(loads, values, threshold: float, level: float = 0.95) -> Interval | None:
    """Where ``values`` (one per load) first reach ``threshold``: the chord between the highest load
    below it and the first load at or above it, with that bracket as its interval
    (:func:`~capkit.analysis.fits.crossing.chord`). None when no load reaches it."""
    return chord(loads, values, threshold, level)


def p95_crossing(steps: pd.DataFrame, threshold: float, level: float = 0.95) -> Interval | None:
    """Where the steps' p95 reaches ``threshold``: the local fit over every step near it, each with
    its own interval, the step-to-step offset measured from them
    (:func:`~capkit.analysis.fits.crossing.local_crossing`). None when no step reaches it."""
    seen = steps[steps["p95_ms"].notna()]
    nan = pd.Series(np.nan, index=seen.index)
    found = local_crossing(seen["users"], seen["p95_ms"], threshold, lows=seen.get("p95_low_ms", nan),
                           highs=seen.get("p95_high_ms", nan), order=seen.get("step", seen["users"]), level=level)
    return found.interval if found is not None else None


FULL = 0.98  # a pool's share read at or above this is "full": its −log(1 − share) is clipped here


def resource_crossing(steps: pd.DataFrame, column: str, value: float, level: float = 0.95,
                      size: float | None = None) -> Interval | None:
    """Where a resource or a pool reaches ``value``: the local fit over every step near it (plain,
    not log; :func:`~capkit.analysis.fits.crossing.local_crossing`), so that a pool, which fills
    along a curve and is nearly flat near full, gets a range that carries the steps' scatter, not
    the bracket of whichever two steps happened to straddle it (``size``: the pool's, fitted on
    −log(1 − share)). None when no step reaches it."""
    seen = steps[steps[column].notna()]
    values, target = seen[column], value
    if size is not None and math.isfinite(size) and 0 < value < size:
        # a pool fills along a curve and stays full: in −log(1 − share) its approach to full is
        # about straight (an exponential approach to the size), where a line in the share bends;
        # a step read at the size itself (its share clipped) says only "full"
        share = np.minimum(values / size, FULL)
        values, target = -np.log1p(-share), -math.log1p(-value / size)
    found = local_crossing(seen["users"], values, target, order=seen.get("step", seen["users"]), level=level,
                           log=False)
    return found.interval if found is not None else None


def basis_of(users: Interval, top_load: float) -> Basis:
    """:func:`load_basis` of an interval's estimate."""
    return load_basis(users.estimate, top_load)


def locate(steps: pd.DataFrame, column: str, value: float, *, projection=None, level: float = 0.95,
           size: float | None = None) -> tuple[Interval | NotMeasured, Basis]:
    """Users at which step column ``column`` reaches ``value``: measured when the valid steps
    bracket it, else ``projection(value)`` (an Interval, or NotMeasured) labelled by its distance
    from the highest valid load."""
    valid = valid_steps(steps)
    if column not in valid or valid[column].notna().sum() == 0:
        return NotMeasured(f"{column} was not measured in this run"), Basis.NOT_MEASURED
    seen = valid[valid[column].notna()]
    found = (p95_crossing(seen, value, level) if column == "p95_ms"
             else measured_crossing(seen["users"], seen[column], value, level) if column == "error_rate"
             else resource_crossing(seen, column, value, level, size=size))
    if found is not None:
        return found, Basis.MEASURED
    if projection is None:
        return NotMeasured("no model to project it beyond the measured steps"), Basis.NOT_MEASURED
    projected = projection(value)
    if isinstance(projected, NotMeasured):
        return projected, Basis.NOT_MEASURED
    return projected, basis_of(projected, float(seen["users"].max()))


@dataclass(frozen=True)
class ServiceFailure:
    """The load at which the service failed: its process exited during that step, or a valid step
    failed more of its requests than the error limit allows (the first such load)."""

    users: float
    reason: str
    exited: bool = False  # its process died (not a step that failed its requests)

    def sentence(self) -> str:
        if self.users <= 0:
            return f"the service failed before any load ({self.reason})"
        return f"the service failed at {self.users:,.0f} users ({self.reason})"


def service_failure(meta, steps: pd.DataFrame, max_error_rate: float = 0.05) -> ServiceFailure | None:
    """Where the service failed in the run of ``meta`` (a :class:`~capkit.schemas.RunMeta`), from
    its steps; None when it never did."""
    if meta.status == RunStatus.INCOMPLETE and (meta.reason or "").startswith(SERVICE_EXITED):
        last = steps.sort_values("step").iloc[-1] if not steps.empty else None
        return ServiceFailure(float(last["users"]) if last is not None else 0.0, "its process exited",
                              exited=True)
    valid = valid_steps(steps)
    if valid.empty or "error_rate" not in valid:
        return None
    bad = valid[valid["error_rate"] > max_error_rate]
    if bad.empty:
        return None
    first = bad.iloc[0]
    return ServiceFailure(float(first["users"]), f"{100 * first['error_rate']:.0f} % of its requests failed")


def with_failure(steps: pd.DataFrame, failure: ServiceFailure | None) -> pd.DataFrame:
    """``steps`` plus, when the service's process died, its last load as a valid step whose every
    request failed: a crash is the strongest evidence that the error limit was passed there."""
    if failure is None or not failure.exited or failure.users <= 0:
        return steps
    row = {"step": -1, "users": failure.users, "complete": True, "requests": 1, "error_rate": 1.0, "flags": ""}
    return pd.concat([steps, pd.DataFrame([row])], ignore_index=True)


@dataclass(frozen=True)
class CapacityAnswer:
    """The one answer of a run: users per replica, the binding limit, and every threshold.

    ``capacity`` is the first limit a replica meets that makes it stop serving well (the p95
    warning, the error limit, CPU or memory at their critical level); ``binding`` the resource or
    pool at its critical level at the lowest load (the bottleneck behind it), else the same.
    """

    run_id: str
    stop_reason: str | None
    capacity: object  # Threshold
    binding: object  # Threshold
    thresholds: list
    failure: ServiceFailure | None = None

    @property
    def headline(self) -> str:
        """The answer in one sentence (plain text)."""
        return self.sentence()

    def sentence(self, strong=lambda text: text) -> str:
        """The answer in one sentence, its key number (``N users``) passed through ``strong``
        (e.g. Markdown bold) for the pages."""
        cap, bind = self.capacity, self.binding
        failed = f"; {self.failure.sentence()}" if self.failure is not None else ""
        if not isinstance(cap.users, Interval) or cap.basis in (Basis.NOT_REACHED, Basis.EXTRAPOLATED):
            why = (f"the nearest limit ({cap.metric}) is {cap.users_text()}" if cap is not None else "nothing measured")
            return (f"Capacity per replica not measured: {why}{failed} — measure "
                    f"{'lower' if self.failure is not None else 'higher'} loads (capkit plan searches for it).")
        text = (f"One replica carries about {strong(f'{cap.users.estimate:,.0f} users')} before {cap.describe()} "
                f"({cap.basis}, {cap.range_text()})")
        if bind is not cap and isinstance(bind.users, Interval) and math.isfinite(bind.users.estimate):
            text += (f"; the binding limit is {bind.metric.lower()}, {bind.describe_value()} at "
                     f"{bind.users.estimate:,.0f} users ({bind.basis})")
        return text + failed + "."

    def to_json(self) -> dict:
        """The documented machine-readable shape (``--json FILE``, ``tables/capacity.json``)."""
        def users(t):
            iv = t.users if isinstance(t.users, Interval) and math.isfinite(t.users.estimate) else None
            num = lambda v: float(v) if v is not None and math.isfinite(v) else None  # noqa: E731
            return {"users": num(iv.estimate) if iv else None, "low": num(iv.low) if iv else None,
                    "high": num(iv.high) if iv else None, "basis": str(t.basis)}

        measured = [t for t in self.thresholds if t.basis != Basis.NOT_MEASURED]
        return {
            "run_id": self.run_id, "stop_reason": self.stop_reason,
            "failure": ({"users": self.failure.users, "reason": self.failure.reason} if self.failure is not None
                        else None),
            "capacity": {"limit": self.capacity.metric, "severity": self.capacity.severity, **users(self.capacity)},
            "binding": {"limit": self.binding.metric, **users(self.binding)},
            "thresholds": [{"metric": t.metric, "severity": t.severity, "value": t.value, "unit": t.unit, **users(t)}
                           for t in measured],
            "not_measured": [{"metric": t.metric, "severity": t.severity, "value": t.value, "unit": t.unit,
                              "reason": t.users.reason}
                             for t in self.thresholds if t.basis == Basis.NOT_MEASURED],
        }


# which thresholds end a replica's useful load (capacity) and which are bottlenecks (binding)
CAPACITY_KEYS = ("p95", "errors", "cpu_cores", "rss_mib", "db_cpu_cores")
BINDING_KEYS = ("cpu_cores", "rss_mib", "db_cpu_cores", "model_slots", "db_pool", "db_connections")


def capacity_answer(run_id: str, thresholds: list, stop_reason: str | None = None,
                    failure: ServiceFailure | None = None) -> CapacityAnswer:
    """The answer from the scaling thresholds (see :func:`~capkit.analysis.answer.thresholds.scaling_thresholds`),
    and where the service failed, if it did."""
    def rank(t):
        if not isinstance(t.users, Interval) or not math.isfinite(t.users.estimate):
            return math.inf
        return t.users.estimate if t.basis in (Basis.MEASURED, Basis.PROJECTED) else 1e12 + t.users.estimate

    hard = [t for t in thresholds if t.key in CAPACITY_KEYS and t.severity in ("warning" if t.key == "p95" else
                                                                              "critical", "limit")]
    hard = [t for t in hard if not (t.key == "p95" and t.severity != "warning")]
    capacity = min(hard, key=rank) if hard else None
    pools = [t for t in thresholds if (t.key in BINDING_KEYS or t.key == t.metric) and t.severity == "critical"]
    candidates = [t for t in pools if rank(t) < math.inf]
    binding = min(candidates, key=rank) if candidates else capacity
    if capacity is None:
        capacity = binding
    return CapacityAnswer(run_id, stop_reason, capacity, binding, thresholds, failure)
