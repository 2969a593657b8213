"""Scaling thresholds: the users at which each threshold is crossed, and criteria that make no sense."""

import pytest

from capkit.analysis.answer.thresholds import scaling_thresholds
from capkit.errors import ConfigError
from capkit.schemas import Criteria, NotMeasured


def test_scaling_thresholds_cross_where_the_truth_does(result):
    t = result.thresholds_table().set_index("Metric")
    # CPU truth 0.02 + 0.02 N: 70 % of 1 core at 34 users, 90 % at 44
    assert t.loc["CPU usage", "warning_low"] <= 34 <= t.loc["CPU usage", "warning_high"]
    assert t.loc["CPU usage", "critical_low"] <= 44 <= t.loc["CPU usage", "critical_high"]
    assert t.loc["DB CPU", "Warning at"].startswith("not measured")
    cpu = [th for th in result.thresholds if th.metric == "CPU usage"]
    assert [th.basis for th in cpu] == ["measured", "measured"] and cpu[0].action == "Scale out API replicas"
    assert cpu[1].users.low <= 44 <= cpu[1].users.high and cpu[1].users.high - cpu[1].users.low <= 10
    db = [th for th in result.thresholds if th.metric == "DB CPU"]
    assert all(isinstance(th.users, NotMeasured) for th in db)


def test_thresholds_that_make_no_sense_are_refused():
    """The criteria are checked once, where they are made, each with one line naming the field."""
    with pytest.raises(ConfigError, match="cpu_shares.*0 < warning < critical"):
        Criteria.of(cpu_shares=(0.9, 0.7))
    with pytest.raises(ConfigError, match="memory_shares") as err:
        Criteria.of(memory_shares="high")
    assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="below the critical one"):
        Criteria.of(p95_warning_ms=3000)


def test_thresholds_follow_the_criteria(result):
    """The same run judged by other criteria crosses where they say: a lower CPU share, earlier."""
    lower = scaling_thresholds(result.resources, Criteria.of(cpu_shares=(0.5, 0.7)))
    cpu = {t.severity: t.users for t in lower if t.metric == "CPU usage"}
    # CPU truth 0.02 + 0.02 N: 50 % of 1 core at 24 users, 70 % at 34
    assert cpu["warning"].low <= 24 <= cpu["warning"].high and cpu["critical"].low <= 34 <= cpu["critical"].high
