"""The two figures a reader looks at first: the capacity chart of one run and the history across runs."""

from __future__ import annotations

import math
from datetime import datetime, timezone

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from capkit.analysis.data.steps import DERIVED_TYPES, request_window
from capkit.analysis.present.figstyle import report_figure
from capkit.analysis.present.headline import key_facts
from capkit.analysis.present.text import users
from capkit.schemas import RESOURCES, Interval

MEASURED = "#dbe9f7"  # the measured range's shade
ANSWER = "#0969da"
WARN, CRIT = "#b35900", "#c62828"
MAX_BLOCKS = 60  # per step for the spread (a long step's spread is as clear from 60 blocks)


def step_spread(result, *, block_requests: int = 20) -> pd.DataFrame:
    """Per step: the 25th and 75th percentile of throughput (req/s) over blocks of the step's
    consecutive seconds holding at least ``block_requests`` requests each — the throughput whiskers
    of the capacity chart (p95's are the step's own interval, ``p95_low_ms``–``p95_high_ms``).
    Derived records (stream timings) are left out, as in the step table."""
    run = result.run
    req = request_window(run.requests, run.steps, run.warmup_s)
    if req.empty:
        return pd.DataFrame(columns=["step", "rps_q25", "rps_q75"])
    req = req[~req["method"].isin(DERIVED_TYPES)]
    rows = []
    for step, group in req.groupby("step"):
        rps, count, seconds = [], 0, 0
        for n in group.groupby("ts")["count"].sum().to_numpy():
            count += int(n)
            seconds += 1
            if count >= block_requests:
                rps.append(count / seconds)
                count, seconds = 0, 0
            if len(rps) >= MAX_BLOCKS:
                break
        q = lambda v, p: float(np.percentile(v, p)) if len(v) >= 2 else math.nan  # noqa: E731
        rows.append({"step": step, "rps_q25": q(rps, 25), "rps_q75": q(rps, 75)})
    return pd.DataFrame(rows)


def _whiskers(center, low, high):
    c, lo, hi = (np.asarray(v, float) for v in (center, low, high))
    return np.vstack([np.clip(c - lo, 0, None), np.clip(hi - c, 0, None)])


def _x_top(result, facts, highest: float) -> float:
    """Far enough to show where the chart's thresholds are met (p95, the binding resource) and the
    answer, at most 20× the highest clean load."""
    want = [highest * 1.3, 5.0]
    if result.latency is not None:
        want += [u for u in result.latency_crossings()["users"] if math.isfinite(u)]
    fit = result.resources.binding
    metric = {"cpu_cores": "CPU usage", "rss_mib": "Memory usage"}.get(fit.resource) if fit is not None else None
    for t in result.thresholds:
        if t.metric == metric and isinstance(t.users, Interval) and math.isfinite(t.users.estimate):
            want.append(t.users.estimate)
    if fit is not None and isinstance(fit.capacity, Interval) and math.isfinite(fit.capacity.estimate):
        want.append(fit.capacity.estimate)
    if facts.data.get("capacity_users"):
        want.append(facts.data["capacity_users"])
    return min(max(want) * 1.1, max(highest, 1.0) * 20)


@report_figure(left=0.95, right=3.1, bottom=0.65, top=0.7, vgap=0.45)
def plot_capacity(result):
    """Load on x; p95 latency, throughput and the binding resource's share of its limit on y.

    Measured steps are points (whiskers: the middle half of their seconds), the fitted curves
    carry their bands (latency model p95, USL bootstrap, resource fit prediction interval), the
    warning and critical thresholds are lines, the USL peak N* and the answer (capacity per
    replica) are marked, and the measured range is shaded apart from the projection.
    """
    facts = key_facts(result)
    steps = result.resources.steps[result.resources.steps["users"] > 0].merge(step_spread(result), on="step",
                                                                              how="left")
    clean = steps["clean"].astype(bool)
    highest = float(steps.loc[clean, "users"].max()) if clean.any() else float(steps["users"].max())
    top = _x_top(result, facts, highest)
    grid = np.linspace(1, top, 300)
    fit = result.resources.binding
    fig, axes = plt.subplots(3 if fit is not None else 2, 1, figsize=(10, 9.2 if fit is not None else 6.6),
                             sharex=True)
    lat_ax, tp_ax = axes[0], axes[1]
    for ax in axes:
        ax.axvspan(0, highest, color=MEASURED, zorder=0, lw=0)
        ax.grid(True, color="#e5e7eb", lw=0.6, zorder=0)
        ax.set_axisbelow(True)

    # p95 latency
    w, c = result.criteria.p95_ms
    lat_ax.errorbar(steps.loc[clean, "users"], steps.loc[clean, "p95_ms"], fmt="o", color="tab:blue", ms=5,
                    capsize=3, zorder=3, label=f"p95 per step (bars: its {result.criteria.level:.0%}\n"
                                               f"interval, block bootstrap)",
                    yerr=_whiskers(steps.loc[clean, "p95_ms"], steps.loc[clean, "p95_low_ms"],
                                   steps.loc[clean, "p95_high_ms"]))
    if (~clean).any():
        lat_ax.scatter(steps.loc[~clean, "users"], steps.loc[~clean, "p95_ms"], marker="x", color=CRIT, zorder=3,
                       label="flagged step (not fitted)")
    if result.latency is not None:
        pred = result.latency.predict(grid)
        lat_ax.plot(pred["users"], pred["p95_ms"], color="tab:orange", lw=1.6, label="latency model p95")
        lat_ax.fill_between(pred["users"], pred["p95_low"], pred["p95_high"], color="tab:orange", alpha=0.2,
                            lw=0, label=f"model {result.params.level:.0%} band")
        for row in result.latency_crossings().itertuples():
            if math.isfinite(row.users) and row.users <= top:
                lat_ax.plot([row.users], [row.ms], marker="D", color=WARN if row.threshold == "warning" else CRIT,
                            ms=6, zorder=4)
                lat_ax.annotate(f"{row.ms:,.0f} ms at ~{users(row.users)} users", (row.users, row.ms),
                                xytext=(6, 6), textcoords="offset points", fontsize=9)
    lat_ax.axhline(w, color=WARN, ls="--", lw=1.1, label=f"warning {w:,.0f} ms")
    lat_ax.axhline(c, color=CRIT, ls="--", lw=1.1, label=f"critical {c:,.0f} ms")
    measured_top = float(np.nanmax(steps["p95_ms"].to_numpy(float), initial=0))
    lat_ax.set_ylim(0, max(c * 1.35, measured_top * 1.15))
    lat_ax.set_ylabel("p95 latency (ms)")
    lat_ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)

    # throughput
    tp_ax.errorbar(steps.loc[clean, "users"], steps.loc[clean, "rps"], fmt="o", color="tab:blue", ms=5, capsize=3,
                   zorder=3, label="throughput per step (bars: middle\nhalf of its 20-request blocks)",
                   yerr=_whiskers(steps.loc[clean, "rps"], steps.loc[clean, "rps_q25"], steps.loc[clean, "rps_q75"]))
    usl = result.usl
    if usl is not None:
        tp_ax.plot(grid, usl.predict(grid), color="black", lw=1.4, label="USL fit")
        if usl.samples is not None:
            from capkit.analysis.fits.usl import usl_throughput

            band = np.array([usl_throughput(grid, *s) for s in usl.draws(0.95)])
            tp_ax.fill_between(grid, np.quantile(band, 0.025, axis=0), np.quantile(band, 0.975, axis=0),
                               color="black", alpha=0.12, lw=0, label="USL 95 % bootstrap band")
        n_star = usl.peak_concurrency
        if math.isfinite(n_star) and n_star <= top:
            tp_ax.axvline(n_star, color="black", ls=":", lw=1.2, label=f"knee: USL peak N* ≈ {users(n_star)} users")
        else:
            tp_ax.plot([], [], " ", label="no throughput peak in this\nrange (USL N* beyond it)")
    tp_ax.set_ylim(bottom=0)
    tp_ax.set_ylabel("throughput (req/s)")
    tp_ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)

    # the binding resource as a share of its limit
    if fit is not None:
        res_ax = axes[2]
        label, unit = RESOURCES[fit.resource]
        share = 100 / fit.limit
        res_ax.scatter(steps.loc[clean, "users"], steps.loc[clean, fit.resource] * share, color="tab:blue", zorder=3,
                       label=f"{label} per step (mean)")
        # the answer's own model of it: along throughput through the USL (a pool capped at its
        # size) when it follows throughput, else its line in users
        curve = result.locator.curve(fit.resource) if result.locator is not None and fit.significant else None
        if curve is not None:
            mean, low, high = curve.band(grid)
            res_ax.plot(grid, mean * share, color="tab:green", lw=1.6,
                        label=f"{label} along throughput\n(U = U₀ + D·X, X from the USL)")
            res_ax.fill_between(grid, low * share, high * share, color="tab:green", alpha=0.18, lw=0,
                                label=f"{fit.level:.0%} prediction band")
        else:
            pred = fit.predict(np.r_[0.0, grid])
            res_ax.plot(pred["users"], pred["mean"] * share, color="tab:green", lw=1.6, label=f"{label} fit")
            res_ax.fill_between(pred["users"], pred["pi_low"] * share, pred["pi_high"] * share, color="tab:green",
                                alpha=0.18, lw=0, label=f"{fit.level:.0%} prediction band")
        metric = {"cpu_cores": "CPU usage", "rss_mib": "Memory usage"}.get(fit.resource)
        for t in result.thresholds:
            if t.metric == metric:
                res_ax.axhline(t.value, color=WARN if t.severity == "warning" else CRIT, ls="--", lw=1.1,
                               label=f"{t.severity} {t.value:g} %")
                if isinstance(t.users, Interval) and math.isfinite(t.users.estimate) and t.users.estimate <= top:
                    res_ax.plot([t.users.estimate], [t.value], marker="D", ms=6, zorder=4,
                                color=WARN if t.severity == "warning" else CRIT)
                    res_ax.annotate(f"{t.value:g} % at ~{users(t.users.estimate)} users", (t.users.estimate, t.value),
                                    xytext=(-6, 6), textcoords="offset points", ha="right", fontsize=9)
        res_ax.axhline(100, color="black", lw=1.0, label=f"limit: {fit.limit:g} {unit}")
        res_ax.set_ylim(0, 115)
        res_ax.set_ylabel(f"{label} (% of limit)")
        res_ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)

    # the answer and the measured range
    cap, basis = facts.data.get("capacity_users"), facts.data.get("capacity_basis")
    if cap:
        text = f"capacity per replica ≈ {users(cap)} users ({basis})"
        for ax in axes:
            if cap <= top:
                ax.axvline(cap, color=ANSWER, lw=2.2, zorder=5)
        if cap <= top:
            right = cap > 0.55 * top  # the text goes where there is room: left of the line near the right edge
            lat_ax.annotate(text, (cap, 1.0), xycoords=("data", "axes fraction"), xytext=(-6 if right else 6, -14),
                            ha="right" if right else "left", textcoords="offset points", color=ANSWER,
                            fontsize=10, fontweight="bold", bbox={"fc": "white", "ec": "none", "alpha": 0.85})
        else:
            lat_ax.annotate(text + " →", (1.0, 1.0), xycoords="axes fraction", xytext=(-6, -14), ha="right",
                            textcoords="offset points", color=ANSWER, fontsize=10, fontweight="bold")
    axes[0].text(highest / 2, 1.02, "measured", transform=axes[0].get_xaxis_transform(), ha="center", fontsize=9,
                 color="#3b5b86")
    if top > highest * 1.15:
        axes[0].text((highest + top) / 2, 1.02, "projected from the models", ha="center", fontsize=9,
                     transform=axes[0].get_xaxis_transform(), color="#57606a")
    axes[-1].set_xlim(0, top)
    axes[-1].set_xlabel("concurrent users (load on one replica)")
    fig.suptitle("One replica under load: where latency, throughput and resources meet their limits",
                 fontsize=12, y=0.985)
    return fig


def _run_label(row) -> str:
    when = datetime.fromtimestamp(row.created_at, tz=timezone.utc).strftime("%Y-%m-%d %H:%M")
    return f"{when}\n{(row.git_sha or 'no sha')[:7]}"


@report_figure(left=1.0, right=0.3, bottom=0.95, top=0.85, vgap=0.35)
def plot_history(history):
    """Capacity per replica, CPU per user and p95 at the reference load for each run in time
    order, with their intervals; regressions are red rings."""
    t = history.table
    x = np.arange(len(t))
    fig, axes = plt.subplots(3, 1, figsize=(10, 8.2), sharex=True)
    panels = (("capacity", "capacity_low", "capacity_high", "capacity per replica (users)"),
              ("cpu_per_user", "cpu_low", "cpu_high", "CPU per user (cores)"),
              ("p95_ms", "p95_low", "p95_high", f"p95 at {users(history.reference_users)} users (ms)"))
    for ax, (col, lo, hi, label) in zip(axes, panels):
        y = t[col].to_numpy(float)
        ax.errorbar(x, y, yerr=_whiskers(y, t[lo].fillna(t[col]), t[hi].fillna(t[col])), fmt="o-", color="tab:blue",
                    capsize=4, ms=6, lw=1.2, label=label)
        bad = t["regression"].astype(bool).to_numpy()
        if bad.any():
            ax.scatter(x[bad], y[bad], s=220, facecolors="none", edgecolors=CRIT, linewidths=2.2, zorder=4,
                       label="significant regression against the run before")
        ax.set_ylabel(label)
        top = np.nanmax(np.r_[t[hi].to_numpy(float), y, 0.0])
        ax.set_ylim(0, top * 1.3 if top > 0 else 1)
        ax.grid(True, color="#e5e7eb", lw=0.6)
    if t["regression"].astype(bool).any():
        axes[0].legend(loc="lower left", bbox_to_anchor=(0.0, 1.0), frameon=False)
    axes[-1].set_xticks(x, [_run_label(r) for r in t.itertuples()])
    axes[-1].set_xlim(-0.5, len(t) - 0.5)
    fig.suptitle(f"History of {history.target}: {len(t)} run(s) in time order", fontsize=12, y=0.985)
    return fig


__all__ = ["plot_capacity", "plot_history", "step_spread"]
