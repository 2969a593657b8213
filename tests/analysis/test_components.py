"""Endpoints grouped into components, and the consolidated results table."""

import pytest

from capkit.analysis.answer.capacity import resource_capacity
from capkit.analysis.data.components import component_of, component_table
from capkit.synthetic import SyntheticTruth
from tests.analysis.synth import run, store


def test_consolidated_table_has_every_component(result):
    table = result.components.set_index("Component")
    assert list(table.index) == ["Chat API", "Analytics API", "Authentication", "WebSocket"]
    assert "429" in table.loc["Chat API", "Error rate"]
    assert table.loc["Authentication", "Status"].startswith("✅")


@pytest.mark.parametrize("name, component", [
    ("POST /api/chat/message", "chat"), ("POST /api/chat/stream", "chat"), ("chat: ttft", "chat"),
    ("ws: first token", "websocket"), ("ws: connect", "websocket"),
    ("GET /api/analytics/summary", "analytics"), ("POST /api/auth/token", "auth"),
    ("WS /api/ws/chat", "websocket"), ("websocket connect", "websocket"), ("GET /healthz", "other")])
def test_component_of(name, component):
    assert component_of(name) == component


def test_derived_stream_rows_are_not_counted_as_requests():
    st = store()
    truth = SyntheticTruth(endpoints={"POST /api/chat/message": 0.5, "STREAM chat: tokens/s": 0.5})
    r, _ = run(st, "stream", truth, seed=12)
    rep = resource_capacity(r)
    table = component_table(r.requests, r.steps, rep.steps, warmup_s=r.warmup_s)
    assert list(table["Component"]) == ["Chat API"]
    assert table["rps"].iloc[0] == pytest.approx(rep.steps["rps"].iloc[-1])
