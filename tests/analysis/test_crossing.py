"""The crossing of a threshold from a local fit (capkit.analysis.fits.crossing) against known truth:
a log-linear p95 near the crossing, each step off by a persistent offset (τ) and its own sampling
noise (which its interval reports), seeded."""

from __future__ import annotations

import math

import numpy as np
import pytest

from capkit.analysis.fits.crossing import after_overload, chord, local_crossing

TRUTH = 100.0  # users at which the typical step's p95 is 500 ms
SLOPE = 0.03  # log p95 per user near it


def _steps(rng, loads, tau=0.12, own=(0.04, 0.12)):
    loads = np.asarray(loads, float)
    sd = rng.uniform(*own, size=len(loads))
    log_p95 = math.log(500) + SLOPE * (loads - TRUTH) + rng.normal(0, tau, len(loads)) + rng.normal(0, sd)
    p95 = np.exp(log_p95)
    return loads, p95, p95 * np.exp(-1.96 * sd), p95 * np.exp(1.96 * sd)


@pytest.mark.parametrize("tau", [0.06, 0.12, 0.25])
def test_the_range_holds_the_true_crossing_at_its_stated_rate(tau):
    rng = np.random.default_rng(1)
    design = [70, 88, 94, 100, 106, 112, 125, 100, 94]  # a search's steps: ramp, bisection, repeats
    held, chord_held, errors = 0, 0, []
    for _ in range(400):
        x, y, lo, hi = _steps(rng, design, tau=tau)
        found = local_crossing(x, y, 500.0, lows=lo, highs=hi)
        held += found.interval.contains(TRUTH)
        errors.append(abs(found.estimate - TRUTH) / TRUTH)
        rough = chord(x, y, 500.0)
        chord_held += rough is not None and rough.contains(TRUTH)
    print(f"τ {tau}: local fit held {held / 4:.1f} %, chord's bracket {chord_held / 4:.1f} %, "
          f"median error {100 * np.median(errors):.1f} %")
    assert 0.90 * 400 <= held <= 0.99 * 400
    if tau >= 0.25:
        assert chord_held < 0.85 * 400  # the bracket of two noisy steps claims more than it knows


def test_one_odd_step_is_set_aside_and_named():
    rng = np.random.default_rng(4)
    x, y, lo, hi = _steps(rng, [84, 90, 95, 100, 105, 110, 116], tau=0.05)
    y[2] *= 3.0  # a burst of slow queries in the 95-user step
    lo[2], hi[2] = lo[2] * 3.0, hi[2] * 3.0
    found = local_crossing(x, y, 500.0, lows=lo, highs=hi)
    assert found.set_aside == (95.0,)
    assert abs(found.estimate - TRUTH) / TRUTH < 0.03 and found.interval.contains(TRUTH)
    x, y, lo, hi = _steps(np.random.default_rng(4), [84, 90, 95, 100, 105, 110, 116], tau=0.05)
    assert local_crossing(x, y, 500.0, lows=lo, highs=hi).set_aside == ()


def test_honest_steps_are_rarely_set_aside():
    rng = np.random.default_rng(7)
    set_aside = 0
    for _ in range(200):
        x, y, lo, hi = _steps(rng, [84, 90, 95, 100, 105, 110, 116])
        set_aside += bool(local_crossing(x, y, 500.0, lows=lo, highs=hi).set_aside)
    print(f"honest runs with a step set aside: {set_aside / 2:.1f} %")
    assert set_aside <= 0.10 * 200


def test_no_step_reaches_it_and_the_first_step_already_does():
    assert local_crossing([10, 20, 30], [100, 150, 200], 500.0) is None
    first = local_crossing([10, 20, 30], [600, 900, 1200], 500.0)
    assert first.method == "bracket" and (first.interval.low, first.interval.high) == (0.0, 10.0)


def test_too_few_steps_near_it_give_the_chord_and_its_bracket():
    found = local_crossing([10, 50, 100], [200, 400, 800], 500.0)
    assert found.method == "bracket" and (found.interval.low, found.interval.high) == (50.0, 100.0)


def test_a_flat_local_slope_gives_the_range_between_steps_clearly_on_either_side():
    # five steps near 500 ms that do not rise clearly, one clearly below, one clearly above
    x = [60, 95, 98, 100, 102, 105, 140]
    y = [250, 520, 470, 530, 480, 510, 1400]
    found = local_crossing(x, y, 500.0, lows=np.multiply(y, 0.8), highs=np.multiply(y, 1.25))
    assert found.method == "local fit"
    assert found.interval.low >= 60 and found.interval.high <= 140
    assert math.isfinite(found.interval.high)


def test_a_step_right_after_an_overloaded_heavier_one_is_left_out_while_others_are_near():
    order = [1, 2, 3, 4, 5, 6, 7]
    loads = [88, 141, 101, 92, 100, 108, 96]
    values = [400, 1500, 560, 450, 480, 560, 445]
    assert after_overload(order, loads, values, 500.0).tolist() == [False, False, True, False, False, False, False]
    with_late = local_crossing(loads, values, 500.0)
    without = local_crossing(loads, values, 500.0, order=order)
    assert without.estimate > with_late.estimate  # the drained backlog (560 ms at 101) pulled it low
    assert without.steps == with_late.steps - 1
