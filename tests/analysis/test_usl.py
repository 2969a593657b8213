"""USL fit: published reference fits, known truth, bootstrap reproducibility, bad input.

Reference data live in ``tests/analysis/data/`` with a header naming where data and numbers
come from. ``assert_printed`` checks a value against a published printout: within half a unit of
the last printed digit, or within ``rel`` where the printout carries more digits than the
publishing optimiser converged to (its stopping rule, not the model, decides those digits).
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from capkit.analysis.fits.usl import _solve, _solve_many, fit_usl, read_usl_csv, usl_from_steps, usl_throughput
from capkit.analysis.present.sentences import peak_sentence, usl_report, usl_summary
from capkit.errors import ConfigError, InsufficientDataError

DATA = Path(__file__).parent / "data"


def assert_printed(actual: float, printed: str, rel: float = 0.0) -> None:
    decimals = len(printed.split(".")[1]) if "." in printed else 0
    tol = max(0.5 * 10.0**-decimals, rel * abs(float(printed)))
    assert abs(actual - float(printed)) <= tol, f"{actual!r} != {printed} (tolerance {tol:g})"


def load(name: str):
    return read_usl_csv(str(DATA / f"{name}.csv"))


# --- published reference fits ------------------------------------------------------------------


def test_cisco_matches_codahale_usl_and_usl4j():
    # codahale/usl model_test.go: EquateApprox(1e-5, 1e-5); usl4j ModelTest: book values within 0.02 %.
    n, x = load("cisco")
    fit = fit_usl(n, x, bootstrap=0)
    assert fit.sigma == pytest.approx(0.02671591, rel=1e-5)
    assert fit.kappa == pytest.approx(7.690945e-4, rel=1e-5)
    assert fit.lambda_ == pytest.approx(995.6486, rel=1e-5)
    assert math.floor(fit.peak_concurrency) == 35  # codahale's MaxConcurrency floors N*
    assert fit.predict(35) == pytest.approx(12341.745415132369, rel=1e-5)  # codahale MaxThroughput = X(35)
    assert fit.predict(1) == pytest.approx(995.648772003358, rel=1e-5)
    assert fit.predict(20) == pytest.approx(11063.63312570436, rel=1e-5)
    assert fit.max_throughput == pytest.approx(12341, rel=2e-4)  # usl4j BOOK_X_MAX
    assert fit.limit == "contention"  # codahale: ContentionConstrained true, CoherencyConstrained false


def test_specsdm91_matches_r_usl_nlxb():
    # smoeding/usl tests/usl-nlxb.Rout.save, summary.Rout.save, peak-scalability.Rout.save (R 3.6.2).
    n, x = load("specsdm91")
    fit = fit_usl(n, x, bootstrap=0)
    assert_printed(fit.sigma, "0.0277285", rel=1e-7)
    assert_printed(fit.kappa, "0.0001044", rel=1e-7)
    assert_printed(fit.lambda_, "89.9952330", rel=1e-7)
    assert_printed(fit.stderr["sigma"], "0.0091217", rel=1e-7)
    assert_printed(fit.stderr["kappa"], "0.0000199", rel=1e-7)
    assert_printed(fit.stderr["lambda_"], "14.2134894", rel=1e-7)
    assert fit.df_residual == 4
    assert_printed(fit.residual_std_error, "82.85")
    assert_printed(fit.r_squared, "0.9896")
    assert float(f"{fit.peak_concurrency:.2g}") == 97  # signif(peak.scalability(u), 2)
    # fitted.Rout.save and residuals.Rout.save (digits = 3)
    np.testing.assert_allclose(fit.predict(n), [90, 1078, 1541, 1850, 1879, 1822, 1646], atol=0.5)
    np.testing.assert_allclose(x - fit.predict(n), [-25.10, -81.66, 111.09, 3.05, -49.99, -46.60, 56.00],
                               atol=0.005)
    # asymptotic intervals are estimate ± t(0.975, 4 df) · SE, as R's confint(usl) does
    ci = fit.confint(0.95)
    assert ci.at["sigma", "lower"] == pytest.approx(fit.sigma - 2.776445 * fit.stderr["sigma"], rel=1e-6)


def test_codahale_cli_example_to_its_printed_precision():
    # codahale/usl cmd/usl/usl_test.go prints σ=0.0277299, κ=0.000104343, λ=89.9878 (%g).
    # Its Levenberg–Marquardt stops at eps 1e-8, a little short of the least-squares optimum,
    # so those digits agree to 4 significant figures; our fit has the smaller residual sum.
    n, x = load("codahale_example")
    fit = fit_usl(n, x, bootstrap=0)
    assert fit.sigma == pytest.approx(0.0277299, rel=1e-4)
    assert fit.kappa == pytest.approx(0.000104343, rel=1e-4)
    assert fit.lambda_ == pytest.approx(89.9878, rel=1e-4)

    def sse(theta):
        return float(np.sum((usl_throughput(n, *theta) - x) ** 2))

    assert sse((fit.sigma, fit.kappa, fit.lambda_)) <= sse((0.0277299, 0.000104343, 89.9878))
    assert math.floor(fit.peak_concurrency) == 96  # "max concurrency: 96"
    assert fit.predict(96) == pytest.approx(1883.76, rel=1e-5)  # "max throughput: 1883.76"
    assert fit.limit == "contention"  # "contention constrained"


def test_r_usl_t04_and_coef_examples():
    # smoeding/usl tests/t04.Rout.save (usl 1.x, nlmrt::nlxb): sigma 0.0418302, kappa 0.0004091,
    # scale factor (λ) 12.67, residual standard error 8.859 computed with 6 df (σ, κ counted only).
    n, x = load("rusl_t04")
    fit = fit_usl(n, x, bootstrap=0)
    assert_printed(fit.sigma, "0.0418302", rel=1e-5)
    assert_printed(fit.kappa, "0.0004091")
    assert_printed(fit.lambda_, "12.67")
    assert_printed(fit.residual_std_error * math.sqrt(5 / 6), "8.859")
    # smoeding/usl tests/coef.Rout.save: signif(coef, 3) = 0.02, 0.02, 1.00
    n, x = load("rusl_coef")
    fit = fit_usl(n, x, bootstrap=0)
    assert float(f"{fit.sigma:.3g}") == 0.02
    assert float(f"{fit.kappa:.3g}") == 0.02
    assert float(f"{fit.lambda_:.3g}") == 1.00


# --- known truth --------------------------------------------------------------------------------

TRUE = {"sigma": 0.04, "kappa": 4e-4, "lambda_": 120.0}


def synthetic(seed: int = 7, noise: float = 0.01):
    n = np.array([1, 2, 4, 8, 12, 16, 24, 32, 40, 48, 64, 80, 96], dtype=float)
    x = usl_throughput(n, *TRUE.values()) * (1 + noise * np.random.default_rng(seed).standard_normal(n.size))
    return n, x


@pytest.mark.parametrize("bootstrap", [0, 200])
def test_recovers_known_parameters_within_intervals(bootstrap):
    fit = fit_usl(*synthetic(), bootstrap=bootstrap, seed=1)
    ci = fit.confint(0.95)
    assert list(ci.columns) == ["lower", "upper"]
    for name, true in TRUE.items():
        assert ci.at[name, "lower"] <= true <= ci.at[name, "upper"], (name, ci.loc[name].tolist())
        assert getattr(fit, name) == pytest.approx(true, rel=0.25)
    true_peak = math.sqrt((1 - TRUE["sigma"]) / TRUE["kappa"])
    assert ci.at["peak_concurrency", "lower"] <= true_peak <= ci.at["peak_concurrency", "upper"]
    assert ci.at["sigma", "lower"] <= fit.sigma <= ci.at["sigma", "upper"]


def test_bootstrap_is_reproducible_with_the_same_seed():
    data = synthetic()
    a = fit_usl(*data, bootstrap=50, seed=42)
    b = fit_usl(*data, bootstrap=50, seed=42)
    c = fit_usl(*data, bootstrap=50, seed=43)
    np.testing.assert_array_equal(a.samples, b.samples)
    pd.testing.assert_frame_equal(a.confint(0.9), b.confint(0.9))
    assert not np.array_equal(a.samples, c.samples)
    assert a.samples.shape == (50, 3)
    narrow, wide = a.confint(0.5), a.confint(0.99)
    assert (wide["lower"] <= narrow["lower"]).all() and (wide["upper"] >= narrow["upper"]).all()


def test_predict_shape_and_monotonic_up_to_peak():
    fit = fit_usl(*synthetic(), bootstrap=0)
    assert isinstance(fit.predict(10), float)
    grid = np.arange(1, 201, dtype=float).reshape(20, 10)
    assert fit.predict(grid).shape == (20, 10)
    n = np.linspace(1, fit.peak_concurrency, 200)
    assert np.all(np.diff(fit.predict(n)) > 0)
    beyond = np.linspace(fit.peak_concurrency, 5 * fit.peak_concurrency, 200)
    assert np.all(np.diff(fit.predict(beyond)) < 0)
    assert fit.predict(fit.peak_concurrency) == pytest.approx(fit.max_throughput)


def test_kappa_zero_means_no_peak():
    n = np.array([1, 2, 4, 8, 16, 32], dtype=float)
    amdahl = usl_throughput(n, 0.05, 0.0, 10.0)
    fit = fit_usl(n, amdahl, bootstrap=0)
    assert fit.kappa < 1e-9 and fit.sigma == pytest.approx(0.05, rel=1e-6)
    flat = dataclasses.replace(fit, kappa=0.0)
    assert flat.peak_concurrency == math.inf
    assert flat.max_throughput == pytest.approx(flat.lambda_ / flat.sigma)
    assert flat.limit == "contention"
    d = flat.to_dict()
    assert d["peak_concurrency"] is None and d["retrograde"] is False
    json.dumps(d, allow_nan=False)
    assert "no retrograde region" in usl_summary(flat)
    # the fit's own κ is ~1e-25: its N* (~1e12) is noise, printed as no peak with what bounds it
    assert fit.peak_basis() == "not measured" and fit.to_dict()["peak_basis"] == "not measured"
    text = usl_summary(fit)
    assert "peak: no peak measured (κ ≈ 0" in text and "e+1" not in text


def test_the_peak_says_whether_it_was_projected_or_extrapolated():
    n = np.array([1, 2, 4, 8, 16, 32], dtype=float)
    near = fit_usl(n, usl_throughput(n, 0.02, 0.0008, 10.0), bootstrap=0)  # N* = 35: inside 1.25 × 32
    assert near.peak_basis() == "projected" and peak_sentence(near).endswith("users (projected)")
    low = np.array([1, 2, 4, 8, 12, 16], dtype=float)  # N* = 22 seen from 16 users at most: beyond 1.25 × 16
    far = fit_usl(low, usl_throughput(low, 0.02, 0.002, 10.0) * (1 + np.array([0, 1e-3, -1e-3, 0, 1e-3, 0])),
                  bootstrap=0)
    assert far.peak_basis() == "extrapolated", usl_summary(far)
    assert "(extrapolated: beyond 1.25× the highest measured concurrency, 16)" in peak_sentence(far)


def test_summary_and_to_dict():
    fit = fit_usl(*load("specsdm91"), bootstrap=30, seed=0)
    text = usl_summary(fit)
    assert 5 <= len(text.splitlines()) <= 10
    for word in ("sigma", "kappa", "lambda", "peak N*", "contention-limited", "bootstrap"):
        assert word in text
    d = fit.to_dict()
    assert d["bootstrap"] == 30 and d["seed"] == 0 and d["interval_method"] == "bootstrap"
    assert set(d["confint"]) == {"sigma", "kappa", "lambda_", "peak_concurrency", "max_throughput"}
    json.dumps(d, allow_nan=False)


# --- steps helper and CLI report ----------------------------------------------------------------


def test_usl_from_steps_drops_idle_step():
    n, x = synthetic()
    steps = pd.DataFrame({"users": np.r_[0, n], "rps": np.r_[0.0, x], "p95_ms": 1.0})
    fit = usl_from_steps(steps, bootstrap=0)
    assert fit.concurrency.size == n.size
    assert fit.sigma == pytest.approx(fit_usl(n, x, bootstrap=0).sigma)
    with pytest.raises(ConfigError, match="rps"):
        usl_from_steps(steps.drop(columns="rps"))


def test_usl_report_text_and_json(tmp_path):
    text = usl_report(str(DATA / "codahale_example.csv"), as_json=False, bootstrap=20, seed=3)
    assert "sigma" in text and "peak N*" in text
    d = json.loads(usl_report(str(DATA / "cisco.csv"), as_json=True, bootstrap=0, seed=0))
    assert d["sigma"] == pytest.approx(0.02671591, rel=1e-5) and d["interval_method"] == "asymptotic"
    plain = tmp_path / "plain.csv"
    plain.write_text("1, 10\n2, 19\n4,  33\n8,50\n")
    assert read_usl_csv(str(plain))[0].tolist() == [1, 2, 4, 8]


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("n,x\n1,2,3\n", "columns"),
        ("n,x,y\n1,2,3\n2,3,4\n", "2 columns"),
        ("n,x\n1,10\n2,abc\n4,30\n", "not two numbers"),
        ("", "no data"),
    ],
)
def test_usl_report_rejects_bad_files(tmp_path, content, match):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(ConfigError, match=match) as err:
        usl_report(str(path), as_json=False, bootstrap=0, seed=0)
    assert "\n" not in str(err.value)


def test_usl_report_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        usl_report(str(tmp_path / "nope.csv"), as_json=True, bootstrap=0, seed=0)


# --- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "x", "error"),
    [
        ([1, 2], [10, 19], InsufficientDataError),
        ([1, 1, 2, 2], [10, 11, 19, 18], InsufficientDataError),
        ([], [], InsufficientDataError),
        ([1, 2, 4], [10, 19], ConfigError),
        ([1, 2, 4, 8], [10, float("nan"), 33, 50], ConfigError),
        ([1, 2, 4, 8], [10, 19, -33, 50], ConfigError),
        ([0, 2, 4, 8], [10, 19, 33, 50], ConfigError),
        ([1, 2, 4, 8], ["a", 19, 33, 50], ConfigError),
    ],
)
def test_bad_input_raises_one_line(n, x, error):
    with pytest.raises(error) as err:
        fit_usl(n, x, bootstrap=0)
    assert "\n" not in str(err.value) and str(err.value)


def test_bad_options():
    n, x = synthetic()
    with pytest.raises(ConfigError, match="bootstrap"):
        fit_usl(n, x, bootstrap=-1)
    with pytest.raises(ConfigError, match="level"):
        fit_usl(n, x, bootstrap=0).confint(1.5)


# --- the vectorised bootstrap refit agrees with SciPy's per-resample fit -----------------------


def _resamples(n, x, count=200, seed=0):
    theta, _ = _solve(n, x)
    fitted = usl_throughput(n, *theta)
    rng = np.random.default_rng(seed)
    resid = (x - fitted) - np.mean(x - fitted)
    return theta, np.array([np.maximum(fitted + rng.choice(resid, size=n.size, replace=True), 1e-9 * fitted)
                            for _ in range(count)])


@pytest.mark.parametrize("case", ["cisco", "specsdm91", "amdahl"])
def test_batched_bootstrap_refits_match_least_squares(case):
    """Each of 200 resamples: the batched Levenberg–Marquardt reaches SciPy's optimum (same cost to
    1e-9, same parameters to 1e-5 or 1e-8 absolute), including κ held at its bound (Amdahl data)."""
    if case == "amdahl":
        n = np.arange(1, 17.0)
        x = 100 * n / (1 + 0.1 * (n - 1)) * (1 + np.random.default_rng(3).normal(0, 0.01, n.size))
    else:
        n, x = load(case)
    theta, ys = _resamples(n, x)
    batch, ok = _solve_many(n, ys, theta)
    ref = np.array([_solve(n, y, start=theta, tol=1e-10)[0] for y in ys])
    assert ok.all()

    def cost(t, y):
        return float(np.sum((usl_throughput(n, *t) - y) ** 2))

    for b, r, y in zip(batch, ref, ys):
        assert cost(b, y) <= cost(r, y) * (1 + 1e-9)
        np.testing.assert_allclose(b, r, rtol=1e-5, atol=1e-8)
    if case == "amdahl":
        assert (batch[:, 1] == 0).sum() > 20  # κ at its bound in many resamples: the active set is exercised


def test_batched_refit_reports_rows_it_did_not_finish():
    n, x = load("cisco")
    theta, ys = _resamples(n, x, count=20)
    _, ok = _solve_many(n, ys, theta * np.array([3.0, 0.2, 0.5]), max_iter=1)
    assert not ok.any()  # fit_usl refits these with least_squares


def test_peak_interval_is_infinite_not_nan_when_resamples_have_no_peak():
    """Linear scaling (κ ≈ 0): most resamples hold κ at its bound, N* = inf; the interval says so."""
    n = np.arange(1, 17.0)
    x = 50 * n * (1 + np.random.default_rng(1).normal(0, 0.01, n.size))
    fit = fit_usl(n, x, bootstrap=200, seed=0)
    assert (fit.samples[:, 1] == 0).mean() > 0.5
    ci = fit.confint(0.95)
    assert not ci.isna().any().any()
    assert ci.loc["peak_concurrency", "upper"] == math.inf
