"""Replicas for a target load: N+1, the deciding limit, and "unknown" when nothing was measured."""

import math

import pytest

from capkit.analysis.answer.replicas import replicas_needed
from capkit.errors import ParameterError
from capkit.schemas import NotMeasured


def test_replicas_with_headroom(result):
    cpu = result.resources.fits["cpu_cores"]
    rp = replicas_needed(result.resources, 100, headroom=1)
    assert rp.deciding.startswith("CPU")
    assert rp.replicas == math.ceil(100 / math.floor(cpu.capacity.low)) + 1
    assert "N+1" in rp.summary()
    # from the run's one answer: the capacity's lower end per replica, with its basis
    planned = replicas_needed(result.resources, 100, headroom=1, answer=result.answer)
    assert planned.replicas == math.ceil(100 / math.floor(result.answer.capacity.users.low)) + 1
    assert "measured" in planned.deciding and result.replicas.replicas == planned.replicas
    with pytest.raises(ParameterError):
        replicas_needed(result.resources, -5)


def test_nothing_measured_gives_unknown_replicas_not_one_plus_headroom(result):
    """Fails closed: with no fitted limit the old plan said 1 + headroom replicas."""
    from dataclasses import replace

    bare = replace(result.resources, fits={name: NotMeasured("not in this run") for name in result.resources.fits})
    rp = replicas_needed(bare, 1000, headroom=1)
    assert isinstance(rp.replicas, NotMeasured) and "unknown" in rp.summary()


# --- the database's limits are the fleet's: known truth, seeded and noisy ---------------------

def _plan(truth, target, *, seed=11, **params):
    from capkit.analysis.answer.capacity import resource_capacity
    from capkit.schemas import ResourceLimits
    from tests.analysis.synth import run, store

    r, _ = run(store(), "fleet", truth, users=(5, 10, 15, 20, 25, 30), seed=seed)
    resources = resource_capacity(r, ResourceLimits(cpu_cores=1.0, **params))
    return replicas_needed(resources, target, headroom=1), resources


def _truth(**db):
    from capkit.synthetic import SyntheticTruth

    truth = SyntheticTruth()
    truth.baseline = dict(truth.baseline, cpu_cores=0.02, db_connections=db.get("baseline", 1.0))
    truth.per_user = dict(truth.per_user, cpu_cores=db.get("cpu", 0.02), db_connections=db.get("per_user", 0.25))
    truth.noise = dict(truth.noise, db_connections=0.4)
    return truth


def test_database_binds_where_the_old_per_replica_division_added_replicas():
    """DB connections 1 + 0.5/user, CPU 0.002/user: one replica would reach 60 connections at ~118
    users, so 400 users got ⌈400/118⌉+1 = 5 replicas "decided by DB connections". But the 60 are the
    database's: 400 users hold 200+ connections however many replicas share them."""
    from capkit.analysis.answer.replicas import MITIGATION

    truth = _truth(baseline=1.0, per_user=0.5, cpu=0.002)
    rp, _ = _plan(truth, 400)
    assert not rp.deciding.startswith("DB")  # the database never decides a replica count
    binds = rp.database_binds
    assert binds is not None and binds.resource == "db_connections"
    true_use = binds.replicas * 1.0 + 400 * 0.5
    assert binds.value.low <= true_use <= binds.value.high
    assert binds.limit == 60
    summary = rp.summary()
    assert "database binds" in summary and MITIGATION in summary and "\n" not in summary
    assert f"fleet DB connections at {binds.replicas} replicas" in summary
    row = rp.table[rp.table["limit"] == binds.label].iloc[0]
    assert bool(row["binds"]) and row["fleet_value"] > 60
    # the users the database carries at that count: where the upper bound meets 60 (truth: 116)
    assert 90 < binds.max_users < (60 - binds.replicas) / 0.5


def test_idle_pools_of_many_replicas_bind_the_database():
    """Each replica holds an idle pool of 8 connections: at 300 users CPU needs ~8 replicas, each
    at ~12 connections (far below 60 alone), but together 8·8 + 300·0.1 ≈ 94 of 60."""
    truth = _truth(baseline=8.0, per_user=0.1, cpu=0.02)
    rp, _ = _plan(truth, 300)
    assert rp.deciding.startswith("CPU") and rp.replicas >= 7
    binds = rp.database_binds
    assert binds is not None
    r = binds.replicas
    assert r == rp.replicas
    assert binds.value.low <= 8 * r + 300 * 0.1 <= binds.value.high
    one = binds.value.high / r  # one replica's share is well within the limit: only the fleet binds
    assert one < 20


def test_fleet_within_the_database_limits_and_db_cpu_not_measured():
    rp, _ = _plan(_truth(baseline=1.0, per_user=0.25), 100)
    assert rp.database_binds is None and "database" not in rp.summary()
    conns, cpu = rp.fleet
    assert conns.resource == "db_connections" and conns.replicas == rp.replicas
    assert conns.value.low <= rp.replicas * 1.0 + 100 * 0.25 <= conns.value.high <= 60
    assert isinstance(cpu.value, NotMeasured) and "not measured" in cpu.describe()  # fails closed, says why


def test_db_cpu_of_all_replicas_binds():
    """Backend CPU 0.05 idle per replica + 0.004/user: 300 users use ≥ 1.2 of the database's 1 core."""
    truth = _truth(baseline=1.0, per_user=0.01)
    truth.baseline["pg_backend_cpu_cores"], truth.per_user["pg_backend_cpu_cores"] = 0.05, 0.004
    truth.noise["pg_backend_cpu_cores"] = 0.01
    truth.sources["pg_backend_cpu_cores"] = "postgres"
    rp, _ = _plan(truth, 300)
    binds = rp.database_binds
    assert binds is not None and binds.resource == "db_cpu_cores"
    assert binds.value.low <= binds.replicas * 0.05 + 300 * 0.004 <= binds.value.high
    assert "DB CPU" in rp.summary()
