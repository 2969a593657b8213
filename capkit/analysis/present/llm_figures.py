"""Figures of the LLM-serving page (matplotlib; imported on demand): latency per token, tokens/s
and goodput against load, generated and cached answers apart."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.ticker import MaxNLocator

from capkit.analysis.fits.llm import LlmServing

__all__ = ["plot_llm_serving", "plot_ttft_by_turn"]


def _load(t: pd.DataFrame) -> tuple[pd.Series, str]:
    if t["rate"].notna().any():
        return t["rate"].astype(float), "arrival rate (requests/s)"
    return t["users"].astype(float), "users"


def plot_llm_serving(serving: LlmServing):
    """TTFT and ITL p50/p99, output tokens/s (total and per request) and goodput against load;
    None when the run has no token timing (the page says why)."""
    if not serving.measured:
        return None
    t = serving.table[serving.table["users"] > 0].sort_values("step")
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for cls, style in (("generated", "-"), ("cached", ":")):
        part = t[t["cls"] == cls]
        if part.empty:
            continue
        x, label = _load(part)
        axes[0].plot(x, part["ttft_p50_ms"], style + "o", color="C0", label=f"TTFT p50 ({cls})")
        axes[0].plot(x, part["ttft_p99_ms"], style + "^", color="C1", label=f"TTFT p99 ({cls})")
        if cls == "generated":
            axes[0].plot(x, part["itl_p50_ms"], style + "s", color="C2", label="ITL p50")
            axes[0].plot(x, part["itl_p99_ms"], style + "v", color="C3", label="ITL p99")
            axes[1].plot(x, part["request_tokens_per_s_p50"], "-o", color="C4",
                         label="per request (p50, generated)")
    both = t[t["cls"] == "all"]
    x, label = _load(both)
    axes[1].plot(x, both["output_tokens_per_s"], "-s", color="C5", label="total (all answers)")
    if "goodput" in both:
        axes[2].plot(x, both["rps"] + both["failures"] / both["seconds"], "-o", color="0.6", label="requests/s")
        axes[2].plot(x, both["goodput"], "-s", color="C2", label="goodput (meets the SLO)")
        axes[2].set_title(f"Goodput, SLO {serving.slo.to_text()}")
    else:
        axes[2].plot(x, both["rps"], "-o", color="0.6", label="requests/s")
        axes[2].set_title("Throughput (no SLO given: no goodput)")
    axes[0].set(title="Latency per token", ylabel="ms", xlabel=label)
    axes[1].set(title="Output tokens/s", ylabel="tokens/s", xlabel=label)
    axes[2].set(ylabel="requests/s", xlabel=label)
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_ttft_by_turn(serving: LlmServing):
    """TTFT p50 and p99 of generated answers against the turn depth, one line per loaded step, with
    the server's mean input tokens (the history resent) on a second axis; None without turns or
    when every request was a conversation's first."""
    if serving.turns.empty or serving.turns["turn"].max() < 2:
        return None
    t = serving.turns[(serving.turns["cls"] == "generated") & (serving.turns["users"] > 0)]
    fig, ax = plt.subplots(figsize=(7, 3.6))
    for i, (step, part) in enumerate(t.sort_values("turn").groupby("step")):
        load = f"{part['rate'].iloc[0]:g} req/s" if pd.notna(part["rate"].iloc[0]) else f"{part['users'].iloc[0]} users"
        ax.plot(part["turn"], part["ttft_p50_ms"], "-o", color=f"C{i % 10}", label=f"step {step} ({load}) p50")
        ax.plot(part["turn"], part["ttft_p99_ms"], ":^", color=f"C{i % 10}", label="p99")
    ax.set(title="TTFT by conversation turn", xlabel="turn (depth in the conversation)", ylabel="TTFT (ms)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if t["mean_input_tokens"].notna().any():
        tokens = t.groupby("turn")["mean_input_tokens"].mean()
        ax2 = ax.twinx()
        ax2.plot(tokens.index, tokens.values, "--", color="0.5", label="mean input tokens")
        ax2.set_ylabel("input tokens (server's count)")
        ax2.legend(fontsize=7, loc="lower right")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return fig
