"""A report never breaks on a valid run: runs of every shape are published (real papermill, real
nbconvert) and every page must render, saying "not measured (why)" where a number cannot be had,
with no raw float (``3.1e-15``), ``nan``, ``inf`` or traceback on it.

The shapes are the ones that broke or could break a page: one or two loaded steps, a constant
resource series, no resources at all, an imported Locust CSV (no histograms, no resources), an
``openai-chat``-only run (token timing, no resources: it failed with ``KeyError: 'quadratic'``), an
arrival-rate-only run, a search that stopped at its first step, an incomplete run.
"""

from __future__ import annotations

import html
import json
import re

import pytest

from capkit.records.llm import Slo
from capkit.runs.ingest import Ingestor
from capkit.schemas import RunSpec, RunStatus, StagePlan, stepped
from capkit.store import open_store
from capkit.synthetic import SyntheticTruth, synthetic_records
from capkit.synthetic.llm import LlmTruth, synthetic_llm_records
from tests.conftest import run_cli

NO_RESOURCES = {"baseline": {}, "per_user": {}, "noise": {}, "step_offset": {}}
RAW_FLOAT = re.compile(r"\b\d+(?:\.\d+)?e[-+]?\d+\b", re.IGNORECASE)
EXCEPTION = re.compile(r"\b[A-Z]\w*(Error|Exception|Warning):")  # a Python exception or warning, printed
BAD_WORD = re.compile(r"\b(nan|inf|-inf|infinity|None|NaT)\b")


def _write(store, run_id: str, plan: StagePlan, truth: SyntheticTruth, *, seed: int = 0, rates=None, llm=None,
           status=RunStatus.COMPLETE, events=(), endpoint: str = "POST /api/chat/message"):
    start = 1.7e9
    load, samples = synthetic_records(plan, truth, seed=seed, start=start, endpoint=endpoint)
    if rates:  # arrival-rate steps: the stage's rate on its step record
        for rec in load:
            if rec["type"] == "step" and rates.get(rec["step"]):
                rec["rate"] = rates[rec["step"]]
    notes = {}
    if llm is not None:
        end = load.pop()
        load += synthetic_llm_records(plan, llm, seed=seed + 1000, start=start) + [end]
        notes["slo"] = llm.slo.to_dict()
    spec = RunSpec(run_id=run_id, target="synthetic://", scenario="synthetic", plan=plan, notes=notes)
    store.create_run(run_id=run_id, target=spec.target, scenario=spec.scenario, spec=json.loads(spec.model_dump_json()),
                     machine={"host": "synthetic"}, created_at=start)
    ingest = Ingestor(store, run_id)
    if status != RunStatus.COMPLETE:  # the last step cut short: the run died in it
        last = max(r["step"] for r in load if r["type"] == "step")
        cut = next(r["started_at"] for r in load if r["type"] == "step" and r["step"] == last) + 4
        load = [r for r in load if r["type"] not in ("tick", "req") or r["ts"] < cut]
        load = [r for r in load if r["type"] != "end"]
        samples = [s for s in samples if s["ts"] < cut]
    ingest.feed(load)
    store.add_samples(run_id, samples)
    end = start + plan.duration_s
    ingest.finish(end, last_complete=status == RunStatus.COMPLETE)
    for kind, detail in events:
        store.add_event(run_id, kind, json.dumps(detail), ts=end)
    store.finish_run(run_id, status, None if status == RunStatus.COMPLETE else "the service exited", ended_at=end)


def _locust_csv(prefix) -> None:
    """A Locust ``--csv-full-history`` stats history: 10 s idle, then 20 s at 3 and 20 s at 6 users."""
    header = ["Timestamp", "User Count", "Type", "Name", "Requests/s", "Failures/s", "50%", "95%",
              "Total Request Count", "Total Failure Count", "Total Median Response Time",
              "Total Average Response Time", "Total Min Response Time", "Total Max Response Time",
              "Total Average Content Size"]
    rows, total = [header], 0
    for sec in range(50):
        users = 0 if sec < 10 else 3 if sec < 30 else 6
        total += 2 * users
        for typ, name in (("GET", "/api/items"), ("", "Aggregated")):
            rows.append([str(1_700_000_000 + sec), str(users), typ, name, str(2 * users), "0", "20", "45",
                         str(total), "0", "20", "22.5", "5", "80", "512"])
    prefix.with_name(prefix.name + "_stats_history.csv").write_text("\n".join(",".join(r) for r in rows) + "\n")


def _constant_db() -> SyntheticTruth:
    truth = SyntheticTruth()
    truth.per_user = dict(truth.per_user, db_connections=0.0)
    truth.noise = dict(truth.noise, db_connections=0.0)
    truth.step_offset = dict(truth.step_offset, db_connections=0.0)
    truth.baseline = dict(truth.baseline, db_connections=3.0)
    truth.outlier_rate = 0.0
    return truth


SHAPES = {
    "one-loaded-step": lambda s: _write(s, "one-loaded-step", stepped([5], idle_s=10, step_s=20, warmup_s=2),
                                        SyntheticTruth()),
    "two-loaded-steps": lambda s: _write(s, "two-loaded-steps", stepped([5, 10], idle_s=10, step_s=20, warmup_s=2),
                                         SyntheticTruth()),
    "constant-resource": lambda s: _write(s, "constant-resource", stepped([5, 10, 15, 20], idle_s=10, step_s=20,
                                                                          warmup_s=2), _constant_db()),
    "no-resources": lambda s: _write(s, "no-resources", stepped([5, 10, 15, 20], idle_s=10, step_s=20, warmup_s=2),
                                     SyntheticTruth(**NO_RESOURCES)),
    "openai-chat-only": lambda s: _write(
        s, "openai-chat-only", StagePlan.parse("0x4,2x10,4x10", warmup_s=2),
        SyntheticTruth(**NO_RESOURCES, endpoints={"POST /v1/chat/completions": 1.0}),
        llm=LlmTruth(slo=Slo.parse("ttft=300ms,itl=50ms,e2e=2s")), endpoint="POST /v1/chat/completions"),
    "arrival-rate-only": lambda s: _write(s, "arrival-rate-only", stepped([5, 10, 15], idle_s=10, step_s=20,
                                                                          warmup_s=2),
                                          SyntheticTruth(), rates={1: 5.0, 2: 10.0, 3: 15.0}),
    "search-stopped-at-first-step": lambda s: _write(
        s, "search-stopped-at-first-step", stepped([5], idle_s=10, step_s=15, warmup_s=3), SyntheticTruth(),
        events=[("search", {"stop_reason": "the first step breached p95 (612 ms ≥ 500 ms): start lower",
                            "steps": 2})]),
    "incomplete": lambda s: _write(s, "incomplete", stepped([5, 10, 15], idle_s=10, step_s=20, warmup_s=2),
                                   SyntheticTruth(), status=RunStatus.INCOMPLETE),
}


def _page_text(path) -> str:
    """What a reader sees: the page without scripts, styles, tags and embedded images."""
    text = path.read_text(encoding="utf-8")
    text = re.sub(r"<(script|style)\b.*?</\1>", " ", text, flags=re.S | re.I)
    text = re.sub(r"data:[a-z/+]+;base64,[A-Za-z0-9+/=]+", " ", text)
    return html.unescape(re.sub(r"<[^>]+>", " ", text))


@pytest.fixture(scope="module")
def shaped_store(tmp_path_factory):
    work = tmp_path_factory.mktemp("shapes")
    url = f"sqlite:///{work / 'shapes.sqlite'}"
    store = open_store(url)
    for build in SHAPES.values():
        build(store)
    store.engine.dispose()
    prefix = work / "locust"
    _locust_csv(prefix)
    imported = run_cli("import", "locust-csv", str(prefix), "--store", url)
    assert imported.returncode == 0, imported.stderr
    ids = {shape: shape for shape in SHAPES} | {"locust-csv": imported.stdout.split()[1].rstrip(":")}
    return work, url, ids


@pytest.mark.parametrize("shape", [*SHAPES, "locust-csv"])
def test_every_page_renders_for_a_run_of_this_shape(shaped_store, shape):
    work, url, ids = shaped_store
    env = {"CAPKIT_STORE_URL": url, "CAPKIT_REPORTS_DIR": str(work / "reports")}
    proc = run_cli("report", ids[shape], "--bootstrap", "20", env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    folder = work / "reports" / ids[shape]
    pages = sorted(folder.glob("*.html"))
    assert {p.stem for p in pages} >= {"index", "overview", "capacity_report", "scalability", "capacity_plan"}
    for page in pages:
        text = _page_text(page)
        assert "Traceback" not in text and not EXCEPTION.search(text), (page.name, EXCEPTION.findall(text)[:3])
        assert not RAW_FLOAT.findall(text), (page.name, RAW_FLOAT.findall(text)[:5])
        assert not BAD_WORD.findall(text), (page.name, sorted(set(BAD_WORD.findall(text))))
    index = _page_text(folder / "index.html")
    assert "One replica carries" in index or "not measured (" in index
