"""Replicas for a target load: N+1, the deciding limit, and "unknown" when nothing was measured."""

import math

import pytest

from capkit.analysis.replicas import replicas_needed
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
