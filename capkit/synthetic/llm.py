"""Seeded synthetic LLM records (``llm`` lines of ``load.jsonl``) with a known truth.

The truth: a model with ``slots`` concurrent generations; each user keeps one request in flight,
so above ``slots`` users the surplus waits and TTFT grows by ``queue_ms_per_user`` per user over
the slots; ITL is normal around ``itl_ms`` (sd ``itl_jitter_ms``); every answer has ``tokens``
output tokens; ``cached_share`` of answers are replayed by the cache (TTFT ``cached_ttft_ms``, no
gaps to speak of: ``cached_itl_ms``). Used by the fixture store (the LLM-serving page) and tests.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from capkit.records.llm import LlmSeconds, Slo, TokenTiming
from capkit.schemas import StagePlan


@dataclass
class LlmTruth:
    """Known parameters of a synthetic LLM service (see the module docstring)."""

    slots: int = 12
    ttft_ms: float = 40.0
    queue_ms_per_user: float = 60.0
    itl_ms: float = 20.0
    itl_jitter_ms: float = 2.0
    tokens: int = 24
    cached_share: float = 0.2
    cached_ttft_ms: float = 3.0
    cached_itl_ms: float = 0.05
    slo: Slo | None = None

    def ttft_median_ms(self, users: int) -> float:
        return self.ttft_ms + self.queue_ms_per_user * max(users - self.slots, 0)

    def e2e_ms(self, users: int) -> float:
        """True mean E2E of a generated answer at ``users``."""
        return self.ttft_median_ms(users) + (self.tokens - 1) * self.itl_ms


def synthetic_llm_records(plan: StagePlan, truth: LlmTruth, *, seed: int = 0, start: float = 1.7e9,
                          name: str = "POST /v1/chat/completions", requests_cap: int = 60) -> list[dict]:
    """``llm`` records for ``plan`` (closed loop: each user ``1000 / E2E`` answers a second)."""
    rng = np.random.default_rng(seed)
    agg = LlmSeconds(truth.slo)
    t = start
    for stage in plan.stages:
        if stage.users:
            per_s = stage.users * 1000.0 / truth.e2e_ms(stage.users)
            for sec in range(int(stage.seconds)):
                ts = int(t) + sec
                for _ in range(min(int(rng.poisson(per_s)), requests_cap)):
                    agg.record(ts + 0.5, name, _draw(rng, truth, stage.users))
        t += stage.seconds
    return [{"type": "llm", **row} for row in agg.flush()]


def _draw(rng, truth: LlmTruth, users: int) -> TokenTiming:
    cached = bool(rng.random() < truth.cached_share)
    n = truth.tokens
    if cached:
        ttft = truth.cached_ttft_ms * float(rng.lognormal(0, 0.2))
        gaps = np.abs(rng.normal(truth.cached_itl_ms, truth.cached_itl_ms / 4, n - 1))
    else:
        ttft = truth.ttft_median_ms(users) * float(rng.lognormal(0, 0.25))
        gaps = np.clip(rng.normal(truth.itl_ms, truth.itl_jitter_ms, n - 1), 0.01, None)
    times = ttft + np.concatenate([[0.0], np.cumsum(gaps)])
    return TokenTiming.from_events(times.tolist(), float(times[-1]) + 0.2, output_tokens=n, cached=cached)


__all__ = ["LlmTruth", "synthetic_llm_records"]
