"""Figures of a capacity report (seaborn/matplotlib); each returns its Figure."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np

from capkit.analysis.fits.regression import ResourceFit
from capkit.analysis.present.charts import plot_capacity, plot_history
from capkit.analysis.present.figstyle import report_figure
from capkit.analysis.present.text import number
from capkit.schemas import RESOURCES

__all__ = ["plot_capacity", "plot_history", "plot_resource_fits", "plot_usl", "plot_latency_model", "plot_backtest",
           "plot_comparison"]


@report_figure
def plot_resource_fits(resources):
    """Each resource against users: per-second samples, step means, the fit with its CI and PI."""
    names = [r for r in RESOURCES if r in resources.per_second.columns]
    ncols = min(max(len(names), 1), 2)
    nrows = max(math.ceil(len(names) / ncols), 1)
    fig, axes = plt.subplots(nrows, ncols, figsize=(10, 3.4 * nrows), squeeze=False)
    for ax in axes.flat[len(names):]:
        ax.set_visible(False)
    for ax, resource in zip(axes.flat, names):
        label, unit = RESOURCES[resource]
        data = resources.per_second[["users", resource, "step"]].dropna()
        clean = data["step"].isin(resources.steps.loc[resources.steps["clean"], "step"])
        # jittered scatter (seaborn's stripplot costs ~1 s per report for the same picture)
        jitter = np.random.default_rng(0).uniform(-0.3, 0.3, int(clean.sum()))
        ax.plot(data.loc[clean, "users"] + jitter, data.loc[clean, resource], ls="none", marker="o", ms=2.5,
                alpha=0.35, color="tab:blue")
        if (~clean).any():
            ax.scatter(data.loc[~clean, "users"], data.loc[~clean, resource], marker="x", color="tab:red",
                       s=12, label="flagged step")
        fit = resources.fits.get(resource)
        if isinstance(fit, ResourceFit):
            top = max(data["users"].max(), 1) * 1.15
            grid = fit.predict(np.linspace(0, top, 60))
            ax.plot(grid["users"], grid["mean"], color="black", lw=1.2, label="fit")
            ax.fill_between(grid["users"], grid["ci_low"], grid["ci_high"], color="black", alpha=0.2,
                            label=f"{fit.level:.0%} CI")
            ax.fill_between(grid["users"], grid["pi_low"], grid["pi_high"], color="tab:orange", alpha=0.15,
                            label=f"{fit.level:.0%} PI (step mean)")
            ax.set_title(f"{label}: {number(fit.per_user.estimate)} {unit} per user")
        else:
            ax.set_title(f"{label}: not measured (no fit)")
        ax.set_xlabel("active users")
        ax.set_ylabel(f"{label} ({unit})")
        if ax.get_legend_handles_labels()[0]:  # nothing labelled (no fit, no flagged step): no empty legend
            ax.legend(loc="upper left", fontsize=8.5)
    return fig


@report_figure
def plot_usl(result):
    """Throughput per clean step with the USL curve and its bootstrap band."""
    fig, ax = plt.subplots(figsize=(8, 4.5))
    steps = result.resources.steps[(result.resources.steps["users"] > 0)]
    clean = steps["clean"]
    ax.scatter(steps.loc[clean, "users"], steps.loc[clean, "rps"], color="tab:blue", label="clean step", zorder=3)
    if (~clean).any():
        ax.scatter(steps.loc[~clean, "users"], steps.loc[~clean, "rps"], marker="x", color="tab:red",
                   label="flagged step")
    usl = result.usl
    if usl is not None:
        top = max(float(steps["users"].max()) * 2, min(usl.peak_concurrency * 1.2, float(steps["users"].max()) * 4))
        n = np.linspace(1, top, 200)
        ax.plot(n, usl.predict(n), color="black", lw=1.2, label=f"USL fit (σ = {number(usl.sigma)}, κ "
                f"{'≈ 0' if usl.negligible('kappa') else '= ' + number(usl.kappa)})")
        if usl.samples is not None:
            from capkit.analysis.fits.usl import usl_throughput

            band = np.array([usl_throughput(n, *s) for s in usl.draws(0.95)])
            ax.fill_between(n, np.quantile(band, 0.025, axis=0), np.quantile(band, 0.975, axis=0), color="black",
                            alpha=0.15, label="95 % bootstrap band")
    ax.set_xlabel("active users")
    ax.set_ylabel("requests/s")
    ax.set_title("Throughput and the Universal Scalability Law")
    ax.legend()
    return fig


@report_figure
def plot_latency_model(result):
    """Measured mean and p95 per step, the modelled curves, the p95 band and the thresholds."""
    fig, ax = plt.subplots(figsize=(8, 4.5))
    lat = result.latency
    steps = result.resources.steps[result.resources.steps["users"] > 0]
    ax.scatter(steps["users"], steps["mean_ms"], color="tab:blue", label="mean (measured)")
    ax.scatter(steps["users"], steps["p95_ms"], color="tab:orange", label="p95 (measured)")
    if lat is not None:
        crossings = result.latency_crossings()
        top = max(float(np.nanmax(crossings["high"].replace(np.inf, np.nan).to_numpy(float), initial=0)),
                  float(steps["users"].max())) * 1.2
        pred = lat.predict(np.linspace(1, top, 200))
        ax.plot(pred["users"], pred["mean_ms"], color="tab:blue", lw=1, label="mean model")
        ax.plot(pred["users"], pred["p95_ms"], color="tab:orange", lw=1, label="p95 model")
        ax.fill_between(pred["users"], pred["p95_low"], pred["p95_high"], color="tab:orange", alpha=0.15)
        for row, color in zip(crossings.itertuples(), ("tab:olive", "tab:red"), strict=False):
            ax.axhline(row.ms, color=color, lw=0.8, ls="--", label=f"{row.threshold} {row.ms:,.0f} ms")
            if math.isfinite(row.users):
                ax.axvline(row.users, color=color, lw=0.8, ls=":")
    ax.set_xlabel("active users")
    ax.set_ylabel("latency (ms)")
    ax.set_title("Latency model")
    ax.legend()
    return fig


@report_figure
def plot_backtest(result):
    """Observed against predicted for the held-out steps, one panel per quantity (None without a backtest)."""
    bt = result.backtest
    if bt is None or bt.predictions.empty:
        return None
    quantities = list(dict.fromkeys(bt.predictions["quantity"]))
    ncols = min(len(quantities), 3)
    nrows = math.ceil(len(quantities) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(10, 3.0 * nrows), squeeze=False)
    for ax in axes.flat[len(quantities):]:
        ax.set_visible(False)
    for ax, q in zip(axes.flat, quantities):
        d = bt.predictions[bt.predictions["quantity"] == q]
        # a percentile interval need not hold its point (skewed draws, float noise of a degenerate
        # one): the bars go from the point to each bound that lies beyond it; NaN bounds draw none
        below, above = (np.nan_to_num(np.clip(v.to_numpy(float), 0, None))
                        for v in (d["predicted"] - d["low"], d["high"] - d["predicted"]))
        ax.errorbar(d["users"], d["predicted"], yerr=[below, above],
                    fmt="o", color="black", ms=3, label="predicted")
        ax.scatter(d["users"], d["observed"], color="tab:red", zorder=3, s=14, label="observed")
        ax.set_title(q)
        ax.set_xlabel("active users")
    axes[0][0].legend()
    return fig


@report_figure
def plot_comparison(result_a, result_b, name_a: str = "A", name_b: str = "B"):
    """Throughput per step of two runs with their USL curves, and CPU per second against users."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for result, name, color in ((result_a, name_a, "tab:blue"), (result_b, name_b, "tab:orange")):
        s = result.resources.steps[result.resources.steps["clean"] & (result.resources.steps["users"] > 0)]
        axes[0].scatter(s["users"], s["rps"], color=color, label=name)
        if result.usl is not None:
            n = np.linspace(1, float(s["users"].max()) * 1.5, 100)
            axes[0].plot(n, result.usl.predict(n), color=color, lw=1)
        fit = result.resources.fits.get("cpu_cores")
        if isinstance(fit, ResourceFit):
            grid = fit.predict(np.linspace(0, float(s["users"].max()) * 1.2, 50))
            axes[1].plot(grid["users"], grid["mean"], color=color,
                         label=f"{name}: {number(fit.per_user.estimate)} cores per user")
            axes[1].fill_between(grid["users"], grid["ci_low"], grid["ci_high"], color=color, alpha=0.2)
    axes[0].set(xlabel="active users", ylabel="requests/s", title="Throughput")
    axes[1].set(xlabel="active users", ylabel="CPU (cores)", title="CPU fit (95 % CI)")
    axes[0].legend()
    axes[1].legend()
    return fig
