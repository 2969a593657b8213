"""Pure analysis functions on DataFrames: step aggregation, regressions, USL, capacity models.

Figures live in :mod:`capkit.analysis.plots` (imported on demand: it loads matplotlib).
"""

from capkit.analysis.capacity import CapacityReport, capacity_report, export_tables, fits_table, markdown_table
from capkit.analysis.data import RunData, load_run
from capkit.analysis.regression import (
    ResourceFit,
    baseline_table,
    binding_constraint,
    fit_resource_regression,
    fit_resources,
)
from capkit.analysis.steps import endpoint_table, per_second_resources, summarize_steps
from capkit.analysis.usl import USLFit, fit_usl, usl_from_steps

__all__ = [
    "CapacityReport", "RunData", "ResourceFit", "USLFit",
    "baseline_table", "binding_constraint", "capacity_report", "endpoint_table", "export_tables",
    "fit_resource_regression", "fit_resources", "fit_usl", "fits_table", "load_run", "markdown_table",
    "per_second_resources", "summarize_steps", "usl_from_steps",
]
