"""The one noise model of the synthetic runs: what a step of a known truth draws, second by second.

Both the store path (:func:`capkit.synthetic.write_synthetic_run`) and the fast in-memory path
(:func:`capkit.synthetic.frames.synthetic_frames`) take a step's draws from :func:`draw_step`
with the step's own random stream, so that for one seed they see the same numbers.

A resource's deviation from its true mean in one step is the sum of three parts, as in real runs:

- a **step offset**, one normal draw per step (``SyntheticTruth.step_offset``: a neighbour, the
  allocator, a cache that settled differently), persisting for the whole step;
- **AR(1) noise** within the step (coefficient ``ar`` per second, stationary sd ``noise``), the
  way a sampled resource wanders;
- sparse **outliers** (``outlier_rate`` per second): positive spikes, exponential with mean
  ``outlier_scale`` × ``noise`` (a GC pause, a cache refill). Their expectation is part of the
  true mean (:meth:`SyntheticTruth.value`), so a fit's baseline has a known truth.

Latency has a per-step factor (``latency_offset``: the sd of its log, mean one), applied to every
request of the step; in a closed system it moves the step's throughput as the response-time law says.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import lfilter

BURN_IN = 5  # cycles a closed loop runs before its step's window opens


def ar1(rng: np.random.Generator, n: int, sd: float, ar: float) -> np.ndarray:
    """``n`` values of a stationary AR(1) with coefficient ``ar`` and marginal sd ``sd``."""
    shocks = rng.normal(0.0, sd * np.sqrt(1 - ar**2), n)
    first = rng.normal(0.0, sd)
    if n == 0:
        return shocks
    out = np.empty(n)
    out[0] = first
    if n > 1:
        out[1:] = lfilter([1.0], [1.0, -ar], shocks[1:], zi=[ar * first])[0]
    return out


def resource_noise(rng: np.random.Generator, truth, metric: str, seconds: int) -> np.ndarray:
    """Deviation of ``metric`` from its true mean for each of ``seconds`` seconds of one step
    (step offset + AR(1) + outliers, less the outliers' expectation already in the true mean)."""
    sd = float(truth.noise[metric])
    x = ar1(rng, seconds, sd, truth.ar) + rng.normal(0.0, float(truth.step_offset.get(metric, 0.0)))
    spikes = rng.random(seconds) < truth.outlier_rate
    x += np.where(spikes, rng.exponential(truth.outlier_scale * sd, seconds), 0.0)
    return x - outlier_mean(truth, metric)


def outlier_mean(truth, metric: str) -> float:
    """Expected outlier contribution per second of ``metric`` (rate × mean spike)."""
    return float(truth.outlier_rate * truth.outlier_scale * truth.noise[metric])


@dataclass
class StepDraws:
    """One step's draws: resource deviations per second, and its requests (completion times, ms)."""

    noise: dict  # metric -> array (one value per second of the step)
    times: np.ndarray
    latencies_ms: np.ndarray


def draw_step(rng: np.random.Generator, truth, users: int, start: float, seconds: int,
              requests_cap: int = 400) -> StepDraws:
    """Everything random in one step of ``truth`` at ``users``, from ``rng`` in a fixed order."""
    noise = {metric: resource_noise(rng, truth, metric, seconds) for metric in truth.baseline}
    factor = float(np.exp(rng.normal(0.0, truth.latency_offset) - truth.latency_offset**2 / 2))
    times = latencies = np.empty(0)
    if users and truth.usl is not None:
        times = closed_loop(rng, truth, users, start, start + seconds, factor)
    elif users:
        counts = np.minimum(rng.poisson(float(truth.throughput(users)), seconds), requests_cap)
        times = np.repeat(np.floor(start) + np.arange(seconds) + 0.5, counts)
    if len(times):
        latencies = rng.lognormal(np.log(factor * float(truth.median_ms(users))), truth.latency_sigma, len(times))
    return StepDraws(noise, times, latencies)


def closed_loop(rng, truth, users: int, start: float, end: float, factor: float = 1.0) -> np.ndarray:
    """Completion times of ``users`` closed-loop users: response (lognormal, mean ``factor`` × R(N))
    then think time U(Z/2, 3Z/2), from a random phase; so X = N / (R + Z) as the response-time law says."""
    mean_r = factor * float(truth.mean_ms(users)) / 1000
    cycle = mean_r + truth.think_time_s
    k = int(np.ceil((end - start) / max(cycle * 0.3, 1e-3))) + 2 + int(np.ceil(BURN_IN / 0.3))
    median = factor * float(truth.median_ms(users)) / 1000
    lat = rng.lognormal(np.log(median), truth.latency_sigma, (users, k))
    think = rng.uniform(0.5 * truth.think_time_s, 1.5 * truth.think_time_s, (users, k))
    # each user's loop starts BURN_IN cycles before the step, so the step sees it in equilibrium
    # (started at a uniform phase at the step, its throughput missed N / (R + Z) by −0.24 % at 16
    # users and +0.26 % at 28)
    phase = rng.uniform(0, cycle, (users, 1))
    done = start - BURN_IN * cycle + phase + np.cumsum(lat + think, axis=1) - think  # completion of each request
    return np.sort(done[(done >= start) & (done < end)])
