"""What an autoscaler should scale on, chosen from a run's binding limit, and what one replica costs.

CPU utilization is the right signal only when CPU binds. When a pool binds first (model slots, the DB
pool) the replica is full at a CPU the autoscaler would read as spare — the reference service fills
its model slots at 0.8 of its 1 core — so a CPU target scales too late or never; the signal is then
the pool's own use, which the service exports (through a Prometheus adapter as a per-pod metric).
When no resource binds (the capacity is the p95 warning itself) the signal is the requests in
flight, from Little's law on the run's throughput and latency curves.

Each signal is a line per replica, ``value = a + b · users`` (capped at a pool's size), with the
covariance of (a, b) when it comes from a resource fit: the Monte-Carlo draws the per-user cost from it.
A pool fills along a curve, not a line (the reference service's slots read 95 % at 76 users where
their line says 101): its value is read between the measured steps (``points``), the line's slope
carrying it beyond them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from capkit.analysis.fits.regression import ResourceFit
from capkit.schemas import Basis, Interval, NotMeasured

# per-pod metrics the reference service exports for each pool (capkit/service/observability.py) and how a
# Prometheus adapter serves them: (metric name, series, query with the adapter's <<.Series>> templates).
# The busy-seconds rate is the mean in use, as the analysis reads a pool.
SERIES = "<<.Series>>{<<.LabelMatchers>>}"
POOL_METRICS = {
    "model_slots": ("capkit_model_slots_in_use", "capkit_model_slots_busy_seconds_total", f"rate({SERIES}[1m])"),
    "db_pool": ("capkit_db_pool_checked_out", "capkit_db_pool_busy_seconds_total", f"rate({SERIES}[1m])"),
}
IN_FLIGHT = ("capkit_http_requests_in_flight", "capkit_http_requests_in_flight", f"avg_over_time({SERIES}[1m])")
SHARED_KEYS = ("db_connections", "db_cpu_cores")  # the database's: more replicas do not relieve them


@dataclass(frozen=True)
class Signal:
    """The metric an autoscaler reads: ``kind`` ``cpu``/``memory`` (a Resource metric, utilization of
    the pod's request) or ``pods`` (a per-pod custom metric ``metric``, served by ``query``)."""

    kind: str
    metric: str  # what the HPA reads: "cpu", "memory", or a per-pod metric's name
    resource: str  # the capkit resource it follows: cpu_cores, rss_mib, model_slots, db_pool, in_flight, …
    why: str
    a: float  # value of one replica at no users
    b: float  # per user
    cov: np.ndarray = field(repr=False, default_factory=lambda: np.zeros((2, 2)))
    cap: float = math.inf  # a pool cannot read above its size
    short: str = ""  # the reason in a few words, for a headline
    points: tuple = ()  # (users, values) of the measured steps, non-decreasing: read between them
    series: str = ""  # a per-pod metric: the service's series behind it
    query: str = ""  # and the adapter's query of that series (its <<.Series>> templates)

    def value(self, users) -> np.ndarray:
        """The metric of one replica carrying ``users``."""
        u = np.asarray(users, dtype=float)
        if not self.points:
            return np.minimum(self.a + self.b * u, self.cap)
        xs, ys = self.points
        beyond = np.where(u > xs[-1], ys[-1] + self.b * (u - xs[-1]), ys[0] + self.b * (u - xs[0]))
        inside = (u >= xs[0]) & (u <= xs[-1])
        return np.minimum(np.where(inside, np.interp(u, xs, ys), beyond), self.cap)

    def users_at(self, value, da=0.0, db=0.0) -> np.ndarray:
        """Users one replica carries when its metric reads ``value`` — with the line's intercept and slope
        moved by ``da`` and ``db`` (arrays of draws: the Monte-Carlo's); ∞ where it never gets there."""
        da, db = np.broadcast_arrays(np.asarray(da, float), np.asarray(db, float))
        if not self.points:
            with np.errstate(divide="ignore", invalid="ignore"):
                b = self.b + db
                return np.where(b > 0, np.maximum((value - self.a - da) / np.where(b > 0, b, 1.0), 0.0), np.inf)
        f = lambda u: self.value(u) + da + db * u - value  # noqa: E731 (non-decreasing in u)
        lo, hi = np.zeros(da.shape), np.full(da.shape, 1.0)
        for _ in range(60):  # the bracket: double until the metric reaches the value (or give up)
            short = f(hi) < 0
            if not short.any():
                break
            hi = np.where(short, 2 * hi, hi)
        for _ in range(50):
            mid = (lo + hi) / 2
            below = f(mid) < 0
            lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
        return np.where(f(hi) < 0, np.inf, hi)


def line_of(fit: ResourceFit) -> tuple[float, float, np.ndarray]:
    """(a, b, cov of (a, b)) of a resource fit, its time term (if any) at the fit's mid-time."""
    params, cov = np.asarray(fit.params, float), np.asarray(fit.cov, float)
    if len(params) == 3:  # a = θ0 + θ2·t_mid: carry the time term into the intercept
        j = np.array([[1.0, 0.0, fit.t_mid_h], [0.0, 1.0, 0.0]])
        return float(params[0] + params[2] * fit.t_mid_h), float(params[1]), j @ cov @ j.T
    return float(params[0]), float(params[1]), cov[:2, :2]


def _usable(threshold) -> bool:
    return (threshold is not None and isinstance(threshold.users, Interval)
            and math.isfinite(threshold.users.estimate) and threshold.basis in (Basis.MEASURED, Basis.PROJECTED))


def choose_signal(result, users_per_replica: float) -> Signal | NotMeasured:
    """The signal to scale on for ``result`` (a :class:`~capkit.analysis.answer.result.CapacityResult`),
    from its binding limit; NotMeasured (why) when the metric it needs was not measured."""
    answer, fits = result.answer, result.resources.fits
    bind = answer.binding if _usable(answer.binding) else None
    key = bind.key if bind is not None else None
    cpu = fits.get("cpu_cores")
    cpu_text = cpu_short = ""
    if bind is not None and isinstance(cpu, ResourceFit):
        limit = result.resources.limits.cpu_cores
        at = cpu.baseline.estimate + cpu.per_user.estimate * bind.users.estimate
        cpu_text = f", reached at {at:.2g} cores of its {limit:g}-core limit ({100 * at / limit:.0f} %)"
        cpu_short = f", with CPU at {at:.2g} of {limit:g} core{'' if limit == 1 else 's'}"
    if key in ("cpu_cores", "rss_mib"):
        fit = fits.get(key)
        if not isinstance(fit, ResourceFit):
            return NotMeasured(f"the binding limit is {key} but it has no fit")
        a, b, cov = line_of(fit)
        kind, name = ("cpu", "CPU") if key == "cpu_cores" else ("memory", "memory")
        why = (f"{name} binds: it reaches {bind.describe_value()} at {bind.users.estimate:,.0f} users "
               f"({bind.basis}) before any other limit, so the autoscaler scales on {name} utilization "
               f"of the pod's request")
        return Signal(kind, kind, key, why, a, b, cov, short=f"{name} binds first")
    if key is not None and key not in SHARED_KEYS and isinstance(fits.get(key), ResourceFit):
        a, b, cov = line_of(fits[key])
        points = measured_points(result.resources.steps, key)
        metric, series, query = POOL_METRICS.get(key, (key, key, f"avg_over_time({SERIES}[1m])"))
        cap = result.resources.limits.limit_for(key)
        why = (f"the binding limit is {bind.metric.lower()} ({bind.describe_value()} at "
               f"{bind.users.estimate:,.0f} users, {bind.basis}){cpu_text}: CPU utilization would read as "
               f"spare while requests queue, so a CPU target would scale too late or never — scale on the "
               f"pool's own use, per pod, served by a Prometheus adapter")
        short = f"{bind.metric.lower()} fill first ({bind.users.estimate:,.0f} users{cpu_short}), not CPU"
        return Signal("pods", metric, key, why, a, b, cov, cap=cap if math.isfinite(cap) else math.inf, short=short,
                      points=points, series=series, query=query)
    # no resource of a replica binds (the capacity is the p95 warning, or the database's shared limit
    # binds): requests in flight, N − X·Z by Little's law on the run's curves
    if result.usl is None or result.latency is None:
        return NotMeasured("no resource binds and the requests in flight need the USL and latency models, "
                           f"which were not fitted ({result.errors.get('latency') or result.errors.get('usl')})")
    u = float(users_per_replica)
    in_flight = float(result.usl.predict(u)) * float(result.latency.predict([u])["mean_ms"].iloc[0]) / 1000
    shared = (f"the database's {bind.metric.lower()} binds: more replicas do not relieve it; "
              if key in SHARED_KEYS else "no resource of a replica binds before its capacity; ")
    why = (shared + f"the autoscaler scales on the requests in flight ({IN_FLIGHT[0]}), "
                    f"{in_flight:.3g} per replica at {u:,.0f} users (Little's law on the run's curves)")
    short = ("the database binds, not a replica" if key in SHARED_KEYS else
             "no resource binds before the p95 limit")
    return Signal("pods", IN_FLIGHT[0], "in_flight", why, 0.0, in_flight / u if u > 0 else 0.0, short=short,
                  series=IN_FLIGHT[1], query=IN_FLIGHT[2])


def measured_points(steps, key: str) -> tuple:
    """(users, mean value) of the valid steps that measured ``key`` (a repeated load averaged), made
    non-decreasing; () with fewer than two loads."""
    from capkit.analysis.answer.limits import valid_steps

    valid = valid_steps(steps)
    if key not in valid:
        return ()
    seen = valid[["users", key]].dropna().groupby("users")[key].mean().sort_index()
    if len(seen) < 2:
        return ()
    return seen.index.to_numpy(float), np.maximum.accumulate(seen.to_numpy(float))
