"""The LLM-serving analysis against seeded synthetic runs of known truth."""

from __future__ import annotations

import pytest

from capkit import analysis as ca
from capkit.analysis.fits.llm import goodput_knee, llm_steps, share_within, slo_of
from capkit.analysis.pages import llm_serving
from capkit.records.llm import Slo
from capkit.schemas import NotMeasured
from capkit.store import open_store
from capkit.synthetic import write_synthetic_run
from capkit.synthetic.llm import LlmTruth


@pytest.fixture
def store(tmp_path):
    s = open_store(f"sqlite:///{tmp_path / 'capkit.sqlite'}")
    yield s
    s.engine.dispose()


def _table(store, run_id, slo):
    truth = LlmTruth(slo=Slo.parse(slo))
    write_synthetic_run(store, run_id, seed=3, llm=truth)
    run = ca.read_run(store, run_id)
    return truth, run, llm_steps(run.steps, run.llm, warmup_s=run.warmup_s, slo=slo_of(run))


def test_percentiles_recover_the_truth_and_cached_answers_stay_apart(store):
    truth, run, t = _table(store, "r1", "ttft=300ms,itl=50ms,e2e=2s")
    gen = t[t["cls"] == "generated"].set_index("users")
    cached = t[t["cls"] == "cached"].set_index("users")
    for users, row in gen.iterrows():
        assert row["itl_p50_ms"] == pytest.approx(truth.itl_ms, abs=0.3)  # N(20, 2) gaps
        assert row["itl_p99_ms"] == pytest.approx(truth.itl_ms + 2.326 * truth.itl_jitter_ms, abs=0.8)
        assert row["ttft_p50_ms"] == pytest.approx(truth.ttft_median_ms(users), rel=0.1)
        assert row["tpot_p50_ms"] == pytest.approx(truth.itl_ms, abs=0.5)
        assert row["mean_output_tokens"] == truth.tokens
    # above the 12 slots TTFT grows by the queueing; below it does not
    assert gen.loc[25, "ttft_p50_ms"] > 10 * gen.loc[5, "ttft_p50_ms"]
    assert gen.loc[10, "ttft_p50_ms"] == pytest.approx(gen.loc[5, "ttft_p50_ms"], rel=0.15)
    # cached answers: their own class, replayed fast, never in the generated numbers
    assert (cached["itl_p50_ms"] < 0.2).all() and (gen["itl_p50_ms"] > 15).all()
    share = cached["requests"] / (cached["requests"] + gen["requests"])
    assert share.between(0.1, 0.3).all()


def test_goodput_falls_past_the_slots_and_when_the_slo_is_tightened(store):
    _, _, loose = _table(store, "loose", "ttft=300ms,itl=50ms,e2e=2s")
    _, _, tight = _table(store, "tight", "ttft=100ms,itl=50ms,e2e=2s")
    a = loose[loose["cls"] == "all"].set_index("users")
    b = tight[tight["cls"] == "all"].set_index("users")
    assert (b["good_share"] <= a["good_share"]).all() and (b["goodput"].sum() < 0.8 * a["goodput"].sum())
    # at 25 users TTFT's median is 40 + 60 × 13 = 820 ms: beyond the 300 ms bound for (nearly) all
    assert a.loc[25, "good_share"] < 0.3 < 0.8 < a.loc[5, "good_share"]
    assert a.loc[25, "ttft_share"] == pytest.approx(a.loc[25, "good_share"], abs=0.25)
    knee = goodput_knee(loose)
    assert knee["metric"] == "goodput" and knee["users"] in (10, 15)
    # another bound later, from the histograms: per metric only
    within = share_within(ca.read_run(store, "loose").steps, ca.read_run(store, "loose").llm, warmup_s=2,
                          metric="ttft", bound_ms=100)
    assert within.iloc[-1] < within.iloc[1]


def test_a_run_without_token_timing_is_not_measured(store):
    write_synthetic_run(store, "plain", seed=1)
    serving = llm_serving(store.url, "plain")
    assert not serving.measured and isinstance(serving.headline_table(), NotMeasured)
    assert "not measured (no token timing in this run)" in serving.summary()
    assert isinstance(serving.knee, NotMeasured) and serving.corrected.empty
