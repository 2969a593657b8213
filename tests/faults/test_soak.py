"""Soak runs: a leak is found with its rate (MiB/hour) and interval; no leak is not flagged,
also under autocorrelated noise; the real reference service leaking on purpose is caught."""

from __future__ import annotations

import numpy as np
import pytest

from capkit import analysis as ca
from capkit.analysis.fits.soak import leak_rate, soak_leak
from capkit.runs.orchestrator import run_load
from capkit.schemas import NotMeasured, RunSpec, StagePlan
from capkit.synthetic import soak_series
from tests.loadrun import PLAIN, reference_service, store  # noqa: F401 (fixtures)

RUNS = 300


def test_no_leak_is_not_flagged_under_autocorrelated_noise():
    flagged = sum(leak_rate(*soak_series(1800, ar=0.97, seed=seed)).leak for seed in range(RUNS))
    naive = 0  # what per-second OLS standard errors would claim on the same data
    for seed in range(100):
        from statsmodels.regression.linear_model import OLS

        ts, y = soak_series(1800, ar=0.97, seed=seed)
        naive += OLS(y, np.column_stack([np.ones_like(ts), ts - ts[0]])).fit().pvalues[1] < 0.01
    print(f"false leaks: {flagged}/{RUNS} (block means), {naive}/100 (per-second OLS)")
    assert flagged / RUNS <= 0.05
    assert naive / 100 > 0.3  # the noise is hard enough to fool the naive test


def test_leak_rate_recovered_with_its_interval():
    covered = found = 0
    for seed in range(100):
        result = leak_rate(*soak_series(1800, leak_per_hour=20.0, ar=0.97, seed=seed))
        found += result.leak
        covered += result.rate_per_hour.low <= 20.0 <= result.rate_per_hour.high
    print(f"20 MiB/h leak over 30 min: found {found}/100, interval covers the truth {covered}/100")
    assert found >= 90 and covered >= 90


def test_short_soak_is_not_measured():
    assert isinstance(leak_rate(*soak_series(10)), NotMeasured)


@pytest.mark.parametrize("leak_bytes", [32768], ids=["32KiB"])
def test_reference_service_leak_is_caught(reference_service, store, tmp_path, leak_bytes):  # noqa: F811
    svc = reference_service(leak_bytes_per_request=leak_bytes)
    locustfile = tmp_path / "plain.py"
    locustfile.write_text(PLAIN)
    plan = StagePlan.parse("0x1,3x2", warmup_s=0.5).with_soak(15)
    spec = RunSpec(run_id="soak", target=svc.url, plan=plan)
    result = run_load(spec, store=store, raw_dir=tmp_path / "runs" / "soak", locustfiles=[locustfile],
                      service_pid=svc.pid)
    assert result.status == "complete", result.reason
    run = ca.read_run(store, "soak")
    leak = soak_leak(run)
    soak = run.steps.iloc[-1]
    req = run.requests[run.requests["step"] == soak["step"]]
    per_s = req["count"].sum() / (soak["ended_at"] - soak["started_at"])
    expected = leak_bytes * (per_s + 1) * 3600 / 2**20  # + the /metrics scrape each second
    print(f"{leak.summary()}; expected ≈ {expected:,.0f} MiB/h from {per_s:.0f} req/s")
    assert leak.leak and leak.rate_per_hour.low > 0
    assert 0.5 * expected <= leak.rate_per_hour.estimate <= 1.5 * expected


def test_bad_soak_is_one_line(tmp_path):
    from tests.conftest import assert_one_line_error, run_cli

    proc = run_cli("run", "--soak", "forever", "--stages", "0x5",
                   env={"CAPKIT_STORE_URL": f"sqlite:///{tmp_path / 's.sqlite'}"})
    assert_one_line_error(proc, "--soak 'forever'", "30m")
    assert not (tmp_path / "s.sqlite").exists()  # nothing written
