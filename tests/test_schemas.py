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
