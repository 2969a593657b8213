"""What-if for any traffic mix: per-class demands of one run applied to a mix it never ran.

:func:`mix_model` fits every resource's demands (:mod:`capkit.analysis.fits.demands`) and each class's
requests/s per user; :meth:`MixModel.what_if` predicts, for a mix and a load (users or requests/s),
each resource's utilization with its prediction interval, the users per replica at which each
reaches its critical level, and the binding limit. Numbers come from the model, never measured
(the prediction is a new step's mean at that mix): *projected* within 1.25× the most users a clean
step of the run carried, *extrapolated* beyond, as every capacity figure (:mod:`capkit.analysis.answer.limits`).

The stage design that makes the demands identifiable (``--design mix``) and ``--mix`` parsing are
in :mod:`capkit.analysis.design.mixes`; the closed-system solver in :mod:`capkit.analysis.fits.mva`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from capkit.analysis.data.read import RunData
from capkit.analysis.design.mixes import mix_design, parse_mix
from capkit.analysis.fits.demands import (
    DEMAND_RESOURCES,
    DemandFit,
    NotIdentifiable,
    class_steps,
    fit_demands,
    run_classes,
)
from capkit.analysis.fits.mva import closed_rates, delays_from_steps
from capkit.analysis.fits.regression import solve_users
from capkit.errors import ConfigError
from capkit.schemas import (
    EXTRAPOLATION_FACTOR,
    REFERENCE_CLASSES,
    Basis,
    Interval,
    NotMeasured,
    ResourceLimits,
    load_basis,
    resource_label,
)

# the share of its limit at which a resource ends a replica's useful load (the critical levels of
# the scaling thresholds: capkit.analysis.answer.thresholds)
CRITICAL_SHARES = {"cpu_cores": 0.90, "rss_mib": 0.90, "db_cpu_cores": 0.85, "model_slots": 0.95, "db_pool": 0.95,
                   "db_connections": 1.0, "network_kbps": 1.0, "redis_memory_mib": 0.90, "model_queue": 1.0}
SAME_MIX_TOLERANCE = 0.05  # shares within this of the run's own mix count as that mix

__all__ = ["MixModel", "ResourcePrediction", "WhatIf", "mix_design", "mix_model", "parse_mix"]

@dataclass(frozen=True)
class ResourcePrediction:
    """One resource at the asked mix and load: predicted value (projected) with its interval, its
    limit and critical level, and the users per replica at which the upper bound reaches that level."""

    resource: str
    value: Interval
    limit: float
    critical: float
    users_at_critical: Interval | NotMeasured

    def to_dict(self) -> dict:
        users = self.users_at_critical
        return {"resource": self.resource, "predicted": self.value.estimate, "low": self.value.low,
                "high": self.value.high, "limit": self.limit, "critical": self.critical,
                "users_at_critical": (None if not isinstance(users, Interval) or math.isinf(users.low)
                                      else users.low)}


@dataclass
class WhatIf:
    """The answer for one mix: every resource predicted, the binding limit, users per replica."""

    mix: dict[str, float]
    users: float
    rate: float  # requests/s of the classes at ``users``
    resources: list[ResourcePrediction]
    level: float
    top_users: float = math.nan  # the most users a clean step of the run carried
    set_aside: dict = field(default_factory=dict)  # resource -> steps its demands were fitted without

    def basis_at(self, users: float) -> Basis:
        """``projected`` up to 1.25× :attr:`top_users`, ``extrapolated`` beyond (or when unknown)."""
        return load_basis(users, self.top_users)

    @property
    def basis(self) -> Basis:
        """Of the predictions at :attr:`users`."""
        return self.basis_at(self.users)

    def _beyond(self, users: float) -> str:
        return ("" if self.basis_at(users) is Basis.PROJECTED else
                f": beyond {EXTRAPOLATION_FACTOR:g}× the {self.top_users:,.0f} users the run measured")

    @property
    def binding(self) -> ResourcePrediction | None:
        """The resource whose critical level is reached at the fewest users (planning: upper bound)."""
        finite = [r for r in self.resources if isinstance(r.users_at_critical, Interval)
                  and math.isfinite(r.users_at_critical.low)]
        return min(finite, key=lambda r: r.users_at_critical.low) if finite else None

    @property
    def users_per_replica(self) -> Interval | NotMeasured:
        b = self.binding
        return b.users_at_critical if b is not None else NotMeasured("no resource reaches its critical level")

    def table(self) -> pd.DataFrame:
        rows = []
        for r in self.resources:
            label, unit = resource_label(r.resource)
            users = r.users_at_critical
            at = (f"{users.low:,.0f} (plan) · {users.estimate:,.0f} (mean), {self.basis_at(users.low)}"
                  if isinstance(users, Interval) and math.isfinite(users.low)
                  else "not reached" if isinstance(users, Interval) else str(users))
            rows.append({"Resource": f"{label} ({unit})", f"Predicted ({self.basis})": str(r.value),
                         "Limit": f"{r.limit:,.4g}", "Critical": f"{r.critical:,.4g}",
                         "Users per replica at critical": at})
        return pd.DataFrame(rows)

    def summary(self) -> str:
        mix = ",".join(f"{c}={w:g}" for c, w in self.mix.items())
        b, upr = self.binding, self.users_per_replica
        head = (f"what-if mix {mix} at {self.users:,.1f} users ({self.rate:,.1f} req/s) — {self.basis} from "
                f"per-class demands{self._beyond(self.users)}; {self.level:.0%} prediction intervals")
        tail = (f"binding limit: {resource_label(b.resource)[0]} · users per replica: {upr.low:,.0f} (plan; mean "
                f"{upr.estimate:,.0f}, {self.basis_at(upr.low)}{self._beyond(upr.low)})"
                if b is not None and isinstance(upr, Interval) else f"binding limit: none ({upr})")
        odd = "".join(f"\n{resource_label(r)[0]}: step {', '.join(map(str, steps))} set aside — the fit through the "
                      f"other steps could not predict it" for r, steps in self.set_aside.items())
        return f"{head}\n{self.table().to_string(index=False)}\n{tail}{odd}"

    def to_dict(self) -> dict:
        b, upr = self.binding, self.users_per_replica
        plan = upr.low if isinstance(upr, Interval) and math.isfinite(upr.low) else None
        return {"mix": self.mix, "users": self.users, "rate": self.rate, "level": self.level,
                "basis": str(self.basis), "measured_users": self.top_users if math.isfinite(self.top_users) else None,
                "users_per_replica_basis": str(self.basis_at(plan)) if plan is not None else None,
                "resources": [r.to_dict() for r in self.resources],
                "binding_limit": b.resource if b is not None else None,
                "users_per_replica": (upr.low if isinstance(upr, Interval) and math.isfinite(upr.low) else None),
                "users_per_replica_mean": (upr.estimate if isinstance(upr, Interval) and math.isfinite(upr.estimate)
                                           else None),
                "set_aside": {r: list(steps) for r, steps in self.set_aside.items()}}


@dataclass
class MixModel:
    """Every resource's per-class demands in one run, each class's requests/s per user, and the
    limits; ``combined`` holds single-class fits (all classes as one) for a run whose classes moved
    together, which answer only for the run's own mix."""

    run_id: str
    classes: tuple[str, ...]
    fits: dict[str, DemandFit | NotMeasured]
    combined: dict[str, DemandFit | NotMeasured]
    rates: dict[str, Interval]  # requests/s per user of each class
    run_mix: dict[str, float]  # the run's users per class, as shares (over its clean loaded steps)
    limits: dict[str, float]
    table: pd.DataFrame = field(repr=False)
    level: float = 0.95
    base_mix: dict[str, float] = field(default_factory=dict)  # the run's --mix (its classes), else run_mix
    # closed-model correction (see per_user_rates): CPU demand per request, seconds per request a
    # user spends outside the CPU's queue (thinking, waiting on everything else), the idle CPU, cores
    cpu_demand: dict[str, float] = field(default_factory=dict)
    delay_s: dict[str, float] = field(default_factory=dict)
    cpu_base: float = 0.0
    cores: float = math.nan

    def per_user_rates(self, shares: dict[str, float], users: float) -> dict[str, float]:
        """Requests/s per user of each class at ``users`` of this mix.

        Users are a closed system: a user's next request waits for the previous one, and requests
        wait longer as the CPU fills. The CPU is a processor-sharing station with the fitted
        demands ``D_c`` (on ``cores`` cores: ``D_c / cores``), everything else a delay ``Z_c`` per
        request; approximate mean value analysis (Bard–Schweitzer, as PDQ solves closed models)
        gives the residence ``R_c = D_c (1 + Σ_k Q_k (N_k − [k = c]) / N_k)`` and
        ``r_c = 1 / (Z_c + R_c)``. Without a CPU fit: the rates the steps measured."""
        if not self.delay_s or not math.isfinite(self.cores):
            return {c: self.rates[c].estimate for c in self.classes}
        n = {c: users * shares[c] for c in self.classes}
        return closed_rates(n, {c: self.cpu_demand.get(c, 0.0) / self.cores for c in self.classes}, self.delay_s)

    @property
    def identifiable(self) -> bool:
        return not any(isinstance(f, NotIdentifiable) for f in self.fits.values())

    @property
    def top_users(self) -> float:
        """The most users a clean step of the run carried (NaN without one)."""
        loaded = self.table[self.table["clean"] & (self.table["users"] > 0)]
        return float(loaded["users"].max()) if len(loaded) else math.nan

    def _shares(self, mix: dict[str, float]) -> dict[str, float]:
        total = sum(mix.values())
        return {c: mix.get(c, 0.0) / total for c in self.classes}

    def _same_as_run(self, shares: dict[str, float]) -> bool:
        return all(abs(shares[c] - self.run_mix.get(c, 0.0)) <= SAME_MIX_TOLERANCE for c in self.classes)

    def what_if(self, mix: dict[str, float], *, users: float | None = None, rate: float | None = None) -> WhatIf:
        """Predict every resource for ``mix`` (class -> weight) at ``users`` or ``rate`` requests/s
        (default: 100 users). ConfigError (one line) when the run cannot answer for this mix."""
        unknown = [c for c in mix if c not in self.classes]
        if unknown:
            raise ConfigError(f"--mix: unknown class {', '.join(unknown)}; run {self.run_id} has "
                              f"{', '.join(self.classes)}")
        if sum(mix.values()) <= 0:
            raise ConfigError("--mix: the weights sum to zero; give at least one class a weight > 0")
        shares = self._shares(mix)
        fits = self.fits
        if not self.identifiable:
            if not self._same_as_run(shares):
                why = next(f for f in self.fits.values() if isinstance(f, NotIdentifiable))
                raise ConfigError(f"run {self.run_id} has no mix variation: per-class demands are not identifiable "
                                  f"({why.reason}); it answers only for its own mix")
            fits = self.combined
        if rate is not None:
            total = lambda n: n * sum(shares[c] * r for c, r in self.per_user_rates(shares, n).items())  # noqa: E731
            users = solve_users(total, rate)
        users = 100.0 if users is None else float(users)
        per_user_rate = sum(shares[c] * r for c, r in self.per_user_rates(shares, users).items())
        out = []
        for resource, fit in fits.items():
            if not isinstance(fit, DemandFit):
                continue
            limit = self.limits.get(resource, math.nan)
            critical = CRITICAL_SHARES.get(resource, 1.0) * limit
            value = self._predict(fit, shares, users)
            if math.isfinite(critical):
                slope = self._predict(fit, shares, 1.0).estimate - fit.baseline.estimate
                if slope <= 0:
                    at: Interval | NotMeasured = NotMeasured("no demand per user at this mix")
                else:
                    upper = lambda n, f=fit: self._predict(f, shares, n).high  # noqa: E731
                    mean = lambda n, f=fit: self._predict(f, shares, n).estimate  # noqa: E731
                    lower = lambda n, f=fit: self._predict(f, shares, n).low  # noqa: E731
                    est, low, high = (solve_users(fn, critical) for fn in (mean, upper, lower))
                    at = Interval(est, min(low, est), max(high, est), self.level)
            else:
                at = NotMeasured("its limit was neither given nor reported")
            out.append(ResourcePrediction(resource, value, limit, critical, at))
        odd = {r: f.set_aside for r, f in fits.items() if isinstance(f, DemandFit) and f.set_aside}
        return WhatIf(mix=dict(mix), users=users, rate=users * per_user_rate, resources=out, level=self.level,
                      top_users=self.top_users, set_aside=odd)

    def _predict(self, fit: DemandFit, shares: dict[str, float], users: float) -> Interval:
        n = {c: users * shares[c] for c in self.classes}
        if fit.kind == "sessions":
            x = {c: n[c] for c in self.classes}
            extra = 0.0
        else:
            r = self.per_user_rates(shares, users)
            x = {c: n[c] * r[c] for c in self.classes}
            # the requests/s per user are estimated too: their variance through each class's demand
            d = dict(zip(fit.classes, fit.params[1:], strict=True))
            se = {c: self.rates[c].half_width() / _tq(self.rates[c]) * r[c] / self.rates[c].estimate
                  for c in self.classes}
            load = {c: n[c] * d.get(c, d.get("all", 0.0)) for c in self.classes}
            # a class with no load here adds nothing, however unsure its rate (0 × ∞ is not a variance)
            extra = sum((load[c] * se[c]) ** 2 for c in self.classes if load[c] != 0)
        if fit.classes == ("all",):
            x = {"all": sum(x.values())}
        return fit.predict(x, extra_var=extra)

    def cost_table(self) -> pd.DataFrame:
        """Per class: CPU ms per request, bytes per request, MiB per session, requests/s per user."""
        rows = []
        cpu, mem = self.fits.get("cpu_cores"), self.fits.get("rss_mib")
        for c in self.classes:
            row = {"Class": c, "Endpoints": ", ".join(REFERENCE_CLASSES.get(c, (c,))),
                   "Requests/s per user": str(self.rates[c])}
            row["CPU ms per request"] = (str(_scaled(cpu.demands[c], 1000)) if isinstance(cpu, DemandFit)
                                         else str(cpu))
            label = "MiB per WebSocket connection" if c == "ws" else "MiB per session"
            row["MiB per session"] = (f"{_scaled(mem.demands[c], 1)} ({label})" if isinstance(mem, DemandFit)
                                      else str(mem))
            rows.append(row)
        return pd.DataFrame(rows)


def _scaled(iv: Interval, k: float) -> Interval:
    return Interval(iv.estimate * k, iv.low * k, iv.high * k, iv.level)


def _tq(iv: Interval) -> float:
    return 1.959963984540054 if iv.level == 0.95 else float(stats.norm.ppf(0.5 + iv.level / 2))


def _rates(table: pd.DataFrame, classes: tuple[str, ...], level: float) -> dict[str, Interval]:
    """Requests/s per user of each class: ratio of sums over its clean steps, interval from the
    spread of the per-step ratios (t on steps − 1)."""
    out = {}
    clean = table[table["clean"]]
    for c in classes:
        d = clean[(clean[f"n_{c}"] > 0) & clean[f"X_{c}"].notna()] if f"n_{c}" in clean else clean.iloc[0:0]
        if d.empty:
            out[c] = Interval(math.nan, math.nan, math.nan, level)
            continue
        est = float(d[f"X_{c}"].sum() / d[f"n_{c}"].sum())
        ratios = (d[f"X_{c}"] / d[f"n_{c}"]).to_numpy(float)
        k = len(ratios)
        half = (float(stats.t.ppf(0.5 + level / 2, k - 1)) * ratios.std(ddof=1) / math.sqrt(k)) if k > 1 else math.inf
        out[c] = Interval(est, est - half, est + half, level)
    return out


def mix_model(run: RunData, limits: ResourceLimits | None = None, *, level: float = 0.95) -> MixModel:
    """Fit every measured resource's per-class demands in ``run`` (see :mod:`capkit.analysis.fits.demands`)."""
    limits = limits or ResourceLimits()
    table = class_steps(run)
    classes = run_classes(table) if not table.empty else ()
    if not classes:
        raise ConfigError(f"run {run.run_id} has no clean step of a known request class "
                          f"({', '.join(REFERENCE_CLASSES)}): what-if needs a run of the reference scenarios")
    uncounted = [c for c in classes if table[f"n_{c}"].isna().all()]
    if uncounted:
        raise ConfigError(f"run {run.run_id} did not count its users per class ({', '.join(uncounted)}): "
                          f"runs of capkit with per-class meters (users_<class>) have them")
    if limits.cpu_cores == 1.0 and run.meta.spec.service_cores:
        limits = limits.model_copy(update={"cpu_cores": float(run.meta.spec.service_cores)})
    lim = {}
    for r in DEMAND_RESOURCES:
        value, size = limits.limit_for(r), f"{r}_size"
        if not math.isfinite(value) and size in table and table[size].notna().any():
            value = float(table[size].median())  # a pool's size as the service reported it
        lim[r] = value
    fits = {r: fit_demands(table, r, classes=classes, level=level) for r in DEMAND_RESOURCES if r in table}
    fits = {r: f for r, f in fits.items() if not (isinstance(f, NotMeasured) and not isinstance(f, NotIdentifiable)
                                                  and "no collector" in f.reason)}
    combined_table = table.copy()
    combined_table["X_all"] = sum(table[f"X_{c}"] for c in classes)
    combined_table["n_all"] = sum(table[f"n_{c}"] for c in classes)
    combined_table["ws_open"] = np.nan
    combined = {r: fit_demands(combined_table, r, classes=("all",), level=level) for r in fits}
    clean = table[table["clean"] & (table["users"] > 0)]
    totals = {c: float(clean[f"n_{c}"].sum()) for c in classes}
    run_mix = {c: v / sum(totals.values()) for c, v in totals.items()} if sum(totals.values()) > 0 else {}
    try:
        given = parse_mix(str(run.meta.spec.notes.get("mix") or ""))
    except ConfigError:
        given = {}
    base = ({c: given.get(c, 0.0) for c in classes} if given and set(given) >= set(classes)
            and sum(given.get(c, 0.0) for c in classes) > 0 else {c: round(100 * w, 1) for c, w in run_mix.items()})
    model = MixModel(run_id=run.run_id, classes=classes, fits=fits, combined=combined,
                     rates=_rates(table, classes, level), run_mix=run_mix, limits=lim, table=table, level=level,
                     base_mix=base)
    _closed_model(model)
    return model


def _closed_model(model: MixModel) -> None:
    """Fill the closed-model correction of ``model`` (see :meth:`MixModel.per_user_rates`) from its
    CPU fit: each class's delay outside the CPU, ``Z_c = (Σ n_c − Σ X_c R_c) / Σ X_c`` over the clean
    loaded steps, with each step's residences ``R`` solved from its measured throughputs (the
    same residence equations, linear in ``R`` once ``X`` is known)."""
    fit = model.fits.get("cpu_cores")
    if not isinstance(fit, DemandFit):
        fit = model.combined.get("cpu_cores")
    cores = model.limits.get("cpu_cores", math.nan)
    if not isinstance(fit, DemandFit) or not math.isfinite(cores) or "cpu_cores" not in model.table:
        return
    demand = {c: fit.demands[c].estimate if c in fit.demands else fit.demands["all"].estimate for c in model.classes}
    steps = model.table[model.table["clean"] & (model.table["users"] > 0)]
    delay = delays_from_steps(steps, {c: d / cores for c, d in demand.items()})
    if delay is None:
        return  # not a closed system this model describes: keep the measured rates
    model.cpu_demand, model.delay_s, model.cpu_base, model.cores = demand, delay, fit.baseline.estimate, cores
