"""The benchmark's own code is tested for correctness (timings never asserted)."""

import sys

import pytest

from benchmarks import suite
from benchmarks.harness import LOCUSTFILES, BenchError, free_port, run_locust, start_server, together, uvicorn_cmd
from benchmarks.run import SECTIONS, output_dir, to_markdown


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


def test_the_steady_window_leaves_start_up_out_and_a_run_too_short_for_it_is_loud():
    server = start_server(uvicorn_cmd("benchmarks.apps:raw_app", free_port()), cpus=None, health="/")
    try:
        result = run_locust([LOCUSTFILES / "fast_fasthttp.py"], server.url, users=2, seconds=3, cpus=None, skip=1.0)
        with pytest.raises(BenchError, match="measured nothing after its first 5 s"):
            run_locust([LOCUSTFILES / "fast_fasthttp.py"], server.url, users=1, seconds=1, cpus=None, skip=5.0)
    finally:
        server.stop()
    w = result.window
    assert 0 < w["requests"] < result.requests and 0 < w["cpu_s"] < result.cpu_s
    assert 1.0 <= w["seconds"] < 3.0  # opens 1 s after the start, closes when the 3 s run stops
    assert result.per_core == w["requests"] / w["cpu_s"]


def test_jobs_run_together_and_a_failing_one_raises():
    import threading

    both = threading.Barrier(2, timeout=10)  # passes only if the two jobs run at the same time

    def job(name):
        def run():
            both.wait()
            return name.upper()
        return run

    assert together({"a": job("a"), "b": job("b")}) == {"a": "A", "b": "B"}

    def fails():
        raise BenchError("no server")

    with pytest.raises(BenchError, match="no server"):
        together({"ok": lambda: "fine", "bad": fails})


def test_paired_ratio_is_the_median_of_per_repetition_ratios():
    # drift moves figure and anchor together: the ratio of medians (200 / 150) is not the paired one
    assert suite.paired_ratio([100, 200, 300], [125, 250, 150]) == pytest.approx(0.8)
    r = suite.row("x", 200.0, "req/s", "anchor", 160.0, goal=0.7, ratio=0.65)
    assert r["ratio"] == 0.65 and r["met"] is False
    with pytest.raises(BenchError, match="as many anchors"):
        suite.paired_ratio([1.0, 2.0], [1.0])


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


def test_a_partial_run_keeps_the_full_results(tmp_path):
    full = output_dir(list(SECTIONS), None)
    assert (full / "results.md").exists()  # where the README's table comes from
    assert output_dir(["report"], None) == full / "partial"
    assert output_dir(["report"], tmp_path) == tmp_path == output_dir(list(SECTIONS), tmp_path)
