"""Levels and counts measured inside a load process (open WebSocket connections, dropped runs)."""

from __future__ import annotations


class GeneratorMeters:
    """Levels (``set``) and per-second counts (``add``) measured inside a load process, such as
    open WebSocket connections or arrival-rate runs dropped; the plugin writes them with each
    tick and the orchestrator stores them as ``generator`` samples."""

    def __init__(self) -> None:
        self.levels: dict[str, float] = {}
        self.counts: dict[str, float] = {}

    def set(self, name: str, value: float) -> None:
        self.levels[name] = value

    def incr(self, name: str, by: float = 1.0) -> None:
        self.levels[name] = self.levels.get(name, 0.0) + by

    def add(self, name: str, by: float = 1.0) -> None:
        self.counts[name] = self.counts.get(name, 0.0) + by

    def take(self) -> dict:
        """``{"levels": …, "counts": …}`` with the counts since the previous call (then reset)."""
        counts, self.counts = self.counts, {}
        return {"levels": dict(self.levels), "counts": counts}


# one per load process: the scenarios and the plugin share it
METERS = GeneratorMeters()


def combine_meters(parts: list[dict]) -> dict[str, float]:
    """Sum levels and counts of several processes (workers) into one ``metric -> value``."""
    out: dict[str, float] = {}
    for part in parts:
        for kind in ("levels", "counts"):
            for name, value in (part.get(kind) or {}).items():
                out[name] = out.get(name, 0.0) + float(value)
    return out
