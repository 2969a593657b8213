"""CI gates: thresholds a run must meet, evaluated to pass/fail results and JUnit XML."""

from __future__ import annotations

import math
from dataclasses import dataclass
from xml.sax.saxutils import escape, quoteattr

from capkit.analysis.answer.capacity import resource_capacity
from capkit.analysis.data.read import read_run
from capkit.analysis.fits.compare import compare_runs, holm
from capkit.analysis.fits.regression import ResourceFit
from capkit.errors import ParameterError
from capkit.schemas import DEFAULT_CRITERIA, RESOURCES, Interval


@dataclass(frozen=True)
class GateThresholds:
    """What a run must meet. ``None`` switches a gate off."""

    max_p95_ms: float | None = DEFAULT_CRITERIA.p95_critical_ms
    max_error_rate: float | None = DEFAULT_CRITERIA.max_error_rate
    min_capacity: float | None = None  # users per replica at the planning bound
    max_regression: float | None = 0.10  # capacity loss against a baseline run, as a share

    def __post_init__(self):
        checks = {"max_p95_ms": (0, math.inf), "max_error_rate": (0, 1), "min_capacity": (0, math.inf),
                  "max_regression": (0, 1)}
        for name, (lo, hi) in checks.items():
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (lo <= value <= hi) \
                    or math.isnan(value) or (name in ("max_p95_ms", "max_regression") and value <= 0):
                raise ParameterError(f"gate threshold {name}={value!r} makes no sense; it must be a number in "
                                     f"{'(' if name in ('max_p95_ms', 'max_regression') else '['}{lo:g}, {hi:g}]")


@dataclass(frozen=True)
class GateResult:
    name: str
    passed: bool
    value: float
    limit: float
    message: str


def evaluate_gates(resources, thresholds: GateThresholds, *, baseline=None, level: float = 0.95) -> list[GateResult]:
    """Evaluate every switched-on gate for ``resources`` (and against ``baseline``), failing closed.

    p95 is the highest p95 of **every** step with users, flagged ones included (an overloaded top
    step must fail the gate, not vanish from it); the error rate counts every user step; capacity
    is the binding constraint's planning capacity — with no fitted, limiting resource it fails as
    "not measured"; regression is the capacity loss per resource against the baseline, failing when
    it is larger than allowed *and* significant at ``level`` (Holm-adjusted over the resources),
    and failing as "not measured" when a resource fitted in the baseline cannot be fitted in this run.

    Parameters
    ----------
    resources, baseline : ResourceCapacity
    thresholds : GateThresholds
    level : float

    Returns
    -------
    list of GateResult
    """
    out = []
    steps = resources.steps
    loaded = steps[steps["users"] > 0]
    if thresholds.max_p95_ms is not None:
        p95 = float(loaded["p95_ms"].max()) if len(loaded) and loaded["p95_ms"].notna().any() else math.nan
        ok = math.isfinite(p95) and p95 <= thresholds.max_p95_ms
        top = loaded.loc[loaded["p95_ms"].idxmax()] if math.isfinite(p95) else None
        where = (f" at {int(top['users'])} users" + (f" (step flagged: {top['flags']})" if top["flags"] else "")
                 if top is not None else "")
        out.append(GateResult("p95", ok, p95, thresholds.max_p95_ms,
                              f"highest p95 of the steps {p95:,.0f} ms{where} (limit {thresholds.max_p95_ms:,.0f} ms)"
                              if math.isfinite(p95) else "not measured (no step with requests)"))
    if thresholds.max_error_rate is not None:
        total = float(loaded["requests"].sum())
        rate = float(loaded["failures"].sum()) / total if total else math.nan
        ok = math.isfinite(rate) and rate <= thresholds.max_error_rate
        out.append(GateResult("error_rate", ok, rate, thresholds.max_error_rate,
                              f"error rate {rate:.2%} over {total:,.0f} requests "
                              f"(limit {thresholds.max_error_rate:.2%})"
                              if total else "not measured (no requests)"))
    if thresholds.min_capacity is not None:
        b = resources.binding
        if b is None:
            out.append(GateResult("capacity", False, math.nan, thresholds.min_capacity,
                                  "not measured (no fitted resource reaches its limit: no capacity to check)"))
        else:
            cap = b.capacity.low
            out.append(GateResult("capacity", cap >= thresholds.min_capacity, cap, thresholds.min_capacity,
                                  f"planning capacity {cap:,.0f} users ({RESOURCES[b.resource][0]}); "
                                  f"minimum {thresholds.min_capacity:,.0f}"))
    if thresholds.max_regression is not None and baseline is not None:
        table = compare_runs(baseline, resources, level=level)
        # one gate per resource: their p-values are Holm-adjusted together, so that an unchanged
        # run fails one of them in at most 1 − level of checks (not once per resource)
        family = table[table["quantity"].isin([f"{label} capacity (users)" for label, _ in RESOURCES.values()])]
        adjusted, significant = holm(family["p_value"], 1 - level)
        holm_p = dict(zip(family["quantity"], adjusted, strict=True))
        holm_sig = dict(zip(family["quantity"], significant, strict=True))
        for resource, (label, _) in RESOURCES.items():
            fa, fb = baseline.fits.get(resource), resources.fits.get(resource)
            if not (isinstance(fa, ResourceFit) and isinstance(fa.capacity, Interval)):
                continue  # nothing to regress from
            if not isinstance(fb, ResourceFit):
                out.append(GateResult(f"regression_{resource}", False, math.nan, thresholds.max_regression,
                                      f"not measured in this run ({fb.reason if fb is not None else 'absent'}); "
                                      f"the baseline had {label} capacity {fa.capacity.estimate:,.0f} users"))
                continue
            cap_b = fb.capacity.estimate if isinstance(fb.capacity, Interval) else math.inf
            loss = (fa.capacity.estimate - cap_b) / fa.capacity.estimate if math.isfinite(cap_b) else -math.inf
            quantity = f"{label} capacity (users)"
            p = float(holm_p.get(quantity, math.nan))
            significant = bool(holm_sig.get(quantity, False))
            ok = not (loss > thresholds.max_regression and significant)
            out.append(GateResult(f"regression_{resource}", ok, loss, thresholds.max_regression,
                                  f"{label} capacity {fa.capacity.estimate:,.0f} → {cap_b:,.0f} users "
                                  f"({-loss:+.1%}, Holm p={p:.3g} over {len(family)} resources; fails above "
                                  f"{thresholds.max_regression:.0%} loss when significant)"))
    return out


def check_run(store, run_id: str, *, limits, thresholds: GateThresholds, baseline_id: str | None = None,
              level: float | None = None) -> list[GateResult]:
    """The gates of stored run ``run_id`` (against ``baseline_id``) at ``level`` (default: the run's
    criteria); raises :class:`CapkitError` for an unknown run or one too poor to fit."""
    run = read_run(store, run_id)
    level = run.meta.spec.criteria.level if level is None else level
    resources = resource_capacity(run, limits, level=level)
    baseline = resource_capacity(read_run(store, baseline_id), limits, level=level) if baseline_id else None
    return evaluate_gates(resources, thresholds, baseline=baseline, level=level)


def junit_xml(results: list[GateResult], *, suite: str = "capkit.check") -> str:
    """A JUnit XML report: one test case per gate, a ``<failure>`` for each breached one."""
    failures = sum(not r.passed for r in results)
    cases = []
    for r in results:
        body = "" if r.passed else f'<failure message={quoteattr(r.message)}>{escape(r.message)}</failure>'
        cases.append(f'  <testcase classname={quoteattr(suite)} name={quoteattr(r.name)} time="0">'
                     f'{body}<system-out>{escape(r.message)}</system-out></testcase>')
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<testsuite name={quoteattr(suite)} tests="{len(results)}" '
            f'failures="{failures}" errors="0">\n' + "\n".join(cases) + "\n</testsuite>\n")
