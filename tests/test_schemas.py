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
