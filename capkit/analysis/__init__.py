"""Pure analysis functions on DataFrames: step aggregation, regressions, USL, latency, capacity plans.

Figures live in :mod:`capkit.analysis.plots` (imported on demand: it loads matplotlib).
"""

from capkit.analysis.backtest import Backtest, backtest
from capkit.analysis.capacity import CapacityReport, capacity_report, export_tables, fits_table, markdown_table
from capkit.analysis.compare import compare_runs
from capkit.analysis.components import component_endpoints, component_of, component_table
from capkit.analysis.data import RunData, load_run
from capkit.analysis.diagnostics import regression_diagnostics
from capkit.analysis.gates import GateResult, GateThresholds, evaluate_gates, junit_xml
from capkit.analysis.latency import LatencyModel, fit_latency
from capkit.analysis.pages import (
    backtest_md,
    comparison_display,
    comparison_for,
    consolidated,
    notebook_parameters,
    notes_md,
    overview_md,
)
from capkit.analysis.planning import (
    CapacityPlan,
    capacity_plan,
    check_parameters,
    export_plan_tables,
    limits_from,
    plan_for,
)
from capkit.analysis.recommend import recommendations
from capkit.analysis.regression import (
    ResourceFit,
    baseline_table,
    binding_constraint,
    fit_resource_regression,
    fit_resources,
)
from capkit.analysis.replicas import ReplicaPlan, replicas_needed
from capkit.analysis.resources import cache_hit_rate, resource_frame
from capkit.analysis.steps import endpoint_table, per_second_resources, summarize_steps
from capkit.analysis.thresholds import scaling_thresholds
from capkit.analysis.usl import USLFit, fit_usl, usl_from_steps

__all__ = [
    "Backtest", "CapacityPlan", "CapacityReport", "GateResult", "GateThresholds", "LatencyModel", "ReplicaPlan",
    "RunData", "ResourceFit", "USLFit",
    "backtest", "backtest_md", "baseline_table", "comparison_display", "comparison_for", "consolidated",
    "notebook_parameters", "notes_md", "overview_md", "binding_constraint", "cache_hit_rate", "capacity_plan",
    "capacity_report",
    "check_parameters", "compare_runs", "component_endpoints", "component_of", "component_table",
    "endpoint_table",
    "evaluate_gates", "export_plan_tables", "export_tables", "fit_latency", "fit_resource_regression",
    "fit_resources", "fit_usl", "fits_table", "junit_xml", "limits_from", "load_run", "markdown_table",
    "per_second_resources", "plan_for", "recommendations", "regression_diagnostics", "replicas_needed",
    "resource_frame", "scaling_thresholds", "summarize_steps", "usl_from_steps",
]
