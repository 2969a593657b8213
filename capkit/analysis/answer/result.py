"""The whole capacity analysis of one run in one call: every model, table and recommendation.

``analyse_run(run, params)`` returns a :class:`CapacityResult`; ``result_for(params)`` reads the
run and memoises the result per kernel, so report pages executed in one kernel compute it once.
A notebook cell shows ``result.summary()``, in the manner of a statsmodels results object.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import pandas as pd

from capkit.analysis.answer.capacity import ResourceCapacity, baseline_table, resource_capacity
from capkit.analysis.answer.limits import CapacityAnswer, capacity_answer, service_failure
from capkit.analysis.answer.parameters import ReportParameters
from capkit.analysis.answer.recommend import recommendations
from capkit.analysis.answer.replicas import ReplicaPlan, replicas_needed
from capkit.analysis.answer.thresholds import ResourceLocator, Threshold, scaling_thresholds, thresholds_table
from capkit.analysis.data.components import component_endpoints, component_table
from capkit.analysis.data.read import RunData, read_run
from capkit.analysis.data.resources import cache_hit_rate
from capkit.analysis.fits.backtest import Backtest, backtest
from capkit.analysis.fits.diagnostics import regression_diagnostics
from capkit.analysis.fits.latency import LatencyModel, fit_latency
from capkit.analysis.fits.regression import ResourceFit
from capkit.analysis.fits.usl import USLFit, usl_from_steps
from capkit.errors import CapkitError
from capkit.schemas import POOL_RESOURCES, Criteria, NotMeasured


@dataclass
class CapacityResult:
    """Everything the report pages show for one run. A model that could not be fitted is None,
    with its reason in ``errors``."""

    run: RunData
    params: ReportParameters
    resources: ResourceCapacity
    usl: USLFit | None
    latency: LatencyModel | None
    diagnostics: pd.DataFrame
    components: pd.DataFrame
    endpoints: pd.DataFrame
    thresholds: list[Threshold]
    answer: CapacityAnswer
    baseline: pd.DataFrame  # the Baseline Metrics table, its capacities from the same answer
    located: dict  # resource -> (users where it is full, basis, that value), as the Baseline Metrics table shows
    replicas: ReplicaPlan
    recommendations: pd.DataFrame
    backtest: Backtest | None
    cache_hit_rate: float
    errors: dict[str, NotMeasured]
    locator: ResourceLocator | None = None  # where each resource reaches a value; its throughput curves

    @property
    def run_id(self) -> str:
        return self.run.run_id

    @functools.cached_property
    def mix(self):
        """Per-class demands of this run (:class:`~capkit.analysis.answer.whatif.MixModel`), or
        :class:`~capkit.schemas.NotMeasured` saying why not (computed on first use)."""
        from capkit.analysis.answer.whatif import mix_model

        try:
            return mix_model(self.run, self.params.limits, level=self.params.level)
        except CapkitError as exc:
            return NotMeasured(str(exc))

    def thresholds_table(self) -> pd.DataFrame:
        return thresholds_table(self.thresholds)

    def usl_table(self) -> pd.DataFrame:
        """USL coefficients with intervals, N* and X_max (empty without a fit)."""
        if self.usl is None:
            return pd.DataFrame(columns=["parameter", "estimate", "lower", "upper"])
        ci = self.usl.confint(self.params.level)
        ci.insert(0, "estimate", [getattr(self.usl, p) for p in ci.index])
        return ci.rename_axis("parameter").reset_index()

    def headline(self) -> str:
        return self.answer.headline

    @property
    def criteria(self) -> Criteria:
        """The criteria this result was judged by (the run's own unless the parameters gave others)."""
        return self.params.criteria

    def latency_crossings(self) -> pd.DataFrame:
        """Where the latency model's p95 crosses the warning and critical thresholds (empty without a model)."""
        if self.latency is None:
            return pd.DataFrame(columns=["threshold", "ms", "users", "low", "high"])
        return self.latency.crossings({"warning": self.criteria.p95_warning_ms,
                                       "critical": self.criteria.p95_critical_ms})


def analyse_run(run: RunData, params: ReportParameters | None = None) -> CapacityResult:
    """Fit every model of one run and derive the plan.

    Parameters
    ----------
    run : RunData
    params : ReportParameters, optional
        Limits, thresholds, interval level, bootstrap size… (defaults when None).

    Returns
    -------
    CapacityResult

    Raises
    ------
    InsufficientDataError
        When fewer than 2 clean steps remain (no model at all); a later model that cannot be
        fitted is reported in ``errors`` instead.
    """
    p = (params or ReportParameters()).resolved(run.meta.spec.criteria)
    c = p.criteria
    resources = resource_capacity(run, p.limits, level=c.level, max_error_rate=c.max_error_rate)
    errors: dict = {}
    clean = resources.steps[resources.steps["clean"] & (resources.steps["users"] > 0)]
    usl = latency = bt = None
    try:
        usl = usl_from_steps(clean, bootstrap=p.bootstrap, seed=p.seed)
    except CapkitError as exc:
        errors["usl"] = NotMeasured(str(exc))
    if usl is not None:
        try:
            latency = fit_latency(clean, usl, level=c.level, bootstrap=p.bootstrap, seed=p.seed)
        except CapkitError as exc:
            errors["latency"] = NotMeasured(str(exc))
    else:
        errors["latency"] = NotMeasured("needs the USL fit (at least 3 clean steps with users)")
    try:
        # half the resamples: the backtest's intervals only say inside/outside
        bt = backtest(resources, train_share=p.train_share, level=p.level, bootstrap=p.bootstrap // 2, seed=p.seed)
    except CapkitError as exc:
        errors["backtest"] = NotMeasured(str(exc))
    diagnostics = regression_diagnostics(resources.per_second,
                                         resources.steps.loc[resources.steps["clean"], "step"])
    hit = cache_hit_rate(run.samples)
    locator = ResourceLocator(resources, usl)
    failure = service_failure(run.meta, resources.steps)
    thresholds = scaling_thresholds(resources, c, latency, usl, locator=locator, failure=failure)
    search = run.search or {}
    answer = capacity_answer(run.run_id, thresholds, stop_reason=search.get("stop_reason"), failure=failure)
    located = {key: (*locator(key, value), value) for key, fit in resources.fits.items()
               if isinstance(fit, ResourceFit) for value in [full_at(key, resources.limits, c)]}
    baseline = baseline_table(resources.fits, located)
    return CapacityResult(
        run=run, params=p, resources=resources, usl=usl, latency=latency, diagnostics=diagnostics,
        components=component_table(run.requests, run.steps, resources.steps, warmup_s=run.warmup_s,
                                   criteria=c),
        endpoints=component_endpoints(resources.endpoints),
        thresholds=thresholds, answer=answer, baseline=baseline, located=located,
        replicas=replicas_needed(resources, p.target_users, headroom=p.headroom, latency=latency, answer=answer,
                                 p95_ms=c.p95_warning_ms),
        recommendations=recommendations(resources, diagnostics=diagnostics, latency=latency, cache_hit_rate=hit,
                                        answer=answer, p95_ms=c.p95_warning_ms),
        backtest=bt, cache_hit_rate=hit, errors=errors, locator=locator)


def full_at(key: str, limits, criteria) -> float:
    """Where a resource is full: its limit; a pool at its critical share (a pool fills along a curve
    and stays full: its size is approached, never crossed, so the answer's binding limit, the
    thresholds and the Baseline Metrics table all read the pool at the critical share)."""
    limit = limits.limit_for(key)
    return criteria.pool_shares[1] * limit if key in POOL_RESOURCES else limit


def result_for(params: ReportParameters) -> CapacityResult:
    """Read ``params.run_id`` from ``params.store_url`` and analyse it — once per kernel for equal
    parameters (``output_dir`` and ``baseline_run_id`` do not change the result)."""
    return _cached(params.replace(output_dir=None, baseline_run_id=None))


@functools.lru_cache(maxsize=4)
def _cached(params: ReportParameters) -> CapacityResult:
    return analyse_run(read_run(params.store_url, params.run_id), params)
