"""Trace files: times relative to the first request, in the file's unit, scaled; lengths as given;
times going backwards and bad fields are one line naming the file and line."""

from __future__ import annotations

import json

import pytest

from capkit.errors import ConfigError
from capkit.records.traces import load_trace, peak_arrivals


def _trace(tmp_path, rows):
    p = tmp_path / "trace.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return p


def test_mooncake_milliseconds_and_lengths(tmp_path):
    p = _trace(tmp_path, [{"timestamp": 27482, "input_length": 6955, "output_length": 52, "hash_ids": [1, 2]},
                          {"timestamp": 27482, "input_length": 10, "output_length": 1},
                          {"timestamp": 30000, "input_tokens": 7, "output_tokens": 3}])
    reqs = load_trace(p)
    assert [r.at_s for r in reqs] == pytest.approx([0.0, 0.0, 2.518])
    assert [(r.input_tokens, r.output_tokens) for r in reqs] == [(6955, 52), (10, 1), (7, 3)]
    assert [r.at_s for r in load_trace(p, scale=0.5)] == pytest.approx([0.0, 0.0, 1.259])
    assert peak_arrivals(reqs) == 2


def test_seconds_with_time(tmp_path):
    reqs = load_trace(_trace(tmp_path, [{"time": 100.5, "input_length": 1, "output_length": 1},
                                        {"time": 101.0, "input_length": 1, "output_length": 1}]))
    assert [r.at_s for r in reqs] == pytest.approx([0.0, 0.5])


@pytest.mark.parametrize("rows, line, needle", [
    ([{"timestamp": 10, "input_length": 1, "output_length": 1}, {"timestamp": 5, "input_length": 1,
                                                                 "output_length": 1}], 2, "time goes backwards"),
    ([{"timestamp": 1, "input_length": 0, "output_length": 1}], 1, "input_length 0"),
    ([{"timestamp": 1, "input_length": 3}], 1, "no output_length"),
    ([{"input_length": 3, "output_length": 1}], 1, "no \"timestamp\""),
])
def test_bad_traces_name_the_line(tmp_path, rows, line, needle):
    p = _trace(tmp_path, rows)
    with pytest.raises(ConfigError) as err:
        load_trace(p)
    assert f"{p}:{line}:" in str(err.value) and needle in str(err.value)


def test_not_json_and_a_bad_scale(tmp_path):
    p = tmp_path / "t.jsonl"
    p.write_text('{"timestamp": 1, "input_length": 1, "output_length": 1}\n{oops\n')
    with pytest.raises(ConfigError, match=r"t.jsonl:2: not JSON"):
        load_trace(p)
    with pytest.raises(ConfigError, match="--trace-scale"):
        load_trace(p, scale=0)
