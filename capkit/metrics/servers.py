"""Inference servers' own signals (``--server vllm|sglang|tgi|ollama``): their Prometheus series as
capkit resources with limits, so a run can name the KV cache or the queue as the binding limit.

Each server's series are mapped to the same names:

| name | what | limit |
| --- | --- | --- |
| ``kv_cache`` | share of the KV cache in use (0–1) | 1 |
| ``queue_waiting`` | requests waiting for a place in the running batch | 1 (a request waits on average) |
| ``batch_running`` | requests in the running batch | – (recorded) |
| ``preemptions_per_s`` | requests preempted per second (the KV cache ran out) | – (recorded) |

Series names are those the servers document: vLLM ``vllm:num_requests_running``,
``vllm:num_requests_waiting``, ``vllm:kv_cache_usage_perc`` (``vllm:gpu_cache_usage_perc`` in older
versions; both a fraction, 1 = full, despite the name), ``vllm:num_preemptions_total``; SGLang (``--enable-metrics``)
``sglang:num_running_reqs``, ``sglang:num_queue_reqs``, ``sglang:token_usage``; TGI
``tgi_queue_size``, ``tgi_batch_current_size`` (TGI exposes no KV-cache share). Ollama serves no
Prometheus metrics at all: nothing of its queue or cache can be read, only its process (``--pid``).
A series summed over label sets (several engines) adds their shares: read ``kv_cache`` per engine then.
"""

from __future__ import annotations

from dataclasses import dataclass

from capkit.errors import ConfigError


@dataclass(frozen=True)
class ServerSignals:
    """One server's ``--metric`` mappings and the limits of the mapped names."""

    name: str
    mappings: tuple[str, ...]
    limits: tuple[tuple[str, float], ...] = ()
    note: str | None = None  # said at the start of a run: what cannot be read of this server


_LIMITS = (("kv_cache", 1.0), ("queue_waiting", 1.0))

SERVERS = {
    "vllm": ServerSignals("vllm", (
        "queue_waiting=vllm:num_requests_waiting",
        "batch_running=vllm:num_requests_running",
        "kv_cache=vllm:gpu_cache_usage_perc",
        "kv_cache=vllm:kv_cache_usage_perc",
        "preemptions_per_s=vllm:num_preemptions_total:rate",
    ), _LIMITS),
    "sglang": ServerSignals("sglang", (
        "queue_waiting=sglang:num_queue_reqs",
        "batch_running=sglang:num_running_reqs",
        "kv_cache=sglang:token_usage",
    ), _LIMITS),
    "tgi": ServerSignals("tgi", (
        "queue_waiting=tgi_queue_size",
        "batch_running=tgi_batch_current_size",
    ), (("queue_waiting", 1.0),), note="TGI exposes no KV-cache share: the queue is its only soft limit here"),
    "ollama": ServerSignals("ollama", (), (), note="Ollama serves no Prometheus metrics: its queue and KV cache "
                                                   "cannot be read; only its process is measured (--pid)"),
}


def server_signals(name: str | None) -> ServerSignals | None:
    """The signals of ``--server NAME`` (None when not given); ConfigError naming the known servers."""
    if name is None:
        return None
    key = name.strip().lower()
    if key not in SERVERS:
        raise ConfigError(f"--server {name!r} is not one of {', '.join(SERVERS)}; map another server's series "
                          f"with --metric NAME=SERIES and --limit NAME=VALUE")
    return SERVERS[key]


__all__ = ["SERVERS", "ServerSignals", "server_signals"]
