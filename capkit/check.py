"""`capkit check`: evaluate the CI gates of a stored run, print them, write JUnit XML."""

from __future__ import annotations

from pathlib import Path

from capkit.errors import CapkitError
from capkit.schemas import ResourceLimits


def run_check(store_url: str, run_id: str, *, limits: ResourceLimits, max_p95_ms: float | None = 2000.0,
              max_error_rate: float | None = 0.05, min_capacity: float | None = None,
              baseline_id: str | None = None, max_regression: float | None = 0.10,
              junit_path: str | Path | None = None) -> tuple[bool, list[str]]:
    """(all gates passed, one line per gate). Thresholds that make no sense, an unknown run or a
    run too poor to fit raise :class:`CapkitError`; with ``junit_path`` the XML is written in
    every case (a failed analysis is one failing test case), so CI always has a report."""
    from capkit import analysis as ca
    from capkit.store import open_store

    try:
        thresholds = ca.GateThresholds(max_p95_ms=max_p95_ms, max_error_rate=max_error_rate,
                                       min_capacity=min_capacity, max_regression=max_regression)
        store = open_store(store_url, create=False)
        report = ca.capacity_report(ca.load_run(store, run_id), limits)
        baseline = ca.capacity_report(ca.load_run(store, baseline_id), limits) if baseline_id else None
        results = ca.evaluate_gates(report, thresholds, baseline=baseline)
    except CapkitError as exc:
        if junit_path:
            failed = ca.GateResult("analysis", False, float("nan"), float("nan"), str(exc))
            _write(junit_path, ca.junit_xml([failed], suite=f"capkit.check.{run_id}"))
        raise
    if junit_path:
        _write(junit_path, ca.junit_xml(results, suite=f"capkit.check.{run_id}"))
    lines = [f"{'PASS' if r.passed else 'FAIL'}  {r.name:<28} {r.message}" for r in results]
    return all(r.passed for r in results), lines


def _write(path: str | Path, text: str) -> None:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text, encoding="utf-8")
