"""Per-second records besides the request rows, aggregated in each load process (a Locust module).

- ``llm``: streamed answers timed per token (:mod:`capkit.records.llm`), fed by the chat users
  through :func:`record_stream`; goodput for the SLO of ``CAPKIT_SLO``.
- ``cor``: each request of an arrival-rate run again, with its latency from the run's *intended*
  start (the pacer's schedule) instead of from when it was sent: coordinated omission corrected.

:mod:`capkit.loadgen.plugin` writes :func:`flush`'s records to ``load.jsonl`` with the ``req`` rows
(on a worker: sends them to the master).
"""

from __future__ import annotations

import json
import os
import time

from locust import events

from capkit.loadgen.arrival import lateness_ms
from capkit.records.llm import LlmSeconds, Slo, TokenTiming
from capkit.records.seconds import SecondAggregator

_CORRECTED_KEYS = ("ts", "method", "name", "count", "latency_sum_ms", "latency_max_ms", "hdr")


def _slo() -> Slo | None:
    raw = os.environ.get("CAPKIT_SLO")
    return Slo.from_dict(json.loads(raw)) if raw else None


_llm = {"agg": None}
_corrected = SecondAggregator()


def _agg() -> LlmSeconds:
    if _llm["agg"] is None:  # made on first use, so the SLO is read in the Locust process
        _llm["agg"] = LlmSeconds(_slo())
    return _llm["agg"]


def record_stream(name: str, timing: TokenTiming) -> None:
    """Record one streamed answer (it ended now) under endpoint ``name``."""
    _agg().record(time.time(), name, timing)


@events.request.add_listener
def _on_request_corrected(request_type, name, response_time, response_length, exception=None, response=None,
                          **_kw):
    late = lateness_ms()
    if late is None:  # not an arrival-rate run: it has no intended start
        return
    status = getattr(response, "status_code", None) if response is not None else None
    _corrected.record(time.time(), request_type, name, (response_time or 0.0) + late, status,
                      0, exception is not None)


def flush(before_ts: float | None) -> list[dict]:
    """``llm`` and ``cor`` records of every second before ``before_ts`` (all when None)."""
    out = [{"type": "llm", **row} for row in _agg().flush(before_ts)]
    out += [{"type": "cor", **{k: row[k] for k in _CORRECTED_KEYS}} for row in _corrected.flush(before_ts)]
    return out
