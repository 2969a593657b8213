"""Prompt datasets: every format loads the right conversations, turns and texts; synthetic lengths
have the asked mean, sd and bounds; a bad line is one error naming its file and line."""

from __future__ import annotations

import json
import random
import statistics

import pytest

from capkit.errors import ConfigError
from capkit.records.prompts import WORDS, LengthDist, load_dataset, shared_prefix, synthetic_text


def _write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_one_prompt_a_line(tmp_path):
    convs = load_dataset(_write(tmp_path, "p.txt", "first question\n\n  second one  \n"))
    assert [[t.prompt for t in c.turns] for c in convs] == [["first question"], ["second one"]]


def test_jsonl_strings_prompts_and_messages(tmp_path):
    msgs = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]
    lines = [json.dumps("a string"), json.dumps({"prompt": "a prompt"}), json.dumps({"messages": msgs})]
    convs = load_dataset(_write(tmp_path, "p.jsonl", "\n".join(lines) + "\n"))
    assert [len(c.turns) for c in convs] == [1, 1, 1]
    assert convs[0].turns[0].messages() == [{"role": "user", "content": "a string"}]
    assert convs[1].turns[0].prompt == "a prompt"
    assert convs[2].turns[0].messages() == msgs  # sent as they are


def test_sharegpt_conversations_keep_their_human_turns_in_order(tmp_path):
    doc = {"id": "x", "conversations": [{"from": "system", "value": "you plan capacity"},
                                        {"from": "human", "value": "q1"}, {"from": "gpt", "value": "a1"},
                                        {"from": "human", "value": "q2"}, {"from": "gpt", "value": "a2"},
                                        {"from": "human", "value": "q3"}]}
    role_style = {"conversations": [{"role": "user", "content": "only"}, {"role": "assistant", "content": "ok"}]}
    convs = load_dataset(_write(tmp_path, "s.jsonl", json.dumps(doc) + "\n" + json.dumps(role_style) + "\n"))
    assert [t.prompt for t in convs[0].turns] == ["q1", "q2", "q3"] and convs[0].system == "you plan capacity"
    assert [t.prompt for t in convs[1].turns] == ["only"] and convs[1].system is None
    # the original ShareGPT file is one JSON array, not JSONL
    arr = load_dataset(_write(tmp_path, "s.json", json.dumps([doc, role_style], indent=1)))
    assert [len(c.turns) for c in arr] == [3, 1]


def test_the_bundled_conversations_load():
    convs = load_dataset("capkit:conversations")
    assert len(convs) == 24 and all(2 <= len(c.turns) <= 4 for c in convs)
    assert sum(len(c.turns) for c in convs) == 64


@pytest.mark.parametrize("text, line, needle", [
    ('{"prompt": "ok"}\n{"prompt": "broken\n', 2, "not JSON"),
    ('{"prompt": "ok"}\n\n{"text": "no known key"}\n', 3, "neither a prompt"),
    ('{"conversations": [{"from": "gpt", "value": "only an answer"}]}\n', 1, "without a human turn"),
    ('{"messages": [{"content": "no role"}]}\n', 1, "without \"role\""),
])
def test_a_malformed_line_names_the_file_and_line(tmp_path, text, line, needle):
    path = _write(tmp_path, "bad.jsonl", text)
    with pytest.raises(ConfigError) as err:
        load_dataset(path)
    assert f"{path}:{line}:" in str(err.value) and needle in str(err.value)
    assert len(str(err.value).splitlines()) == 1


def test_a_missing_or_empty_file_is_one_line(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_dataset(tmp_path / "nope.txt")
    with pytest.raises(ConfigError, match="holds no prompt"):
        load_dataset(_write(tmp_path, "empty.txt", "\n  \n"))


@pytest.mark.parametrize("seed", range(5))
def test_length_draws_have_the_asked_mean_sd_and_bounds(seed):
    dist = LengthDist.parse("512,128,64,2048", "--input-tokens")
    rng = random.Random(seed)
    draws = [dist.draw(rng) for _ in range(4000)]
    assert min(draws) >= 64 and max(draws) <= 2048
    # normal, 4 sd inside the bounds: clipping moves nothing measurable; se of the mean 2 tokens
    assert statistics.fmean(draws) == pytest.approx(512, abs=8)
    assert statistics.stdev(draws) == pytest.approx(128, rel=0.05)


def test_lengths_are_clipped_and_a_fixed_length_is_exact():
    rng = random.Random(1)
    tight = LengthDist.parse("10,50,8,12", "--output-tokens")
    assert {tight.draw(rng) for _ in range(500)} <= set(range(8, 13)) and LengthDist.parse("7", "x").draw(rng) == 7


@pytest.mark.parametrize("text", ["", "abc", "0", "5,-1", "5,1,6,9", "5,1,2", "5,1,0,9", "5,1,2.5,9"])
def test_a_bad_length_is_one_line(text):
    with pytest.raises(ConfigError, match="--turns .* is not MEAN"):
        LengthDist.parse(text, "--turns")


def test_synthetic_text_has_the_asked_tokens_and_a_shared_prefix_is_the_same_everywhere():
    rng = random.Random(3)
    for n in (1, 37, 512):
        words = synthetic_text(n, rng).split(" ")
        assert len(words) == n and set(words) <= set(WORDS)
    assert shared_prefix(100) == shared_prefix(100) and len(shared_prefix(100).split()) == 100
    assert len(set(WORDS)) == len(WORDS) > 200
