"""A service at step level, as messy as real runs, for the capacity search's known-truth tests.

:func:`capkit.analysis.design.search.simulate_search` asks it for one step's measurements at a load.
A closed system: users think ``z`` s; throughput follows the USL (λ = 1 / (z + 0.1)) until a pool of
``pool`` slots, each held ``hold`` s per request, is full; p95 = 2.2 × R(N), R(N) = N/X − z (the
response-time law). What real runs add, each seeded:

- **a step-to-step offset**: the service's speed (its hold time) differs from step to step by a
  log-normal factor (``offset_sd``) — the per-generation time that moved ~30 % between steps of the
  reference service — and amplified near the knee, as a real one is;
- **slow drift** of that speed (a random walk, ``drift_sd`` per step);
- a step's **own sampling noise** of its p95 (log sd drawn in ``within_sd``), reported as the step's
  interval, and **bursts**: in ``burst_share`` of the steps a few slow requests lift the p95 by
  ``burst`` (log), of which the step's interval sees half;
- **carry-over**: a step after a heavier, overloaded one keeps ``carry`` of the log excess of the
  previous step's p95 (a backlog draining into it).

The truth is the typical step (:meth:`MessyService.typical`: the geometric mean over the step offset,
which a fit of many steps converges to; the drift is small beside it): :meth:`MessyService.crossing`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import stats


@dataclass
class ClosedSystem:
    """The noiseless closed system the module docstring describes; ``speed`` scales the pool's hold
    time (a slower service fills its pool at a lower throughput)."""

    sigma: float = 0.0005
    kappa: float = 0.000001
    z: float = 0.8
    pool: float = 8.0
    hold: float = 0.08
    cpu_per_req: float = 0.006

    @property
    def lam(self) -> float:
        return 1.0 / (self.z + 0.1)

    def offered(self, n, speed: float = 1.0):
        n = np.asarray(n, float)
        return self.lam * n / (1 + self.sigma * (n - 1) + self.kappa * n * (n - 1))

    def x(self, n, speed: float = 1.0):
        return np.minimum(self.offered(n), self.pool / (self.hold * speed))

    def p95(self, n, speed: float = 1.0):
        n = np.asarray(n, float)
        return 1000 * 2.2 * np.maximum(n / self.x(n, speed) - self.z, 0.1)

    def in_use(self, n, speed: float = 1.0):
        return np.minimum(self.offered(n) * self.hold * speed, self.pool)


@dataclass
class MessyService(ClosedSystem):
    """:class:`ClosedSystem` measured as messily as real runs (see the module docstring)."""

    offset_sd: float = 0.03
    drift_sd: float = 0.005
    within_sd: tuple[float, float] = (0.04, 0.12)
    burst_share: float = 0.05
    burst: float = 0.4
    carry: float = 0.2
    level: float = 0.95
    _drift: float = field(default=0.0, repr=False)
    _previous: tuple[float, float] | None = field(default=None, repr=False)  # (load, p95 ms) of the last step

    def typical(self, what: str, n) -> np.ndarray:
        """``what`` (``p95`` or ``model_slots``) of the typical step at ``n``: the geometric mean over
        the step-to-step offset (what a fit over many steps at that load converges to)."""
        nodes, weights = np.polynomial.hermite_e.hermegauss(41)
        weights = weights / weights.sum()
        curve = self.p95 if what == "p95" else self.in_use
        logs = np.array([np.log(np.maximum(curve(n, float(np.exp(self.offset_sd * z))), 1e-12)) for z in nodes])
        return np.exp(np.tensordot(weights, logs, axes=1))

    def crossing(self, what: str = "p95", value: float = 500.0) -> float:
        """The true load at which the typical step's ``what`` (:meth:`typical`) first reaches ``value``."""
        grid = np.linspace(1, 2000, 200_000)
        hit = np.flatnonzero(self.typical(what, grid) >= value)
        return float(grid[hit[0]]) if len(hit) else math.inf

    def __call__(self, n, rng: np.random.Generator) -> dict:
        self._drift += rng.normal(0, self.drift_sd)
        speed = float(np.exp(self._drift + rng.normal(0, self.offset_sd)))
        x = float(self.x(n, speed)) * float(np.exp(rng.normal(0, 0.02)))
        true = float(self.p95(n, speed))
        sd = rng.uniform(*self.within_sd)
        log_p95 = math.log(true) + rng.normal(0, sd)
        seen_sd = sd
        if rng.random() < self.burst_share:
            log_p95 += self.burst
            seen_sd = math.hypot(sd, self.burst / 2 / float(stats.norm.ppf(0.5 + self.level / 2)))
        if self._previous is not None and self._previous[0] > n and self._previous[1] > true:
            log_p95 += self.carry * (math.log(self._previous[1]) - math.log(true))
        p95 = math.exp(log_p95)
        self._previous = (float(n), p95)
        zq = float(stats.norm.ppf(0.5 + self.level / 2))
        return {"rps": x, "p95_ms": p95, "p95_low_ms": p95 * math.exp(-zq * seen_sd),
                "p95_high_ms": p95 * math.exp(zq * seen_sd), "cpu_cores": 0.02 + self.cpu_per_req * x,
                "model_slots": min(float(self.in_use(n, speed)) * float(np.exp(rng.normal(0, 0.03))), self.pool),
                "model_slots_size": self.pool, "error_rate": 0.0, "flags": ""}
