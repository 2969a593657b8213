"""The report's per-endpoint cost table and what-if section on known-truth runs: costs recover the
truth, a fixed-mix run says "not identifiable", the ipywidgets sliders redraw the prediction."""

from __future__ import annotations

import pytest

from capkit.analysis import pages
from capkit.analysis.answer.parameters import ReportParameters
from capkit.analysis.answer.result import analyse_run
from capkit.analysis.answer.whatif import mix_design
from capkit.analysis.data.read import read_run
from capkit.schemas import StagePlan
from capkit.store import open_store
from capkit.synthetic.mix import MixTruth, write_mix_run

BASE = {"chat": 4, "analytics": 1, "auth": 1, "ws": 1}


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    store = open_store(f"sqlite:///{tmp_path_factory.mktemp('pages') / 's.sqlite'}")
    write_mix_run(store, "design", mix_design(StagePlan.parse("0x20,15x20,30x20", warmup_s=3), BASE), MixTruth(),
                  seed=4, default_mix=BASE)
    write_mix_run(store, "fixed", StagePlan.parse("0x20,10x20,20x20,30x20,40x20", warmup_s=3), MixTruth(), seed=4,
                  default_mix=BASE, start=1.8e9)
    # a few users: whole users per class round 4:1:1:1 off (the run's mix as it ran is not its --mix)
    write_mix_run(store, "few", StagePlan.parse("0x20,4x20,5x20,6x20", warmup_s=3), MixTruth(), seed=4,
                  default_mix=BASE, start=1.9e9)
    params = ReportParameters(bootstrap=20)
    return {r: analyse_run(read_run(store, r), params) for r in ("design", "fixed", "few")}


def _interval(text: str) -> tuple[float, float]:
    low, high = text.split("(")[1].split(")")[0].replace(",", "").split("–")
    return float(low), float(high)


def test_endpoint_costs_recover_the_truth(results):
    truth = MixTruth()
    costs = pages.endpoint_costs(results["design"]).set_index("Endpoint")
    assert set(costs["Class"]) == set(BASE)
    for name, row in costs.iterrows():
        c = row["Class"]
        low, high = _interval(row["Bytes per request (measured)"])
        assert low <= truth.bytes_per_request[c] * 1.03 and high >= truth.bytes_per_request[c] * 0.97, name
        low, high = _interval(row["CPU ms per request (class, fitted)"])
        assert low <= 1000 * truth.cpu_per_request[c] <= high, name
        assert row["MiB per open session (class, fitted)"].endswith("per WebSocket connection" if c == "ws"
                                                                    else "per session")
    fixed = pages.endpoint_costs(results["fixed"])
    assert fixed["CPU ms per request (class, fitted)"].str.startswith("not identifiable").all()
    assert not fixed["Bytes per request (measured)"].str.contains("not").any()


def test_what_if_table_doubles_each_class_and_names_the_binding_limit(results):
    table = pages.what_if_table(results["design"], users=30)
    assert list(table["Mix"]) == ["the run's mix"] + [f"{c} traffic × 2" for c in BASE]
    assert (table["Binding limit"] == "CPU").all()
    cpu = {m: float(v.split()[0]) for m, v in zip(table["Mix"], table["CPU cores"], strict=True)}
    assert cpu["chat traffic × 2"] > cpu["the run's mix"] > cpu["auth traffic × 2"] * 0.8
    fixed = pages.what_if_table(results["fixed"], users=30)
    assert list(fixed["Mix"]) == ["the run's mix"]  # its own mix only: the classes moved together
    # ... as it ran (users per class round off its --mix): a number, never an error in the report
    few = pages.what_if_table(results["few"], users=6)
    assert list(few["Mix"]) == ["the run's mix"] and float(few["CPU cores"].iloc[0].split()[0]) > 0


def test_the_sliders_redraw_the_prediction(results):
    box = pages.what_if_view(results["design"], interactive=True, users=30)
    *sliders, load, out = box.children
    before = out.value
    assert "CPU" in before and "users per replica" in before
    next(s for s in sliders if s.description == "chat").value = 10.0
    after = out.value
    assert before != after and "CPU" in after
    load.value = 60
    assert out.value != after
    assert pages.what_if_view(results["design"], interactive=False) is None
