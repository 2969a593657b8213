"""Sentences about a scalability fit, for people: the USL's peak and regime in words, its summary
(what ``capkit usl`` prints). The model (:mod:`capkit.analysis.fits.usl`) holds the numbers; the
words are written here, so no model imports a formatter."""

from __future__ import annotations

import json
import math

from capkit.analysis.answer.result import CapacityResult
from capkit.analysis.fits.usl import DERIVED, PARAMS, USLFit, fit_usl, read_usl_csv
from capkit.analysis.present.text import number
from capkit.schemas import EXTRAPOLATION_FACTOR, Basis, Interval, NotMeasured, resource_label

__all__ = ["peak_sentence", "regime_sentence", "result_summary", "usl_summary", "usl_report"]


def peak_sentence(fit: USLFit, level: float = 0.95) -> str:
    """The peak in words with its basis, for every place that prints it (``capkit usl``, the
    report's USL sentence and table, the plan summary)."""
    basis, top = fit.peak_basis(level), float(fit.concurrency.max())
    if basis is Basis.NOT_MEASURED:
        low = float(fit.confint(level).at["peak_concurrency", "lower"])
        bound = f"; if there is one, beyond {number(low)} users" if math.isfinite(low) and low > top else ""
        return f"no peak measured (κ ≈ 0{bound})"
    text = (f"throughput peaks at about {number(fit.max_throughput)} req/s near "
            f"{number(fit.peak_concurrency)} users ({basis}")
    if basis is Basis.EXTRAPOLATED:
        text += f": beyond {EXTRAPOLATION_FACTOR:g}× the highest measured concurrency, {top:g}"
    return text + ")"


def regime_sentence(fit: USLFit, level: float = 0.95) -> str:
    """The regime in words, for people."""
    regime = fit.regime(level)
    if regime == "linear":
        return ("no contention or coherency measured (σ, κ ≈ 0): throughput still linear in the "
                "measured range")
    if regime == "contention":
        tail = "κ ≈ 0: no retrograde region measured" if fit.negligible("kappa", level) else "σ > κ"
        return f"contention-limited ({tail})"
    return "coherency-limited (κ ≥ σ: throughput falls beyond its peak)"


def usl_summary(fit: USLFit, level: float = 0.95) -> str:
    """A few lines: coefficients with intervals, N*, X_max and the dominant limit."""
    d, pct = fit.to_dict(level), f"{100 * level:g}%"
    how = (f"bootstrap, {d['bootstrap']} relative-residual resamples, t-scaled, seed {fit.seed}" if d["bootstrap"]
           else f"asymptotic t, {fit.df_residual} df")

    def fmt(v):
        return "—" if v is None else f"{v:.6g}"

    span = f"{fit.concurrency.min():g}..{fit.concurrency.max():g}"
    lines = [f"Universal Scalability Law fit: {d['n_points']} points, N = {span}",
             f"{'':18}{'estimate':>12}{'std.err':>12}   {pct} interval ({how})"]
    labels = {"sigma": "sigma (σ)", "kappa": "kappa (κ)", "lambda_": "lambda (λ)",
              "peak_concurrency": "peak N*", "max_throughput": "max X(N*)"}
    no_peak = d["peak_basis"] == Basis.NOT_MEASURED
    for p, label in labels.items():
        se = fmt(d["stderr"][p]) if p in PARAMS else ""
        lo, hi = d["confint"][p]["lower"], d["confint"][p]["upper"]
        estimate = "—" if no_peak and p in DERIVED else fmt(d[p])  # κ ≈ 0: the fit's N* is noise
        lines.append(f"{label:18}{estimate:>12}{se:>12}   [{fmt(lo)}, {fmt(hi)}]")
    lines.append(f"{regime_sentence(fit, level)}; residual std. error "
                 f"{fmt(d['residual_std_error'])} on {fit.df_residual} df, R² {fmt(d['r_squared'])}")
    lines.append(f"peak: {peak_sentence(fit, level)}")
    return "\n".join(lines)


def usl_report(path: str, *, as_json: bool = False, bootstrap: int = 200, seed: int = 0) -> str:
    """Read ``path`` (see :func:`read_usl_csv`), fit, and return the text for ``capkit usl``."""
    n, x = read_usl_csv(path)
    fit = fit_usl(n, x, bootstrap=bootstrap, seed=seed)
    if as_json:
        return json.dumps({"file": str(path), **fit.to_dict()}, indent=2, ensure_ascii=False)
    return f"{path}\n{usl_summary(fit)}"


def result_summary(result: CapacityResult) -> str:
    """A few lines a reader needs: the run, the binding limit, per-user costs with intervals,
    the scaling thresholds, the USL and the replicas."""
    r, meta = result.resources, result.run.meta
    pct = f"{result.params.level:.0%}"
    lines = [f"Capacity of run {meta.run_id} ({meta.status}, {r.clean_user_steps} clean user steps, "
             f"target {meta.target})", result.headline(), ""]
    if result.answer.stop_reason:
        lines[-1:] = [f"Search: {result.answer.stop_reason}", ""]
    lines += [
             f"{'resource':<36}{'per user':>10}{'baseline':>10}   users at its limit ({pct} range, basis)"]
    for resource, fit in r.fits.items():
        label, unit = resource_label(resource)
        name = f"{label} ({unit})"
        if isinstance(fit, NotMeasured):
            lines.append(f"{name:<36}{'–':>10}{'–':>10}   {fit}")
            continue
        cap, basis, _ = result.located.get(resource, (fit.capacity, "projected", fit.limit))
        where = (f"{cap} · {basis}" if isinstance(cap, Interval) and cap.finite
                 else "not reached" if isinstance(cap, Interval) else str(cap))
        lines.append(f"{name:<36}{fit.per_user.estimate:>10.4g}{fit.baseline.estimate:>10.4g}   {where}")
    lines.append("")
    for t in result.thresholds:
        if not isinstance(t.users, NotMeasured):
            lines.append(f"{t.metric} {t.severity} ({t.describe_value()}): {t.users_text()}")
    if result.usl is not None:
        lines.append(f"USL: σ {result.usl.sigma:.3g}, κ {result.usl.kappa:.3g}, λ {result.usl.lambda_:.3g} req/s "
                     f"per user; {peak_sentence(result.usl, result.params.level)}")
    lines.append(result.replicas.summary())
    for name, why in result.errors.items():
        lines.append(f"{name}: {why}")
    return "\n".join(lines)
