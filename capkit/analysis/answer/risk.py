"""Uncertainty carried through: how likely the peak breaches the SLO under a policy, and the replicas a
given risk needs.

Two things are uncertain. The capacity per replica (where p95 reaches its warning threshold, or the
first limit that ends a replica's useful load) is known as an interval: it is drawn from a split
log-normal whose median is the estimate and whose central ``level`` interval is the measured one
(each side its own spread). The per-user cost of the autoscaler's metric is known as a fit: (a, b)
is drawn from its normal approximation (for a pool read between its measured steps, the drawn line's
difference from the fitted one moves that curve). The policy's target is fixed in metric units, so a
cost drawn higher makes the HPA hold fewer users per replica, and lower, more. At the peak the HPA
settles at the fewest replicas whose metric is within target, ``ceil(peak / users at the target)``
(a line: ``ceil(peak · b / (target − a))``) within [min, max]; the peak breaches when
``peak / replicas`` exceeds the drawn capacity.

The replicas for a risk need no sampling: with the static plan's replicas ``r`` the peak breaches
when the capacity is below ``peak / r``, so ``r = ceil(peak / q)`` with ``q`` the capacity's
``risk`` quantile (plus the headroom).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from capkit.errors import ParameterError
from capkit.schemas import Interval


@dataclass(frozen=True)
class CapacityDistribution:
    """The capacity per replica as a split log-normal: median ``estimate``, ``low``/``high`` its
    central ``level`` interval."""

    estimate: float
    low: float
    high: float
    level: float = 0.95

    @classmethod
    def of(cls, interval: Interval) -> "CapacityDistribution":
        est, low, high = interval.estimate, interval.low, interval.high
        if not (math.isfinite(est) and est > 0):
            raise ParameterError(f"a capacity distribution needs a finite estimate > 0, got {est!r}")
        low = low if math.isfinite(low) and 0 < low <= est else est
        high = high if math.isfinite(high) and high >= est else est
        return cls(est, low, high, interval.level)

    @property
    def _z(self) -> float:
        return float(stats.norm.ppf(0.5 + self.level / 2))

    @property
    def sigmas(self) -> tuple[float, float]:
        """The spread of log capacity below and above the median."""
        return math.log(self.estimate / self.low) / self._z, math.log(self.high / self.estimate) / self._z

    def quantile(self, q: float) -> float:
        z = float(stats.norm.ppf(q))
        lo, hi = self.sigmas
        return self.estimate * math.exp(z * (lo if z < 0 else hi))

    def cdf(self, x) -> np.ndarray:
        x = np.asarray(x, float)
        lo, hi = self.sigmas
        with np.errstate(divide="ignore", invalid="ignore"):
            z = np.log(x / self.estimate)
            sd = np.where(z < 0, lo, hi)
            return np.where(sd > 0, stats.norm.cdf(z / np.where(sd > 0, sd, 1.0)), (z >= 0).astype(float))

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        z = rng.standard_normal(n)
        lo, hi = self.sigmas
        return self.estimate * np.exp(z * np.where(z < 0, lo, hi))


@dataclass(frozen=True)
class Risk:
    """The Monte-Carlo's answer at the peak."""

    peak_users: float
    breach_probability: float  # of the policy, at the peak
    standard_error: float  # its sampling error
    draws: int
    risk: float  # the risk the replicas below are planned for
    replicas_for_risk: int  # static replicas (with the headroom) for at most ``risk``
    static_breach_probability: float  # of the static plan's replicas (exact, no sampling)
    policy_replicas: tuple[int, int, int]  # 5th, 50th, 95th percentile of the replicas the HPA holds at the peak


def settled_replicas(peak: float, users_at_target, lo: int, hi: int) -> np.ndarray:
    """Replicas an HPA holds at ``peak`` users when one replica reads its target at ``users_at_target``
    (an array of draws): ⌈peak / users⌉ within [lo, hi] (a replica that never reaches the target: ``lo``;
    one at its target with no user: ``hi``)."""
    u = np.asarray(users_at_target, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        need = np.where(u > 0, np.ceil(peak / np.where(u > 0, u, 1.0) - 1e-9), hi)
    return np.clip(need, lo, hi).astype(int)


def peak_risk(capacity: CapacityDistribution, policy, peak_users: float, *, headroom: int, static_replicas: int,
              risk: float = 0.01, draws: int = 4000, seed: int = 0) -> Risk:
    """The probability that the peak breaches the capacity under ``policy``, by Monte-Carlo over the
    capacity and the signal's per-user cost; and the static replicas for at most ``risk``.

    Parameters
    ----------
    capacity : CapacityDistribution
    policy : Policy
        Its signal (a, b and their covariance), target users, min and max replicas.
    peak_users : float
    headroom : int
        Spare replicas added to the replicas for ``risk`` (as to the static plan).
    static_replicas : int
        The static plan's replicas: its breach probability, exactly.
    risk : float
        Highest breach probability wanted (0 < risk < 0.5).
    draws, seed : int
    """
    if not 0 < risk < 0.5:
        raise ParameterError(f"risk={risk!r} must be between 0 and 0.5 (e.g. 0.01)")
    if draws < 100:
        raise ParameterError(f"draws={draws!r}: the Monte-Carlo needs at least 100")
    rng = np.random.default_rng(seed)
    cap = capacity.sample(rng, draws)
    signal = policy.signal
    mean = np.array([signal.a, signal.b])
    cov = np.asarray(signal.cov, float)
    ab = rng.multivariate_normal(mean, cov, size=draws) if np.any(cov) else np.tile(mean, (draws, 1))
    target = float(signal.value(policy.target_users))
    at_target = signal.users_at(target, ab[:, 0] - signal.a, ab[:, 1] - signal.b)
    replicas = settled_replicas(peak_users, at_target, policy.min_replicas, policy.max_replicas)
    breach = peak_users / replicas > cap
    p = float(breach.mean())
    q = capacity.quantile(risk)
    for_risk = math.ceil(peak_users / q - 1e-9) + headroom if q > 0 else math.inf
    static = float(capacity.cdf(peak_users / max(static_replicas, 1)))
    pct = tuple(int(x) for x in np.percentile(replicas, [5, 50, 95], method="lower"))
    return Risk(peak_users, p, math.sqrt(max(p * (1 - p), 1.0 / draws) / draws), draws, risk, int(for_risk),
                static, pct)
