"""Stage plan syntax: user steps and arrival-rate steps."""

import pytest

from capkit.errors import ConfigError
from capkit.schemas import StagePlan


def test_rate_stages_parse_and_print_back():
    plan = StagePlan.parse("0x10,r20x30,r40x30@50", warmup_s=2)
    assert [(s.users, s.seconds, s.rate) for s in plan.stages] == [(0, 10, None), (40, 30, 20.0), (50, 30, 40.0)]
    assert plan.open_model and not StagePlan.parse("0x10,5x30").open_model
    assert StagePlan.parse(plan.to_spec(), warmup_s=2) == plan
    assert StagePlan.parse("r2.5x10", warmup_s=2).stages[0].users == 10  # at least 10 users in the pool


@pytest.mark.parametrize("spec", ["r0x5", "rx5", "r5", "r-1x5", "r5x5@0", "r5x5@x", "rnanx5"])
def test_bad_rate_stages_are_one_line(spec):
    with pytest.raises(ConfigError, match="rRATExSECONDS"):
        StagePlan.parse(spec, warmup_s=1)


def test_one_mix_reader_for_the_cli_and_the_locustfile():
    """``--mix`` is read by :func:`capkit.schemas.parse_mix` everywhere: the CLI's check (whole
    weights, the reference classes) normalises, the locustfile reads ``CAPKIT_MIX`` the same way."""
    from capkit.cli.options import check_mix
    from capkit.errors import ConfigError
    from capkit.schemas import parse_mix

    assert check_mix(" chat=4 , ws=1, ") == "chat=4,ws=1"
    assert parse_mix("chat=1.5,ws=1") == {"chat": 1.5, "ws": 1.0}  # the design and what-if take fractions
    for bad, needle in (("chat=1.5", "whole numbers"), ("video=1", "unknown class video"), ("chat=0", "sum to zero"),
                        ("chat=x", "not CLASS=WEIGHT")):
        with pytest.raises(ConfigError, match=needle):
            check_mix(bad)


def test_the_fixed_profiles_keep_load_apart_from_a_bent_drift():
    """quick and full visit their levels in an order no other order beats by more than 0.005 on
    :func:`time_share` (the load of the loaded steps a quadratic in time explains), where a ramp and
    the up-and-down order that came before are explained almost whole, and so is the order after that
    (30, 25, 10, 5, 15, 20: balanced only with the cold idle step, which the fits now leave out)."""
    import itertools

    import numpy as np

    from capkit.schemas import PROFILES, stepped, time_share

    assert time_share(PROFILES["smoke"]) > 0.99  # a plain ramp: too short for a time term
    assert time_share(stepped([5, 15, 25, 30, 20, 10], idle_s=15, step_s=25, warmup_s=5)) > 0.9
    assert time_share(stepped([30, 25, 10, 5, 15, 20], idle_s=15, step_s=25, warmup_s=5)) > 0.8
    for name, (idle_s, step_s) in {"quick": (15, 25), "full": (30, 60)}.items():
        plan = PROFILES[name]
        levels = [s.users for s in plan.stages[1:]]
        assert plan.stages[0].users == 0 and time_share(plan) < 0.01, name
        best = min(time_share(stepped(list(order), idle_s=idle_s, step_s=step_s, warmup_s=1))
                   for order in itertools.islice(itertools.permutations(sorted(levels)), 0, None, 7))
        assert time_share(plan) <= best + 0.005, (name, best)
        assert np.isclose(plan.stages[1].seconds, step_s)
