"""Capacity analysis of stored runs: what a notebook author needs.

Read a run, analyse it, fit single models, compare two runs, gate a run in CI::

    from capkit import analysis as ca
    result = ca.analyse_run(ca.read_run(None, None))   # the latest run of the project's store
    print(result.summary())

Figures live in :mod:`capkit.analysis.plots` (imported on demand: it loads matplotlib), the
report pages' helpers in :mod:`capkit.analysis.pages`.
"""

from capkit.analysis.capacity import ResourceCapacity
from capkit.analysis.compare import compare_runs
from capkit.analysis.data import RunData, read_run
from capkit.analysis.gates import GateThresholds, evaluate_gates
from capkit.analysis.latency import LatencyModel, fit_latency
from capkit.analysis.parameters import ReportParameters
from capkit.analysis.regression import ResourceFit, fit_resource_regression
from capkit.analysis.result import CapacityResult, analyse_run, result_for
from capkit.analysis.usl import USLFit, fit_usl
from capkit.schemas import Interval, NotMeasured

__all__ = [
    "CapacityResult", "GateThresholds", "Interval", "LatencyModel", "NotMeasured", "ReportParameters",
    "ResourceCapacity", "ResourceFit", "RunData", "USLFit",
    "analyse_run", "compare_runs", "evaluate_gates", "fit_latency", "fit_resource_regression", "fit_usl",
    "read_run", "result_for",
]
