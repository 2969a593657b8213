"""The whole capacity analysis of one run in one call: every model, table and recommendation.

``analyse_run(run, params)`` returns a :class:`CapacityResult`; ``result_for(params)`` reads the
run and memoises the result per kernel, so report pages executed in one kernel compute it once.
A notebook cell shows ``result.summary()``, in the manner of a statsmodels results object.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import pandas as pd

from capkit.analysis.answer import CapacityAnswer, capacity_answer, service_failure
from capkit.analysis.backtest import Backtest, backtest
from capkit.analysis.capacity import ResourceCapacity, baseline_table, resource_capacity
from capkit.analysis.components import component_endpoints, component_table
from capkit.analysis.data import RunData, read_run
from capkit.analysis.diagnostics import regression_diagnostics
from capkit.analysis.latency import LatencyModel, fit_latency
from capkit.analysis.parameters import ReportParameters
from capkit.analysis.recommend import recommendations
from capkit.analysis.regression import ResourceFit
from capkit.analysis.replicas import ReplicaPlan, replicas_needed
from capkit.analysis.resources import cache_hit_rate
from capkit.analysis.thresholds import ResourceLocator, Threshold, scaling_thresholds, thresholds_table
from capkit.analysis.usl import USLFit, usl_from_steps
from capkit.errors import CapkitError
from capkit.schemas import Interval, NotMeasured, resource_label


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
    located: dict  # resource -> (users at its limit, basis), as the Baseline Metrics table shows them
    replicas: ReplicaPlan
    recommendations: pd.DataFrame
    backtest: Backtest | None
    cache_hit_rate: float
    errors: dict[str, NotMeasured]

    @property
    def run_id(self) -> str:
        return self.run.run_id

    @functools.cached_property
    def mix(self):
        """Per-class demands of this run (:class:`~capkit.analysis.whatif.MixModel`), or
        :class:`~capkit.schemas.NotMeasured` saying why not (computed on first use)."""
        from capkit.analysis.whatif import mix_model

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

    def summary(self) -> str:
        """A few lines a reader needs: the run, the binding limit, per-user costs with intervals,
        the scaling thresholds, the USL and the replicas."""
        r, meta = self.resources, self.run.meta
        pct = f"{self.params.level:.0%}"
        lines = [f"Capacity of run {meta.run_id} ({meta.status}, {r.clean_user_steps} clean user steps, "
                 f"target {meta.target})", self.headline(), ""]
        if self.answer.stop_reason:
            lines[-1:] = [f"Search: {self.answer.stop_reason}", ""]
        lines += [
                 f"{'resource':<36}{'per user':>10}{'baseline':>10}   users at its limit ({pct} range, basis)"]
        for resource, fit in r.fits.items():
            label, unit = resource_label(resource)
            name = f"{label} ({unit})"
            if isinstance(fit, NotMeasured):
                lines.append(f"{name:<36}{'–':>10}{'–':>10}   {fit}")
                continue
            cap, basis = self.located.get(resource, (fit.capacity, "projected"))
            where = (f"{cap} · {basis}" if isinstance(cap, Interval) and cap.finite
                     else "not reached" if isinstance(cap, Interval) else str(cap))
            lines.append(f"{name:<36}{fit.per_user.estimate:>10.4g}{fit.baseline.estimate:>10.4g}   {where}")
        lines.append("")
        for t in self.thresholds:
            if not isinstance(t.users, NotMeasured):
                lines.append(f"{t.metric} {t.level} ({t.describe_level()}): {t.users_text()}")
        if self.usl is not None:
            lines.append(f"USL: σ {self.usl.sigma:.3g}, κ {self.usl.kappa:.3g}, λ {self.usl.lambda_:.3g} req/s "
                         f"per user; {self.usl.peak_text(self.params.level)}")
        lines.append(self.replicas.summary())
        for name, why in self.errors.items():
            lines.append(f"{name}: {why}")
        return "\n".join(lines)


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
    p = params or ReportParameters()
    resources = resource_capacity(run, p.limits, level=p.level)
    errors: dict = {}
    clean = resources.steps[resources.steps["clean"] & (resources.steps["users"] > 0)]
    usl = latency = bt = None
    try:
        usl = usl_from_steps(clean, bootstrap=p.bootstrap, seed=p.seed)
    except CapkitError as exc:
        errors["usl"] = NotMeasured(str(exc))
    if usl is not None:
        try:
            latency = fit_latency(clean, usl, warning_ms=p.latency_warning_ms,
                                  critical_ms=p.latency_critical_ms, level=p.level, bootstrap=p.bootstrap,
                                  seed=p.seed)
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
    thresholds = scaling_thresholds(resources, latency, usl, cpu=p.cpu_thresholds, memory=p.memory_thresholds,
                                    db_cpu=p.db_cpu_thresholds, p95_ms=(p.latency_warning_ms, p.latency_critical_ms),
                                    locator=locator, failure=failure)
    search = run.search or {}
    answer = capacity_answer(run.run_id, thresholds, stop_reason=search.get("stop_reason"), failure=failure)
    located = {key: locator(key, resources.limits.limit_for(key))
               for key, fit in resources.fits.items() if isinstance(fit, ResourceFit)}
    baseline = baseline_table(resources.fits, located)
    return CapacityResult(
        run=run, params=p, resources=resources, usl=usl, latency=latency, diagnostics=diagnostics,
        components=component_table(run.requests, run.steps, resources.steps, warmup_s=run.warmup_s,
                                   warning_ms=p.latency_warning_ms, critical_ms=p.latency_critical_ms),
        endpoints=component_endpoints(resources.endpoints),
        thresholds=thresholds, answer=answer, baseline=baseline, located=located,
        replicas=replicas_needed(resources, p.target_users, headroom=p.headroom, latency=latency, answer=answer),
        recommendations=recommendations(resources, diagnostics=diagnostics, latency=latency, cache_hit_rate=hit,
                                        answer=answer),
        backtest=bt, cache_hit_rate=hit, errors=errors)


def result_for(params: ReportParameters) -> CapacityResult:
    """Read ``params.run_id`` from ``params.store_url`` and analyse it — once per kernel for equal
    parameters (``output_dir`` and ``baseline_run_id`` do not change the result)."""
    return _cached(params.replace(output_dir=None, baseline_run_id=None))


@functools.lru_cache(maxsize=4)
def _cached(params: ReportParameters) -> CapacityResult:
    return analyse_run(read_run(params.store_url, params.run_id), params)
