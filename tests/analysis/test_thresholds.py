"""Scaling thresholds: the users at which each level is crossed, and levels that make no sense."""

import pytest

from capkit.analysis.thresholds import scaling_thresholds
from capkit.errors import ParameterError
from capkit.schemas import NotMeasured


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


def test_thresholds_that_make_no_sense_are_refused(result):
    with pytest.raises(ParameterError, match="0 < warning < critical"):
        scaling_thresholds(result.resources, cpu=(0.9, 0.7))
    with pytest.raises(ParameterError, match="two numbers"):
        scaling_thresholds(result.resources, memory="high")
