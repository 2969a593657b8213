"""Recommendations, each from its stated rule."""

from capkit.analysis.answer.capacity import resource_capacity
from capkit.analysis.answer.recommend import recommendations
from capkit.schemas import ResourceLimits
from capkit.synthetic import SyntheticTruth
from tests.analysis.synth import run, store


def test_recommendation_rules(result):
    rules = result.recommendations["Rule"].tolist()
    assert rules[0] == "binding limit → its action"
    assert "CPU" in result.recommendations["Finding"].iloc[0]
    assert any(r.startswith("429 share") for r in rules)


def test_generator_saturation_and_low_cache_hit_rate_rules():
    st = store()
    r, _ = run(st, "sat", SyntheticTruth(generator_cpu_per_user=0.04), seed=6)  # ≥ 0.9 cores from 25 users
    rep = resource_capacity(r)
    rec = recommendations(rep, cache_hit_rate=0.2)
    assert "generator_saturated" in rep.steps.set_index("users").loc[25, "flags"]
    assert rec["Recommendation"].str.contains("--processes").any()
    assert rec["Recommendation"].str.contains("Cache").any()


def test_db_connections_near_the_limit_recommend_pooling():
    st = store()
    truth = SyntheticTruth()
    truth.per_user = dict(truth.per_user, db_connections=2.0)  # 51 of 60 connections at 25 users
    r, _ = run(st, "db", truth, seed=7)
    rec = recommendations(resource_capacity(r, ResourceLimits(db_connections=60)))
    assert rec["Recommendation"].str.contains("PgBouncer").any()
