"""Figures of a capacity report (seaborn/matplotlib); each returns its Figure."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns

from capkit.analysis.regression import ResourceFit
from capkit.schemas import RESOURCES


def plot_resource_fits(report):
    """Each resource against users: per-second samples, step means, the fit with its CI and PI."""
    names = [r for r in RESOURCES if r in report.per_second.columns]
    fig, axes = plt.subplots(1, max(len(names), 1), figsize=(4.2 * max(len(names), 1), 3.6), squeeze=False)
    for ax, resource in zip(axes[0], names):
        label, unit = RESOURCES[resource]
        data = report.per_second[["users", resource, "step"]].dropna()
        clean = data["step"].isin(report.steps.loc[report.steps["clean"], "step"])
        sns.stripplot(data=data[clean], x="users", y=resource, native_scale=True, alpha=0.35, size=3,
                      color="tab:blue", ax=ax, jitter=0.3)
        if (~clean).any():
            ax.scatter(data.loc[~clean, "users"], data.loc[~clean, resource], marker="x", color="tab:red",
                       s=12, label="flagged step")
        fit = report.fits.get(resource)
        if isinstance(fit, ResourceFit):
            top = max(data["users"].max(), 1) * 1.15
            grid = fit.predict(np.linspace(0, top, 60))
            ax.plot(grid["users"], grid["mean"], color="black", lw=1.2, label="fit")
            ax.fill_between(grid["users"], grid["ci_low"], grid["ci_high"], color="black", alpha=0.2,
                            label=f"{fit.level:.0%} CI")
            ax.fill_between(grid["users"], grid["pi_low"], grid["pi_high"], color="tab:orange", alpha=0.15,
                            label=f"{fit.level:.0%} PI")
            ax.set_title(f"{label}: {fit.per_user:.3g} {unit}/user")
        else:
            ax.set_title(f"{label}: no fit")
        ax.set_xlabel("active users")
        ax.set_ylabel(f"{label} ({unit})")
        ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return fig


def plot_latency(report, warning_ms: float = 500.0, critical_ms: float = 2000.0):
    """p50/p95/p99 per step against users, with the warning and critical thresholds."""
    steps = report.steps[report.steps["users"] > 0]
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for q, style in (("p50_ms", ":"), ("p95_ms", "-"), ("p99_ms", "--")):
        ax.plot(steps["users"], steps[q], style, marker="o", label=q.replace("_ms", ""))
    top = np.nanmax(steps[["p99_ms"]].to_numpy()) if len(steps) else 1.0
    for value, name, color in ((warning_ms, "warning", "tab:orange"), (critical_ms, "critical", "tab:red")):
        if math.isfinite(top) and value <= top * 1.5:
            ax.axhline(value, color=color, lw=1, label=f"{name} {value:g} ms")
    ax.set_xlabel("active users")
    ax.set_ylabel("latency (ms)")
    ax.set_title("Latency per step (exact, merged HDR histograms)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_throughput(report):
    """Requests per second per step against users."""
    steps = report.steps[report.steps["users"] > 0]
    fig, ax = plt.subplots(figsize=(6, 3.6))
    sns.lineplot(data=steps, x="users", y="rps", marker="o", ax=ax)
    ax.set_xlabel("active users")
    ax.set_ylabel("requests/s")
    ax.set_title("Throughput per step")
    fig.tight_layout()
    return fig
