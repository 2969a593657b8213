"""The results store schema: runs, steps, request stats, resource samples, events."""

from __future__ import annotations

from sqlalchemy import (
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

SCHEMA_VERSION = 1

metadata = MetaData()

runs = Table(
    "runs",
    metadata,
    Column("run_id", String(64), primary_key=True),
    Column("created_at", Float, nullable=False),
    Column("ended_at", Float),
    Column("status", String(16), nullable=False),  # running | complete | incomplete
    Column("reason", Text),
    Column("target", Text, nullable=False),
    Column("scenario", String(64)),
    Column("git_sha", String(64)),
    Column("spec", Text, nullable=False),  # RunSpec as JSON
    Column("machine", Text),  # JSON: host, cores, python, versions
)
# "latest" and "latest before run X" read the newest runs first: without it, a sort of every run
runs_created = Index("ix_runs_created_at", runs.c.created_at, runs.c.run_id)

steps = Table(
    "steps",
    metadata,
    Column("run_id", String(64), ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True),
    Column("step", Integer, primary_key=True),
    Column("users", Integer, nullable=False),
    Column("rate", Float),
    Column("planned_s", Float, nullable=False),
    Column("started_at", Float, nullable=False),
    Column("ended_at", Float),
    Column("complete", Integer, nullable=False, default=0),
)

request_stats = Table(
    "request_stats",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(64), ForeignKey("runs.run_id", ondelete="CASCADE"), nullable=False),
    Column("ts", Integer, nullable=False),  # epoch second
    Column("step", Integer, nullable=False),
    Column("users", Integer, nullable=False),
    Column("method", String(16), nullable=False),
    Column("name", String(200), nullable=False),
    Column("count", Integer, nullable=False),
    Column("failures", Integer, nullable=False),  # 5xx, other 4xx, connection errors, timeouts
    Column("rate_limited", Integer, nullable=False),  # 429, counted apart from failures
    Column("status_2xx", Integer, nullable=False, default=0),
    Column("status_4xx", Integer, nullable=False, default=0),
    Column("status_5xx", Integer, nullable=False, default=0),
    Column("status_other", Integer, nullable=False, default=0),
    Column("bytes", Integer, nullable=False, default=0),
    Column("latency_sum_ms", Float, nullable=False, default=0.0),
    Column("latency_max_ms", Float, nullable=False, default=0.0),
    Column("hdr", Text, nullable=False),  # HdrHistogram, encoded; latency in microseconds
)
Index("ix_request_stats_run_ts", request_stats.c.run_id, request_stats.c.ts)

# LLM serving (capkit.records.llm): streamed answers per second × endpoint × class (generated |
# cached), with TTFT / ITL / TPOT / E2E histograms (µs) and the per-request output tokens/s apart
llm_stats = Table(
    "llm_stats",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(64), ForeignKey("runs.run_id", ondelete="CASCADE"), nullable=False),
    Column("ts", Integer, nullable=False),
    Column("step", Integer, nullable=False),
    Column("users", Integer, nullable=False),
    Column("name", String(200), nullable=False),
    Column("cls", String(16), nullable=False),  # generated | cached
    Column("turn", Integer),  # depth in the conversation (1: first turn); NULL in stores older than it
    Column("requests", Integer, nullable=False),
    Column("failures", Integer, nullable=False, default=0),
    Column("output_tokens", Integer, nullable=False, default=0),
    Column("input_tokens", Integer),  # sum of the server's usage.prompt_tokens over input_count requests
    Column("input_count", Integer),
    Column("ttft_sum_ms", Float, nullable=False, default=0.0),
    Column("tpot_sum_ms", Float, nullable=False, default=0.0),
    Column("tpot_count", Integer, nullable=False, default=0),
    Column("e2e_sum_ms", Float, nullable=False, default=0.0),
    Column("itl_sum_ms", Float, nullable=False, default=0.0),
    Column("itl_count", Integer, nullable=False, default=0),
    Column("tps_sum", Float, nullable=False, default=0.0),  # sum of per-request output tokens/s
    Column("good", Integer, nullable=False, default=0),  # requests meeting every bound of the run's SLO
    Column("slo_pass", Text),  # JSON: bound -> requests meeting it
    Column("ttft_hdr", Text),
    Column("itl_hdr", Text),
    Column("tpot_hdr", Text),
    Column("e2e_hdr", Text),
    Column("tps_hdr", Text),  # output tokens/s × 1000 per request: a rate, never a latency
)
Index("ix_llm_stats_run_ts", llm_stats.c.run_id, llm_stats.c.ts)
# columns added to a table after stores were made with it: opening an older store adds them (nullable)
ADDED_COLUMNS = {"llm_stats": ("turn", "input_tokens", "input_count")}

# latency from each request's intended start (the arrival-rate schedule): coordinated omission corrected
request_corrected = Table(
    "request_corrected",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(64), ForeignKey("runs.run_id", ondelete="CASCADE"), nullable=False),
    Column("ts", Integer, nullable=False),
    Column("step", Integer, nullable=False),
    Column("users", Integer, nullable=False),
    Column("method", String(16), nullable=False),
    Column("name", String(200), nullable=False),
    Column("count", Integer, nullable=False),
    Column("latency_sum_ms", Float, nullable=False, default=0.0),
    Column("latency_max_ms", Float, nullable=False, default=0.0),
    Column("hdr", Text, nullable=False),
)
Index("ix_request_corrected_run_ts", request_corrected.c.run_id, request_corrected.c.ts)

resource_samples = Table(
    "resource_samples",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(64), ForeignKey("runs.run_id", ondelete="CASCADE"), nullable=False),
    Column("ts", Float, nullable=False),
    Column("source", String(32), nullable=False),  # service | generator | postgres | redis | prometheus
    Column("metric", String(64), nullable=False),
    Column("value", Float, nullable=False),
)
Index("ix_resource_samples_run_ts", resource_samples.c.run_id, resource_samples.c.ts)

events = Table(
    "events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(64), ForeignKey("runs.run_id", ondelete="CASCADE"), nullable=False),
    Column("ts", Float, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("detail", Text),
)

schema_version = Table(
    "capkit_schema",
    metadata,
    Column("version", Integer, primary_key=True),
)
