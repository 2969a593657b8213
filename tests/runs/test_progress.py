"""The live progress line: only real requests go into its req/s and p95."""

from capkit.records.seconds import SecondAggregator
from capkit.runs.progress import Progress, format_progress


def test_stream_rows_stay_out_of_the_live_p95_and_rate():
    agg = SecondAggregator()
    for i in range(50):
        agg.record(100.2, "POST", "POST /api/chat/message", 200.0 + i, 200, 100, False)
        agg.record(100.4, "STREAM", "chat: tokens/s", 40_000.0, None, 48, False)  # a rate, not a latency
    p = Progress(steps_total=3)
    p.update(step=1, users=5, seconds_left=20, new_rows=agg.flush(), samples=[], now=101.5)
    assert p.rps == 50 and 240 <= p.p95_ms <= 250
    assert "p95 24" in format_progress(p) and "step 2/3 · 5 users" in format_progress(p)


def test_a_fleet_under_a_quota_shows_its_throttling_and_replicas_alive():
    p = Progress(steps_total=2)

    def sample(alive: float, share: float) -> list[dict]:
        return [{"ts": 1.0, "source": "service", "metric": m, "value": v}
                for m, v in (("cpu_cores", 0.9), ("cpu_throttled_share", share), ("replicas_alive", alive))]

    p.update(step=1, users=10, seconds_left=5, new_rows=[], samples=sample(2, 0.25), now=2.0)
    assert "service CPU 0.90 cores · throttled 25 % · replicas 2/2" in format_progress(p)
    p.update(step=1, users=10, seconds_left=4, new_rows=[], samples=sample(1, 0.5), now=3.0)
    assert "throttled 50 % · replicas 1/2" in format_progress(p)
    assert "throttled" not in format_progress(Progress(steps_total=2))
