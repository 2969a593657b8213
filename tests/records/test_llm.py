"""LLM records: the SLO syntax, the metric definitions (vLLM's), goodput counted per request."""

from __future__ import annotations

import json

import pytest
from hdrh.histogram import HdrHistogram

from capkit.errors import ConfigError
from capkit.records.llm import LlmSeconds, Slo, TokenTiming


def test_slo_parses_units_and_refuses_what_it_cannot_read():
    slo = Slo.parse("ttft=500ms,itl=50ms,e2e=5s,tpot=0.04s")
    assert (slo.ttft_ms, slo.itl_ms, slo.e2e_ms, slo.tpot_ms) == (500, 50, 5000, 40)
    assert Slo.parse(slo.to_text()) == slo and Slo.from_dict(slo.to_dict()) == slo
    assert Slo.parse("e2el=2s").e2e_ms == 2000  # vLLM's name
    for bad in ("ttft=500", "ttft=fast", "latency=5s", "ttft=0ms", "ttft=1s,ttft=2s", ""):
        with pytest.raises(ConfigError) as err:
            Slo.parse(bad)
        assert "\n" not in str(err.value) and "--slo" in str(err.value)


def test_timing_follows_the_vllm_definitions():
    # tokens at 100, 120, 150, 160 ms; the stream ends at 170 ms; the server says 4 tokens
    t = TokenTiming.from_events([100.0, 120.0, 150.0, 160.0], 170.0, output_tokens=4)
    assert t.ttft_ms == 100 and t.itl_ms == [20.0, 30.0, 10.0]
    assert t.tpot_ms == pytest.approx((170 - 100) / 3)  # (E2E − TTFT) / (output_tokens − 1)
    assert t.tokens_per_s == pytest.approx(4 / 0.170)
    # the server's count wins over the events counted (a chunk may carry several tokens)
    assert TokenTiming.from_events([10.0, 20.0], 30.0, output_tokens=5).tpot_ms == pytest.approx(5.0)
    assert TokenTiming.from_events([10.0], 12.0).tpot_ms is None  # one token: no TPOT


def test_goodput_counts_requests_meeting_every_bound_and_classes_stay_apart():
    agg = LlmSeconds(Slo.parse("ttft=100ms,itl=50ms"))
    agg.record(5.1, "chat", TokenTiming.from_events([50.0, 60.0, 70.0], 80.0))  # good
    agg.record(5.2, "chat", TokenTiming.from_events([150.0, 160.0], 170.0))  # TTFT too late
    agg.record(5.3, "chat", TokenTiming.from_events([50.0, 120.0], 130.0))  # one gap of 70 ms: ITL bound broken
    agg.record(5.4, "chat", TokenTiming(None, [], 900.0, 0, ok=False))  # failed: never good
    agg.record(5.5, "chat", TokenTiming.from_events([1.0, 1.01], 1.1, cached=True))
    agg.record(6.0, "chat", TokenTiming.from_events([50.0], 60.0))  # the next second
    rows = agg.flush(6.0)
    assert [(r["ts"], r["cls"]) for r in rows] == [(5, "cached"), (5, "generated")]
    cached, gen = rows
    assert gen["requests"] == 3 and gen["failures"] == 1 and gen["good"] == 1 and cached["good"] == 1
    assert json.loads(gen["slo_pass"]) == {"ttft": 2, "itl": 2}
    assert gen["output_tokens"] == 7 and gen["itl_count"] == 4
    itl = HdrHistogram.decode(gen["itl_hdr"])
    assert itl.get_total_count() == 4 and 69_000 <= itl.get_max_value() <= 70_100  # µs
    assert agg.flush(None)[0]["ts"] == 6


def test_turns_are_their_own_rows_and_input_tokens_are_the_servers():
    agg = LlmSeconds()
    agg.record(7.1, "chat", TokenTiming.from_events([10.0, 20.0], 30.0, turn=1, input_tokens=12))
    agg.record(7.2, "chat", TokenTiming.from_events([10.0, 20.0], 30.0, turn=2, input_tokens=40))
    agg.record(7.3, "chat", TokenTiming.from_events([10.0, 20.0], 30.0, turn=2, input_tokens=44))
    agg.record(7.4, "chat", TokenTiming.from_events([10.0], 15.0, turn=2))  # a server that sends no usage
    rows = {r["turn"]: r for r in agg.flush()}
    assert rows[1]["requests"] == 1 and (rows[1]["input_tokens"], rows[1]["input_count"]) == (12, 1)
    assert rows[2]["requests"] == 3 and (rows[2]["input_tokens"], rows[2]["input_count"]) == (84, 2)
