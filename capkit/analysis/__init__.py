"""Capacity analysis of stored runs: what a notebook author needs.

Read a run, analyse it, fit single models, compare two runs, gate a run in CI::

    from capkit import analysis as ca
    result = ca.analyse_run(ca.read_run(None, None))   # the latest run of the project's store
    print(ca.summary(result))

Figures live in :mod:`capkit.analysis.present.figures` (imported on demand: it loads matplotlib), the
report pages' helpers in :mod:`capkit.analysis.pages`.
"""

from capkit.analysis.answer.capacity import ResourceCapacity
from capkit.analysis.answer.gates import GateThresholds, evaluate_gates
from capkit.analysis.answer.parameters import ReportParameters
from capkit.analysis.answer.result import CapacityResult, analyse_run, result_for
from capkit.analysis.data.read import RunData, read_run
from capkit.analysis.fits.compare import compare_runs
from capkit.analysis.fits.latency import LatencyModel, fit_latency
from capkit.analysis.fits.regression import ResourceFit, fit_resource_regression
from capkit.analysis.fits.usl import USLFit, fit_usl
from capkit.schemas import Interval, NotMeasured

__all__ = [
    "CapacityResult", "GateThresholds", "Interval", "LatencyModel", "NotMeasured", "ReportParameters",
    "ResourceCapacity", "ResourceFit", "RunData", "USLFit",
    "analyse_run", "compare_runs", "evaluate_gates", "fit_latency", "fit_resource_regression", "fit_usl",
    "read_run", "result_for",
]
