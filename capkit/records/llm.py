"""LLM serving records: per-token timing of streamed answers, SLOs and goodput, per second.

The metric names and definitions are those of vLLM's ``benchmark_serving.py`` (and GuideLLM,
GenAI-Perf, LLMPerf), see ``docs/llm.md``:

- **TTFT**: request sent → first content token received.
- **ITL**: each gap between two consecutive token events of one stream (a distribution over all gaps).
- **TPOT**: per request, (E2E − TTFT) / (output_tokens − 1); only for answers of ≥ 2 tokens.
- **E2E**: request sent → last byte of the stream.
- **output tokens/s per request**: output_tokens / E2E (GenAI-Perf's per-request output throughput).
- **goodput**: requests per second that meet every bound of the run's SLO (DistServe, vLLM ``--goodput``).

Pure Python (no Locust, no pandas): the load generator aggregates with :class:`LlmSeconds`, the
synthetic runs too; the analysis merges the histograms per step. Rates are never put in a latency
histogram: per-request output tokens/s has its own histogram (``tps_hdr``, in milli-tokens/s).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field

from hdrh.histogram import HdrHistogram

from capkit.errors import ConfigError
from capkit.records.histograms import HDR_HIGHEST_US, clamp_us, new_histogram

SLO_KEYS = ("ttft", "itl", "tpot", "e2e")
CLASSES = ("generated", "cached")  # a cached answer is replayed, not generated: never mixed in
_SLO_ITEM = re.compile(r"^(ttft|itl|tpot|e2e|e2el)=(\d+(?:\.\d+)?)(ms|s)$")
TPS_SCALE = 1000  # tps_hdr holds output tokens/s × 1000 (HDR stores integers)


@dataclass(frozen=True)
class Slo:
    """Upper bounds in milliseconds, per metric (None: not bounded).

    A request meets the SLO when its TTFT, its TPOT, its E2E and *every* one of its ITL gaps are
    within their bounds (an ``itl`` bound is a bound on the request's largest gap: every token on
    time). Failed requests never meet it.
    """

    ttft_ms: float | None = None
    itl_ms: float | None = None
    tpot_ms: float | None = None
    e2e_ms: float | None = None

    @classmethod
    def parse(cls, text: str | None) -> "Slo | None":
        """``"ttft=500ms,itl=50ms,e2e=5s"`` (keys ttft, itl, tpot, e2e; units ms or s) or None.

        Raises :class:`ConfigError` with one line naming the bad item.
        """
        if text is None:
            return None
        bounds: dict[str, float] = {}
        for item in [i.strip() for i in text.split(",")]:
            m = _SLO_ITEM.match(item.lower())
            if not m:
                raise ConfigError(f"--slo item {item!r} is not METRIC=NUMBER(ms|s) with METRIC in ttft, itl, tpot, "
                                  f"e2e (example: --slo ttft=500ms,itl=50ms,e2e=5s)")
            key = "e2e" if m.group(1) == "e2el" else m.group(1)
            value = float(m.group(2)) * (1000.0 if m.group(3) == "s" else 1.0)
            if value <= 0 or key in bounds:
                raise ConfigError(f"--slo item {item!r}: bounds must be > 0 and given once each "
                                  f"(example: --slo ttft=500ms,itl=50ms,e2e=5s)")
            bounds[key] = value
        return cls(**{f"{k}_ms": v for k, v in bounds.items()})

    @classmethod
    def from_dict(cls, doc: dict | None) -> "Slo | None":
        return cls(**{k: v for k, v in doc.items() if k in {f"{s}_ms" for s in SLO_KEYS}}) if doc else None

    def to_dict(self) -> dict:
        return {f"{k}_ms": getattr(self, f"{k}_ms") for k in SLO_KEYS if getattr(self, f"{k}_ms") is not None}

    def to_text(self) -> str:
        return ",".join(f"{k}={getattr(self, f'{k}_ms'):g}ms" for k in SLO_KEYS if getattr(self, f"{k}_ms") is not None)

    def checks(self, timing: "TokenTiming") -> dict[str, bool]:
        """Per bound of this SLO: did ``timing`` meet it?"""
        values = {"ttft": timing.ttft_ms, "itl": max(timing.itl_ms, default=0.0), "tpot": timing.tpot_ms,
                  "e2e": timing.e2e_ms}
        out = {}
        for key in SLO_KEYS:
            bound = getattr(self, f"{key}_ms")
            if bound is not None:
                value = values[key]
                # no TPOT for a one-token answer: nothing to be late
                out[key] = timing.ok and (value is None and key == "tpot" or value is not None and value <= bound)
        return out


@dataclass
class TokenTiming:
    """One streamed answer as the client saw it (milliseconds from sending the request)."""

    ttft_ms: float | None
    itl_ms: list[float]
    e2e_ms: float
    output_tokens: int  # the server's count (usage.completion_tokens) when it gives one
    cached: bool = False
    ok: bool = True
    turn: int = 1  # the request's depth in its conversation (1: its first turn, or a single request)
    input_tokens: int | None = None  # the server's usage.prompt_tokens (history included), None when not sent

    @classmethod
    def from_events(cls, token_times_ms: list[float], e2e_ms: float, *, output_tokens: int | None = None,
                    cached: bool = False, ok: bool = True, turn: int = 1,
                    input_tokens: int | None = None) -> "TokenTiming":
        """From the arrival times of the token events (ms since the request was sent)."""
        ttft = token_times_ms[0] if token_times_ms else None
        gaps = [b - a for a, b in zip(token_times_ms, token_times_ms[1:])]
        n = len(token_times_ms) if output_tokens is None else int(output_tokens)
        return cls(ttft, gaps, e2e_ms, n, cached, ok, turn, None if input_tokens is None else int(input_tokens))

    @property
    def tpot_ms(self) -> float | None:
        if self.ttft_ms is None or self.output_tokens < 2:
            return None
        return (self.e2e_ms - self.ttft_ms) / (self.output_tokens - 1)

    @property
    def tokens_per_s(self) -> float | None:
        return self.output_tokens / (self.e2e_ms / 1000) if self.e2e_ms > 0 and self.output_tokens else None


def _hdr(hist: HdrHistogram) -> str | None:
    return hist.encode().decode("ascii") if hist.get_total_count() else None


@dataclass
class LlmSecond:
    """The streamed answers of one endpoint, class and conversation turn that ended in one second."""

    requests: int = 0
    failures: int = 0
    output_tokens: int = 0
    input_tokens: int = 0  # the server's prompt tokens, of the input_count requests that had a count
    input_count: int = 0
    ttft_sum_ms: float = 0.0
    tpot_sum_ms: float = 0.0
    tpot_count: int = 0
    e2e_sum_ms: float = 0.0
    itl_sum_ms: float = 0.0
    itl_count: int = 0
    tps_sum: float = 0.0
    good: int = 0
    slo_pass: dict = field(default_factory=dict)
    ttft: HdrHistogram = field(default_factory=new_histogram)
    itl: HdrHistogram = field(default_factory=new_histogram)
    tpot: HdrHistogram = field(default_factory=new_histogram)
    e2e: HdrHistogram = field(default_factory=new_histogram)
    tps: HdrHistogram = field(default_factory=new_histogram)

    def record(self, t: TokenTiming, slo: Slo | None) -> None:
        if slo is not None:
            checks = slo.checks(t)
            for key, passed in checks.items():
                self.slo_pass[key] = self.slo_pass.get(key, 0) + int(passed)
            self.good += int(t.ok and all(checks.values()))
        if not t.ok:
            self.failures += 1
            return
        self.requests += 1
        self.output_tokens += t.output_tokens
        if t.input_tokens is not None:
            self.input_tokens += t.input_tokens
            self.input_count += 1
        self.e2e_sum_ms += t.e2e_ms
        self.e2e.record_value(clamp_us(t.e2e_ms))
        if t.ttft_ms is not None:
            self.ttft_sum_ms += t.ttft_ms
            self.ttft.record_value(clamp_us(t.ttft_ms))
        for gap in t.itl_ms:
            self.itl_sum_ms += gap
            self.itl.record_value(clamp_us(gap))
        self.itl_count += len(t.itl_ms)
        tpot = t.tpot_ms
        if tpot is not None:
            self.tpot_sum_ms += tpot
            self.tpot_count += 1
            self.tpot.record_value(clamp_us(tpot))
        tps = t.tokens_per_s
        if tps is not None:
            self.tps_sum += tps
            self.tps.record_value(min(max(math.ceil(tps * TPS_SCALE), 1), HDR_HIGHEST_US))

    def to_row(self, ts: int, name: str, cls: str, turn: int = 1) -> dict:
        return {"ts": ts, "name": name, "cls": cls, "turn": turn, "requests": self.requests,
                "failures": self.failures, "output_tokens": self.output_tokens,
                "input_tokens": self.input_tokens, "input_count": self.input_count,
                "ttft_sum_ms": round(self.ttft_sum_ms, 3),
                "tpot_sum_ms": round(self.tpot_sum_ms, 3), "tpot_count": self.tpot_count,
                "e2e_sum_ms": round(self.e2e_sum_ms, 3), "itl_sum_ms": round(self.itl_sum_ms, 3),
                "itl_count": self.itl_count, "tps_sum": round(self.tps_sum, 3), "good": self.good,
                "slo_pass": json.dumps(self.slo_pass, sort_keys=True),
                "ttft_hdr": _hdr(self.ttft), "itl_hdr": _hdr(self.itl), "tpot_hdr": _hdr(self.tpot),
                "e2e_hdr": _hdr(self.e2e), "tps_hdr": _hdr(self.tps)}


class LlmSeconds:
    """Accumulates :class:`TokenTiming` into (second, endpoint, class, turn) buckets; flushes whole seconds.

    ``slo`` decides each request's pass/fail as it is recorded: goodput is stored for the SLO the
    run was given (per bound too), because whether *one request* met all bounds cannot be
    recovered from per-metric histograms afterwards.
    """

    def __init__(self, slo: Slo | None = None) -> None:
        self.slo = slo
        self._buckets: dict[tuple[int, str, str, int], LlmSecond] = {}

    def record(self, ts: float, name: str, timing: TokenTiming) -> None:
        key = (int(ts), name, "cached" if timing.cached else "generated", int(timing.turn))
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = LlmSecond()
        bucket.record(timing, self.slo)

    def flush(self, before_ts: float | None = None) -> list[dict]:
        """Rows for every second earlier than ``before_ts`` (all when None), removed from memory."""
        keys = sorted(k for k in self._buckets if before_ts is None or k[0] < int(before_ts))
        return [self._buckets.pop(k).to_row(*k) for k in keys]


__all__ = ["CLASSES", "SLO_KEYS", "TPS_SCALE", "LlmSecond", "LlmSeconds", "Slo", "TokenTiming"]
