"""The benchmark's own code is tested for correctness (timings never asserted)."""

import sys

import pytest

from benchmarks import suite
from benchmarks.harness import LOCUSTFILES, BenchError, free_port, run_locust, start_server, uvicorn_cmd
from benchmarks.run import to_markdown


def test_a_server_that_does_not_start_fails_loudly():
    port = free_port()
    cmd = [sys.executable, "-c", "import sys; sys.exit(3)", "--port", str(port)]
    with pytest.raises(BenchError, match="exited with code 3"):
        start_server(cmd, cpus=None, timeout=5)


def test_a_target_that_does_not_answer_fails_loudly():
    with pytest.raises(BenchError, match="requests to .* failed"):
        run_locust([LOCUSTFILES / "fast_fasthttp.py"], f"http://127.0.0.1:{free_port()}", users=1, seconds=1,
                   cpus=None)


def test_locust_against_the_raw_endpoint_counts_requests_and_cpu():
    server = start_server(uvicorn_cmd("benchmarks.apps:raw_app", free_port()), cpus=None, health="/")
    try:
        result = run_locust([LOCUSTFILES / "fast_fasthttp.py"], server.url, users=2, seconds=2, cpus=None)
    finally:
        server.stop()
    assert result.requests > 0 and result.failures == 0
    assert result.cpu_s > 0 and result.per_core == result.requests / result.cpu_s
    assert server.popen.poll() is not None


def test_rows_compare_against_their_anchor_and_goal():
    r = suite.row("x", 90.0, "req/s", "anchor", 100.0, goal=0.9)
    assert r["ratio"] == pytest.approx(0.9) and r["met"] is True
    r = suite.row("y", 6.0, "s", goal=5.0, better="lower")
    assert r["ratio"] is None and r["met"] is False
    md = to_markdown({"cpu": "c", "cores": 2, "memory_gib": 1, "python": "3", "locust": "l", "fastapi": "f",
                      "uvicorn": "u", "papermill": "p", "date": "d"}, [r], 60)
    assert "| y | 6 s | – | – | ≤ 5 s | **no** |" in md


def test_analysis_frames_have_the_requested_size():
    from benchmarks.analysis_data import synthetic_frames

    steps, samples = synthetic_frames(10_000)
    assert len(samples) == 10_000 and len(steps) == 6


def test_the_lean_papermill_anchor_executes_a_notebook_and_a_failure_is_loud(tmp_path):
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("print(6 * 7)")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, tmp_path / "in.ipynb")
    out = tmp_path / "out.ipynb"
    seconds = suite._timed([sys.executable, "-c", suite.LEAN_PAPERMILL, "-k", "python3", str(tmp_path / "in.ipynb"),
                            str(out)], {})
    assert seconds > 0
    assert nbformat.read(out, as_version=4).cells[0].outputs[0]["text"].strip() == "42"
    with pytest.raises(BenchError, match="failed"):
        suite._timed([sys.executable, "-c", suite.LEAN_PAPERMILL, "-k", "python3", str(tmp_path / "missing.ipynb"),
                      str(out)], {})
