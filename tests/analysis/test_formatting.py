"""Numbers, statuses and tables for people; the answer the pages open with; the USL in words."""

import math
import re

import numpy as np
import pandas as pd
import pytest

from capkit import analysis as ca
from capkit.analysis.fits.usl import fit_usl
from capkit.analysis.present import tables as display
from capkit.analysis.present import text as fmt
from capkit.analysis.present.headline import answer_html, key_facts
from capkit.analysis.present.sentences import usl_summary
from capkit.synthetic import SyntheticTruth
from tests.analysis.synth import run, store

RAW = re.compile(r"(?<![\w.])((?i:nan|inf)|None)(?![\w])|\d(\.\d+)?[eE][-+]?\d")


@pytest.mark.parametrize("value, text", [
    (2165.1945, "2,170"), (1.32478e-18, "1.32 × 10⁻¹⁸"), (0.012345, "0.0123"), (12.0, "12.0"), (0.0, "0"),
    (math.nan, "–"), (None, "–"), (math.inf, "∞"), (-0.5, "-0.500"), (123456789.0, "123,000,000"),
    (5e-324, "4.94 × 10⁻³²⁴"), (9.996e-5, "1.00 × 10⁻⁴")])  # a subnormal σ from a fit; a mantissa that rounds up
def test_number_has_three_significant_digits_and_no_raw_repr(value, text):
    assert fmt.number(value) == text


def test_interval_rounds_to_what_its_width_supports_and_calls_zero_zero():
    assert fmt.interval(0.0201098, 0.0198749, 0.0203446) == "0.02011 (0.01987–0.02034)"
    assert fmt.interval(1832.4, 1774.2, 1893.9) == "1,832 (1,774–1,894)"
    assert fmt.interval(5e-19, 0.0, 0.00042) == "≈ 0 (0–0.00042)"
    assert fmt.users(math.inf) == "not reached" and fmt.users(48.9) == "49" and fmt.users(12345.0) == "12,300"


def test_status_is_text_and_a_coloured_dot_not_an_emoji():
    html = fmt.status_html("⚠️ Needs attention")
    assert "Needs attention" in html and "●" in html and "ck-attention" in html and "⚠" not in html
    assert fmt.status_text("❌ Failing") == "[XX] Failing" and fmt.status_text("✅ Stable") == "[ok] Stable"
    assert fmt.status_of("something else") == "unknown"


def test_tables_have_no_index_column_scroll_and_format_cells():
    frame = pd.DataFrame({"Throughput (req/s)": [2165.1945, math.nan], "Status": ["✅ Stable", "❌ Failing"]},
                         index=[7, 8])
    html = fmt.frame_html(frame)
    assert 'class="ck-scroll"' in html and "overflow-x:auto" in html
    assert ">7<" not in html and ">2,170<" in html and ">–<" in html and "nan" not in html
    text = fmt.terminal_table(frame)
    assert text.splitlines()[0].split() == ["Throughput", "(req/s)", "Status"]
    assert "2,170" in text and "[XX] Failing" in text and "nan" not in text and "✅" not in text


def test_every_view_is_free_of_raw_reprs(result):
    for name in display.__all__:
        if name.endswith("_view") and name != "crossings_view" or (name == "crossings_view" and result.latency):
            frame = getattr(display, name)(result)
            text = fmt.terminal_table(frame, max_width=10_000)
            assert not RAW.search(text), (name, RAW.search(text).group(0), text)


def test_the_answer_names_capacity_basis_binding_limit_scale_out_and_replicas(result):
    facts = key_facts(result)
    assert facts.headline.startswith("One replica carries about **")
    labels = [n.label for n in facts.numbers]
    assert labels[:3] == ["Capacity per replica", "Binding limit", "Scale out at"]
    assert labels[3] == "Replicas for 100 users"
    assert facts.data["capacity_basis"] in ("measured", "projected")
    plan = result.replicas
    assert facts.data["replicas"] == plan.replicas  # the same plan the replicas table shows
    # the capacity is the smallest per-replica planning bound of the limits that end a replica's load
    assert math.floor(facts.data["capacity_low"]) == int(plan.table["per_replica"].min())
    html = answer_html(result)
    assert "ck-answer" in html and "<strong>" in html and "**" not in html


def test_the_answer_is_the_one_the_tables_use(result):
    facts = key_facts(result)
    assert facts.data["headline"].startswith(result.answer.headline)
    assert facts.data["capacity_users"] == result.answer.capacity.users.estimate
    assert facts.data["capacity_basis"] == str(result.answer.capacity.basis)


def test_no_limit_reached_fails_closed():
    st = store()
    flat = SyntheticTruth(per_user={"cpu_cores": 0.0, "rss_mib": 0.0, "db_connections": 0.0, "network_kbps": 0.0})
    r, _ = run(st, "flat", flat, seed=3)
    res = ca.analyse_run(r, ca.ReportParameters(bootstrap=20, criteria={"p95_warning_ms": 1e6, "p95_critical_ms": 2e6}))
    facts = key_facts(res)
    assert "not measured" in facts.headline and facts.data["capacity_users"] is None
    assert facts.numbers[0].value == "not measured"


def test_usl_with_no_contention_says_linear_not_contention_limited():
    rng = np.random.default_rng(4)
    n = np.array([2, 4, 6, 8, 10, 12], dtype=float)
    x = 3.0 * n * (1 + rng.normal(0, 0.01, n.size))  # linear throughput, 1 % noise
    fit = fit_usl(n, x, bootstrap=100, seed=0)
    assert fit.regime() == "linear"
    assert "no contention or coherency measured (σ, κ ≈ 0)" in usl_summary(fit)
    assert "contention-limited" not in usl_summary(fit)
    contended = fit_usl(n, 3.0 * n / (1 + 0.08 * (n - 1)) * (1 + rng.normal(0, 0.005, n.size)), bootstrap=100)
    assert contended.regime() == "contention" and "contention-limited" in usl_summary(contended)
