"""Timestamped request traces to replay (``--trace``): when each request arrives, how long its
prompt and answer are. Pure Python, read whole by the run's checks before anything starts and
again by the load generator.

The format is JSONL in the shape of the public Mooncake traces, one request a line::

    {"timestamp": 27482, "input_length": 6955, "output_length": 52}

``timestamp`` is in milliseconds (Mooncake's unit); ``time`` in seconds may be given instead.
``input_tokens`` / ``output_tokens`` are accepted for the lengths. Other fields (Mooncake's
``hash_ids``) are ignored. Times must not go backwards. BurstGPT's CSV (``Timestamp`` in seconds,
``Request tokens``, ``Response tokens``) becomes this shape with one line of pandas (docs/llm.md).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from capkit.errors import ConfigError


@dataclass(frozen=True)
class TraceRequest:
    """One request of a trace: seconds after the trace's first request, and its lengths in tokens."""

    at_s: float
    input_tokens: int
    output_tokens: int


def _length(doc: dict, keys: tuple[str, ...], where: str) -> int:
    for key in keys:
        if key in doc:
            value = doc[key]
            if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 1 and value == int(value):
                return int(value)
            raise ConfigError(f"{where}: {key} {value!r} is not a whole number of tokens ≥ 1")
    raise ConfigError(f"{where}: no {' or '.join(keys)}")


def _time_s(doc: dict, where: str) -> float:
    if "timestamp" in doc:
        raw, factor = doc["timestamp"], 1e-3
    elif "time" in doc:
        raw, factor = doc["time"], 1.0
    else:
        raise ConfigError(f"{where}: no \"timestamp\" (ms) or \"time\" (s)")
    if isinstance(raw, bool) or not isinstance(raw, (int, float)) or not math.isfinite(raw):
        raise ConfigError(f"{where}: the time {raw!r} is not a number")
    return float(raw) * factor


def load_trace(path: str | Path, *, scale: float = 1.0) -> list[TraceRequest]:
    """The requests of a trace file, times relative to the first and multiplied by ``scale``
    (0.5: replayed twice as fast).

    Raises
    ------
    ConfigError
        One line naming the file and line: not JSON, a missing or bad field, a time earlier than the
        line before; or an empty file, or ``scale`` ≤ 0.
    """
    if not (scale > 0 and math.isfinite(scale)):
        raise ConfigError(f"--trace-scale {scale:g} must be > 0 (0.5 replays the trace twice as fast)")
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"--trace {path} does not exist (JSONL: timestamp in ms, input_length, output_length)")
    out: list[TraceRequest] = []
    first = previous = None
    with open(p, encoding="utf-8", errors="replace") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            where = f"{path}:{n}"
            try:
                doc = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{where}: not JSON ({exc.msg} at column {exc.colno})") from None
            if not isinstance(doc, dict):
                raise ConfigError(f"{where}: not a JSON object")
            t = _time_s(doc, where)
            if previous is not None and t < previous:
                raise ConfigError(f"{where}: time goes backwards ({t:g} s after {previous:g} s on the line "
                                  f"before); sort the trace by time")
            first = t if first is None else first
            previous = t
            out.append(TraceRequest((t - first) * scale, _length(doc, ("input_length", "input_tokens"), where),
                                    _length(doc, ("output_length", "output_tokens"), where)))
    if not out:
        raise ConfigError(f"--trace {path} holds no request")
    return out


def peak_arrivals(trace: list[TraceRequest], window_s: float = 1.0) -> int:
    """The most requests arriving within any ``window_s`` (sizes the users a replay needs)."""
    times = [r.at_s for r in trace]
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while t - times[lo] >= window_s:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


__all__ = ["TraceRequest", "load_trace", "peak_arrivals"]
