"""The live progress line of a run: step, users, seconds left, live req/s and p95, service CPU."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from capkit.records.histograms import merge_histograms

# request types that are derived measurements, not requests (time to first token, tokens/s…):
# they stay out of the live request rate and p95
DERIVED_TYPES = ("STREAM",)


@dataclass
class Progress:
    """What the progress line shows; updated once per sample."""

    step: int = -1
    steps_total: int = 0
    users: int = 0
    seconds_left: float = 0.0
    rps: float = 0.0
    p95_ms: float | None = None
    cpu_cores: float | None = None
    throttled_share: float | None = None  # under a CPU quota: the share of periods throttled
    replicas: str | None = None  # a fleet: "1/2" replicas alive
    replicas_total: int = 0
    recent: list = field(default_factory=list)

    def update(self, *, step: int | None, users: int | None, seconds_left: float | None, new_rows: list,
               samples: list, now: float) -> None:
        """Take one sample's news: the current step, new request rows, new resource samples."""
        if step is not None:
            self.step, self.users, self.seconds_left = step, users, seconds_left
        real = [r for r in new_rows if r.get("method") not in DERIVED_TYPES]
        self.recent = (self.recent + real)[-200:]
        window = [r for r in self.recent if r["ts"] >= int(now) - 5]
        seconds = max(len({r["ts"] for r in window}), 1)
        self.rps = sum(r["count"] for r in window) / seconds
        self.p95_ms = (merge_histograms(r["hdr"] for r in window).get_value_at_percentile(95) / 1000
                       if window else None)
        service = {r["metric"]: r["value"] for r in samples if r["source"] == "service"}
        self.cpu_cores = service.get("cpu_cores", self.cpu_cores)
        self.throttled_share = service.get("cpu_throttled_share", self.throttled_share)
        if "replicas_alive" in service:
            self.replicas_total = max(self.replicas_total, int(service["replicas_alive"]))
            self.replicas = f"{service['replicas_alive']:.0f}/{self.replicas_total}"


def format_progress(p: Progress) -> str:
    p95 = f"{p.p95_ms:.0f} ms" if p.p95_ms is not None else "–"
    cpu = f" · service CPU {p.cpu_cores:.2f} cores" if p.cpu_cores is not None else ""
    if p.throttled_share is not None:
        cpu += f" · throttled {100 * p.throttled_share:.0f} %"
    if p.replicas is not None:
        cpu += f" · replicas {p.replicas}"
    return (f"step {p.step + 1}/{p.steps_total} · {p.users} users · {max(p.seconds_left, 0):.0f} s left · "
            f"{p.rps:.1f} req/s · p95 {p95}{cpu}")


def progress_printer(say: Callable[[str], None]) -> Callable[[Progress], None]:
    """An ``on_progress`` that prints a line when a step begins and every 5 s within it."""
    last = {"step": None}

    def show(p: Progress) -> None:
        if p.step != last["step"] or int(p.seconds_left) % 5 == 0:
            last["step"] = p.step
            say("  " + format_progress(p))

    return show
