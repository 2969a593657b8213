"""The capacity search: a coarse ramp until a stop rule is breached, then bisection around the answer.

A capacity number must come from measurements near it. Instead of walking a fixed grid far below
the knee, the search raises the load (×``growth`` per step) until a step breaches a stop rule —
p95 at the warning threshold, errors above the limit, CPU or memory at their critical share, the
throughput knee (the marginal req/s of an added user below ``knee_fraction`` of the initial
slope), or a saturated load generator (then it stops and says so) — and then narrows every
bracket it found (last good load, first bad load) until it is within ``precision`` of the load
or the time budget is spent. Concurrency pools (model slots, the DB pool) are limits whose
crossing is bracketed on the way: a full pool makes requests queue, it does not fail them.

The p95 crossing is not decided by two steps. A step's p95 is judged against the threshold by its
own interval (:func:`p95_verdict`): a step whose interval straddles it is measured again (once), and
the bracket counts only clear verdicts. Once the bracket is within :data:`COARSE`, the search spends
its steps near the crossing — at 0.88, 1 and 1.12 × the local fit's estimate
(:func:`~capkit.analysis.fits.crossing.local_crossing`), in rising order (a backlog drains into a
lighter step), repeating loads, so that the step-to-step offset is measured rather than assumed
away — until that estimate's range is within ``precision``;
then a confirmation step (:data:`CONFIRM_STEPS` × as long) at the estimate must agree with it (the
threshold inside the step's prediction interval), or the search goes on while its budget lasts.

The planner is pure: :meth:`SearchPlanner.decide` reads the steps measured so far and returns
the next :class:`~capkit.schemas.Stage` or a stop reason. The orchestrator calls it near the end
of every step; :func:`simulate_search` drives it with a synthetic service (tests).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from capkit.analysis.data.resources import resource_frame, step_resource_means
from capkit.analysis.data.steps import summarize_steps, with_settling
from capkit.analysis.fits.crossing import local_crossing
from capkit.errors import ConfigError
from capkit.schemas import DEFAULT_CRITERIA, Criteria, Stage, StagePlan

HARD = ("p95", "errors", "cpu", "memory", "knee", "generator")  # rules that end the ramp
KNEE_SPAN = 0.2  # the knee's marginal rate is read from a load at least this share lower
KNEE_FROM = 2.0  # the closed model's knee is judged from this multiple of the first counted load
# a step in which this share of requests failed means the service is down or wedged: the search ends
FAILED_SHARE = 0.9
SERVICE_FAILED = "the service failed"
POOLS = {"model_slots": "model slots", "db_pool": "DB pool"}  # in use / size, from the service's /metrics
FAR = 0.5  # a ramp step this far below every limit grows by growth^1.5 instead of growth
COARSE = 0.25  # the p95 bracket is bisected until this narrow; then steps near the crossing refine it
REFINE = (0.88, 1.0, 1.12)  # loads of the refining steps, as multiples of the crossing's estimate
CONFIRM_STEPS = 2  # the confirmation step lasts this many search steps


def p95_verdict(row, limit: float) -> str:
    """``above`` or ``below`` the p95 ``limit`` only when the step's interval (``p95_low_ms``,
    ``p95_high_ms``) clears it, ``unsure`` when it straddles it; a step without an interval is judged
    by its point value; ``unknown`` without a p95."""
    p95 = row.get("p95_ms", np.nan)
    if not np.isfinite(p95):
        return "unknown"
    low, high = row.get("p95_low_ms", np.nan), row.get("p95_high_ms", np.nan)
    if np.isfinite(low) and np.isfinite(high):
        return "above" if low >= limit else "below" if high < limit else "unsure"
    return "above" if p95 >= limit else "below"


@dataclass(frozen=True)
class SearchRules:
    """What the search looks for and how long it may take.

    Parameters
    ----------
    criteria : Criteria
        What breaches: a step's p95 at or above the warning threshold, failures / requests above
        the error limit (429s are not failures), CPU or memory at or above their critical share,
        a concurrency pool (model slots, DB pool) at or above its critical (full) share.
    knee_fraction : float
        The throughput knee: a step whose marginal req/s per added user is below this share of
        the initial slope (req/s per user of the first steps); judged from twice the first load
        with enough requests (at a few users a mix's classes are split by whole users).
    start, growth : float
        First load and the ramp's factor per step.
    precision : float
        A bracket is narrow when (bad − good) / bad ≤ this.
    step_s, warmup_s, idle_s : float
        Length of each step, the warm-up trimmed from it, the idle step first.
    budget_s : float
        Hard time budget of the whole search (idle step included).
    max_load : float
        The ramp never goes above this.
    rate : bool
        Open model: loads are arrival rates (requests/s) instead of users.
    """

    criteria: Criteria = DEFAULT_CRITERIA
    knee_fraction: float = 0.25
    start: float = 5.0
    growth: float = 1.6
    precision: float = 0.10
    step_s: float = 15.0
    warmup_s: float = 3.0
    idle_s: float = 10.0
    budget_s: float = 240.0
    max_load: float = 5000.0
    rate: bool = False
    min_requests: int = 30  # a step with fewer requests says nothing about its p95 (its max, in effect)

    def __post_init__(self):
        checks = [(0 < self.knee_fraction < 1, "knee_fraction must be between 0 and 1"),
                  (self.start >= 1 and self.growth > 1, "the ramp needs start ≥ 1 and growth > 1"),
                  (0 < self.precision < 1, "precision must be between 0 and 1"),
                  (self.step_s > self.warmup_s >= 0, "a step must be longer than its warm-up"),
                  (self.max_load > self.start, "max_load must be above the first load")]
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"search: {message}")
        if self.budget_s < self.idle_s + 2 * self.step_s:
            raise ConfigError(f"search: a budget of {self.budget_s:g} s is too short for the idle step and two "
                              f"steps of {self.step_s:g} s; give --budget ≥ {self.idle_s + 2 * self.step_s:g}s")

    def first_stages(self) -> StagePlan:
        """The idle step and the first load step (the rest is decided as the run goes)."""
        return StagePlan(stages=(Stage(users=0, seconds=self.idle_s), self.stage(self.start)), warmup_s=self.warmup_s)

    def stage(self, load: float) -> Stage:
        if self.rate:
            return Stage(users=max(10, math.ceil(2 * load)), seconds=self.step_s, rate=round(load, 2))
        return Stage(users=int(round(load)), seconds=self.step_s)


def parse_budget(text: str) -> float:
    """``4m``, ``90s``, ``1h`` or a number of seconds → seconds; ConfigError otherwise."""
    value = (text or "").strip().lower()
    scale = {"s": 1, "m": 60, "h": 3600}.get(value[-1:], None)
    number = value[:-1] if scale else value
    try:
        seconds = float(number) * (scale or 1)
    except ValueError:
        seconds = -1.0
    if not math.isfinite(seconds) or seconds <= 0:
        raise ConfigError(f"--budget {text!r} is not a duration (examples: --budget 4m, --budget 180s)")
    return seconds


@dataclass
class SearchPlanner:
    """Decides each next load of a search from the steps measured so far (see the module docstring).

    ``limits`` gives the CPU cores and memory the critical shares apply to.
    """

    rules: SearchRules
    cpu_limit: float = 1.0
    memory_limit_mib: float = 1024.0
    custom_limits: dict = field(default_factory=dict)  # a target's own series (--limit): soft limits too
    started: float | None = None
    stop_reason: str | None = None
    brackets: dict = field(default_factory=dict)  # rule -> [good load, bad load]
    history: list = field(default_factory=list)  # (load, breaches) per measured step
    initial_slope: float | None = None
    notes: list = field(default_factory=list)  # what the search did beyond the rules' verdicts, and why
    confirmed: bool | None = None  # None: no confirmation step yet
    _confirm_step: int | None = None

    @property
    def phase(self) -> str:
        """``ramp`` until some measured step breaches a rule that ends it, then ``narrow``."""
        return "narrow" if any(rule in HARD for rule in self.brackets) else "ramp"

    @property
    def budget_s(self) -> float:
        return self.rules.budget_s

    @property
    def lead_s(self) -> float:
        """Decide this long before the step ends, so the next step starts on time."""
        return 1.5

    @property
    def steps_hint(self) -> int:
        return int((self.rules.budget_s - self.rules.idle_s) // self.rules.step_s) + 1

    # -- reading what was measured --------------------------------------------------------------
    def summaries(self, steps: list[dict], requests: list[dict], samples: list[dict], now: float) -> pd.DataFrame:
        """Step summaries of the measured steps; the running one ends ``now``."""
        frame = pd.DataFrame(steps)
        if frame.empty:
            return frame
        req = pd.DataFrame(requests) if requests else _empty_requests()
        # the running step ends with the last second whose requests are in: rows arrive a second or
        # so late, and counting the seconds still on their way would understate its throughput
        last = (req.groupby("step")["ts"].max() + 1) if not req.empty else pd.Series(dtype=float)
        running = frame["ended_at"].isna()
        frame.loc[running, "ended_at"] = [min(now, float(last.get(step, now))) for step in frame.loc[running, "step"]]
        frame["complete"] = True
        frame = with_settling(frame, req, self.rules.warmup_s)
        smp = pd.DataFrame(samples) if samples else pd.DataFrame(columns=["ts", "source", "metric", "value"])
        summary = summarize_steps(frame, req, smp, warmup_s=self.rules.warmup_s,
                                  max_error_rate=self.rules.criteria.max_error_rate)
        per_second = resource_frame(smp, frame, self.rules.warmup_s)
        extra = step_resource_means(per_second)
        for column in extra.columns.difference(summary.columns):
            summary[column] = summary["step"].map(extra[column])  # pools in use and their sizes too
        return summary

    def load_of(self, row) -> float:
        return float(row["rate"]) if self.rules.rate else float(row["users"])

    def breaches(self, row, first_rows: pd.DataFrame) -> dict[str, float]:
        """Rule → how far past its limit the step is (value / limit), for each rule it breaches."""
        r, out = self.rules, {}
        if "generator_saturated" in str(row.get("flags", "")):
            out["generator"] = 1.0
        enough = row.get("requests", 0) >= r.min_requests
        c = r.criteria
        cpu, memory, pool_share = c.cpu_shares[1] * self.cpu_limit, c.memory_shares[1] * self.memory_limit_mib, \
            c.pool_shares[1]
        verdict = p95_verdict(row, c.p95_warning_ms)
        # an unsure step above by its point value counts (the ramp must end near the crossing); the
        # bracket of the p95 rule is then made of clear verdicts only (:meth:`_update_brackets`)
        if enough and (verdict == "above" or (verdict == "unsure" and row["p95_ms"] >= c.p95_warning_ms)):
            out["p95"] = row["p95_ms"] / c.p95_warning_ms
        if enough and row.get("error_rate", 0) > c.max_error_rate:
            out["errors"] = row["error_rate"] / c.max_error_rate
        if np.isfinite(row.get("cpu_cores", np.nan)) and row["cpu_cores"] >= cpu:
            out["cpu"] = row["cpu_cores"] / cpu
        if np.isfinite(row.get("rss_mib", np.nan)) and row["rss_mib"] >= memory:
            out["memory"] = row["rss_mib"] / memory
        sizes = {pool: row.get(f"{pool}_size", np.nan) for pool in POOLS} | self.custom_limits
        for pool, size in sizes.items():
            used = row.get(pool, np.nan)
            if np.isfinite(used) and np.isfinite(size) and size > 0 and used >= pool_share * size:
                out[pool] = used / (pool_share * size)
        if self.rules.rate:
            if not row.get("rate_reached", True):
                out["knee"] = 1.0  # the open model's overload: the service no longer keeps up
        elif self.initial_slope and len(first_rows) and enough:  # a few requests' rate is noise
            counted = first_rows[first_rows["requests"] >= r.min_requests]
            # the marginal rate over a span of at least KNEE_SPAN: between the close loads of the
            # refining steps, 2 % noise in req/s reads as a knee
            lower = counted[counted["users"] <= row["users"] * (1 - KNEE_SPAN)]
            # only from twice the first counted load: a mix of user classes is split by whole users,
            # so at a few users the share of each class (and the req/s a user makes) moves from step
            # to step, which reads as a knee (benchmarks/README.md, "Measurements behind the models")
            if len(lower) and row["users"] >= KNEE_FROM * counted["users"].min():
                prev = lower.iloc[-1]
                marginal = (row["rps"] - prev["rps"]) / max(row["users"] - prev["users"], 1e-9)
                if marginal < r.knee_fraction * self.initial_slope:
                    out["knee"] = 1.0
        return out

    def nearest_share(self, row) -> float:
        """How close the step is to its nearest limit: the largest of p95 / warning, CPU and memory
        over their critical shares and each pool's in-use over its critical share (0 when none)."""
        c = self.rules.criteria
        pairs = [(row.get("p95_ms", np.nan), c.p95_warning_ms), (row.get("cpu_cores", np.nan),
                  c.cpu_shares[1] * self.cpu_limit), (row.get("rss_mib", np.nan),
                  c.memory_shares[1] * self.memory_limit_mib)]
        sizes = {pool: row.get(f"{pool}_size", np.nan) for pool in POOLS} | self.custom_limits
        pairs += [(row.get(pool, np.nan), c.pool_shares[1] * size) for pool, size in sizes.items()]
        shares = [v / lim for v, lim in pairs if np.isfinite(v) and np.isfinite(lim) and lim > 0]
        return max(shares, default=0.0)

    # -- deciding ---------------------------------------------------------------------------------
    def decide(self, steps: list[dict], requests: list[dict], samples: list[dict], now: float) -> Stage | str:
        """The next stage, or why the search stops (str), from the raw rows measured so far."""
        if self.started is None:
            self.started = min(s["started_at"] for s in steps)
        return self.decide_from(self.summaries(steps, requests, samples, now), now)

    def decide_from(self, summary: pd.DataFrame, now: float) -> Stage | str:
        """:meth:`decide` on step summaries (one row per step, as :func:`summarize_steps` makes)."""
        if self.started is None:
            self.started = float(summary["started_at"].min()) if "started_at" in summary else 0.0
        loaded = summary[summary["users"] > 0].copy()
        if loaded.empty:
            return self._stop("no step with load was measured")
        loaded["load"] = [self.load_of(row) for _, row in loaded.iterrows()]
        usable = loaded[loaded["requests"] > 0].sort_values("load")
        # req/s per user of the lowest load with enough requests to tell (until there is one: none)
        counted = usable[usable["requests"] >= self.rules.min_requests]
        if len(counted):
            first = counted.iloc[0]
            self.initial_slope = first["rps"] / first["load"] if first["load"] > 0 else None
        latest = loaded.iloc[-1]
        hits = self.breaches(latest, usable)
        self.history.append((float(latest["load"]), sorted(hits)))
        self._update_brackets(usable)
        if latest["requests"] >= self.rules.min_requests and latest.get("error_rate", 0) >= FAILED_SHARE:
            # down or wedged: more loads would measure its failure, not its capacity
            return self.failed(float(latest["load"]), f"{100 * latest['error_rate']:.0f} % of its requests failed")
        if "generator" in hits:
            return self._stop(f"the load generator saturated at {latest['load']:g} "
                              f"{'req/s' if self.rules.rate else 'users'}: its numbers measure the generator, "
                              f"not the service — add load processes (--processes N)")
        elapsed = now - self.started
        judged = self._judge_confirmation(latest, usable)  # also when the budget ends with it
        if judged is not None:
            return judged
        if elapsed + self.rules.step_s > self.rules.budget_s:
            return self._stop(f"the time budget ({self.rules.budget_s:g} s) is spent"
                              + ("; the confirmation step did not agree" if self.confirmed is False else ""))
        # the ramp goes on until some measured step breaches a rule that ends it (the brackets are
        # re-read every time: a step judged early on part of its data may look different once all is in)
        if self.phase == "ramp":  # one step above the highest load measured so far
            top = float(usable["load"].max()) if len(usable) else float(latest["load"])
            growth = self.rules.growth
            if len(usable) and self.nearest_share(usable.loc[usable["load"].idxmax()]) < FAR:
                growth = growth ** 1.5  # every limit far off: the budget is better spent near the answer
            nxt = min(math.ceil(top * growth), self.rules.max_load)
            if nxt <= top:
                return self._stop(f"the ramp reached its maximum load ({self.rules.max_load:g}) without a breach")
            return self.rules.stage(nxt)
        if self._repeat_unsure(latest, usable):
            return self.rules.stage(float(latest["load"]))
        target = self._widest()
        if target is not None:
            return self.rules.stage(self._next_inside(target, usable))
        if "p95" in self.brackets:
            return self._refine(latest, usable, elapsed)
        return self._stop(self._converged())

    # -- the p95 crossing: repeats, local fit, confirmation --------------------------------------
    def _unit(self) -> str:
        return "req/s" if self.rules.rate else "users"

    def _repeat_unsure(self, latest, usable: pd.DataFrame) -> bool:
        """Whether the step just measured, while the p95 bracket is still wide, straddles the
        threshold by its interval and was measured once: then it is measured again (and noted)."""
        limit = self.rules.criteria.p95_warning_ms
        good, bad = self.brackets.get("p95", (0.0, 0.0))
        if bad <= 0 or (bad - good) / bad <= COARSE or p95_verdict(latest, limit) != "unsure":
            return False
        if (usable["load"] == latest["load"]).sum() > 1 or latest["requests"] < self.rules.min_requests:
            return False
        self.notes.append(f"{latest['load']:g} {self._unit()}: p95 {latest['p95_ms']:.0f} ms "
                          f"({latest['p95_low_ms']:.0f}–{latest['p95_high_ms']:.0f}) straddles {limit:g} ms — "
                          f"measured again")
        return True

    def crossing(self, usable: pd.DataFrame):
        """The p95 crossing from the local fit over the steps with enough requests (or None)."""
        rows = usable[usable["requests"] >= self.rules.min_requests]
        if "p95_low_ms" not in rows:
            rows = rows.assign(p95_low_ms=np.nan, p95_high_ms=np.nan)
        return local_crossing(rows["load"], rows["p95_ms"], self.rules.criteria.p95_warning_ms,
                              lows=rows["p95_low_ms"], highs=rows["p95_high_ms"], order=rows["step"],
                              level=self.rules.criteria.level)

    def _refine(self, latest, usable: pd.DataFrame, elapsed: float) -> Stage | str:
        """Steps near the p95 crossing until its range is within ``precision``, then a longer
        confirmation step at the estimate; the search ends when it agrees (or the budget does)."""
        r = self.rules
        cross = self.crossing(usable)
        if cross is None:
            return self._stop(self._converged())
        est = cross.estimate
        confirm_s = CONFIRM_STEPS * r.step_s
        remaining = r.budget_s - elapsed
        width = (cross.interval.high - cross.interval.low) / 2 / est if est > 0 else math.inf
        precise = cross.method == "local fit" and width <= r.precision
        if (precise or remaining < r.step_s + confirm_s) and remaining >= confirm_s:
            self._confirm_step = int(latest["step"]) + 1
            return self._stage_for(est, seconds=confirm_s)
        return self._stage_for(self._refine_load(est, usable))

    def _judge_confirmation(self, latest, usable: pd.DataFrame) -> str | None:
        """When ``latest`` is the confirmation step: whether it agrees with the estimate (then the
        search stops, confirmed) or not (noted; the search goes on while its budget lasts)."""
        if self._confirm_step is None or int(latest["step"]) != self._confirm_step:
            return None
        self._confirm_step = None
        cross = self.crossing(usable)
        if cross is None:
            return None
        limit, unit, est = self.rules.criteria.p95_warning_ms, self._unit(), cross.estimate
        self.confirmed = bool(self._agrees(latest, cross.tau if math.isfinite(cross.tau) else 0.0))
        low, high = latest.get("p95_low_ms", np.nan), latest.get("p95_high_ms", np.nan)
        seen = (f"a {CONFIRM_STEPS * self.rules.step_s:g}-s step at {latest['load']:g} {unit} read p95 "
                f"{latest['p95_ms']:.0f} ms" + (f" ({low:.0f}–{high:.0f})" if np.isfinite(low) and np.isfinite(high)
                                                 else ""))
        if self.confirmed:
            return self._stop(f"confirmed: p95 reaches {limit:g} ms at {est:.0f} {unit} "
                              f"({cross.interval.low:.0f}–{cross.interval.high:.0f}); {seen}")
        self.notes.append(f"the confirmation did not agree with {est:.0f} {unit}: {seen}; the search goes on")
        return None

    def _agrees(self, row, tau: float) -> bool:
        """The threshold lies inside the confirmation step's interval widened by the step offset τ."""
        limit = self.rules.criteria.p95_warning_ms
        low, high = row.get("p95_low_ms", np.nan), row.get("p95_high_ms", np.nan)
        if not (np.isfinite(low) and np.isfinite(high)):
            low = high = row["p95_ms"]
        z = float(stats.norm.ppf(0.5 + self.rules.criteria.level / 2))
        return low * math.exp(-z * tau) <= limit <= high * math.exp(z * tau)

    def _refine_load(self, est: float, usable: pd.DataFrame) -> float:
        """The multiple of ``est`` in :data:`REFINE` measured least so far (within ±4 %)."""
        loads = usable["load"].to_numpy(float)
        counts = [int(np.sum(np.abs(loads / (est * m) - 1) <= 0.04)) for m in REFINE]
        return est * REFINE[int(np.argmin(counts))]

    def _stage_for(self, load: float, seconds: float | None = None) -> Stage:
        load = min(max(load, 1.0), self.rules.max_load)
        stage = self.rules.stage(round(load, 2) if self.rules.rate else float(max(round(load), 1)))
        return stage if seconds is None else stage.model_copy(update={"seconds": seconds})

    def _update_brackets(self, usable: pd.DataFrame) -> None:
        """For every rule some step breached: the highest good load below its first bad load (p95:
        judged per load on all its steps, good only where the interval clears the threshold)."""
        limit = self.rules.criteria.p95_warning_ms
        rows = [(float(r["load"]), self.breaches(r, usable)) for _, r in usable.iterrows()]
        rules = {rule for _, hits in rows for rule in hits if rule != "generator"}
        self.brackets = {}
        rules.discard("p95")
        p95 = self._p95_by_load(usable)  # a load measured more than once is judged on all its steps
        if len(p95) and (p95["verdict"] != "below").any():
            bad_rows = p95[(p95["verdict"] == "above") | ((p95["verdict"] == "unsure") & (p95["p95_ms"] >= limit))]
            if len(bad_rows):
                bad = float(bad_rows.index.min())
                good = p95[(p95.index < bad) & (p95["verdict"] == "below")]
                self.brackets["p95"] = [float(good.index.max()) if len(good) else 0.0, bad]
        for rule in rules:
            bad = min(load for load, hits in rows if rule in hits)
            good = [load for load, hits in rows if rule not in hits and load < bad]
            self.brackets[rule] = [max(good) if good else 0.0, bad]

    def _p95_by_load(self, usable: pd.DataFrame) -> pd.DataFrame:
        """Per load with enough requests: the p95 (geometric mean of its steps), its interval (their
        combined sd) and its :func:`p95_verdict`."""
        ok = ((usable["requests"] >= self.rules.min_requests) & np.isfinite(usable["p95_ms"])
              & (usable["p95_ms"] > 0)).to_numpy()
        load = usable["load"].to_numpy(float)[ok]
        log = np.log(usable["p95_ms"].to_numpy(float)[ok])
        nan = np.full(len(usable), np.nan)
        low = (usable["p95_low_ms"].to_numpy(float) if "p95_low_ms" in usable else nan)[ok]
        high = (usable["p95_high_ms"].to_numpy(float) if "p95_high_ms" in usable else nan)[ok]
        z = float(stats.norm.ppf(0.5 + self.rules.criteria.level / 2))
        with np.errstate(divide="ignore", invalid="ignore"):
            var = ((np.log(high) - np.log(low)) / (2 * z)) ** 2
        loads = np.unique(load)
        mean = np.array([log[load == x].mean() for x in loads])
        sd = np.array([math.sqrt(var[load == x].sum()) / (load == x).sum() for x in loads])
        limit = math.log(self.rules.criteria.p95_warning_ms)
        verdict = np.where(~np.isfinite(sd), np.where(mean >= limit, "above", "below"),
                           np.where(mean - z * sd >= limit, "above", np.where(mean + z * sd < limit, "below",
                                                                               "unsure")))
        return pd.DataFrame({"p95_ms": np.exp(mean), "verdict": verdict}, index=pd.Index(loads, name="load"))

    def _widest(self) -> str | None:
        """The bracket to narrow next: p95 first, then the others, widest relative width first."""
        open_ = {rule: (bad - good) / bad for rule, (good, bad) in self.brackets.items()
                 if bad > 0 and (bad - good) / bad > (COARSE if rule == "p95" else self.rules.precision)
                 and bad - good > 1.0}
        if not open_:
            return None
        if "p95" in open_:
            return "p95"
        return max(open_, key=open_.get)

    def _next_inside(self, rule: str, usable: pd.DataFrame) -> float:
        """A load inside the bracket: interpolated on the rule's metric, kept off the ends."""
        good, bad = self.brackets[rule]
        width = bad - good
        guess = good + width / 2
        c = self.rules.criteria
        metric = {"p95": ("p95_ms", c.p95_warning_ms), "cpu": ("cpu_cores", c.cpu_shares[1] * self.cpu_limit),
                  "memory": ("rss_mib", c.memory_shares[1] * self.memory_limit_mib)}.get(rule)
        if metric is not None:
            col, limit = metric
            at = usable.groupby("load")[col].mean()  # a load measured twice: the mean of its steps
            lo, hi = at.get(good), at.get(bad)
            if lo is not None and hi is not None and np.isfinite(lo) and np.isfinite(hi) and hi > lo:
                guess = good + (limit - lo) / (hi - lo) * width
        guess = min(max(guess, good + 0.25 * width), bad - 0.25 * width)
        load = round(guess, 2) if self.rules.rate else float(max(round(guess), good + 1))
        if (np.abs(usable["load"].to_numpy(float) - load) < 1e-9).sum() >= 2:  # measured twice: halfway up
            load = round((load + bad) / 2, 2) if self.rules.rate else float(round((load + bad) / 2))
        return load

    def _converged(self) -> str:
        if not self.brackets:
            return "no stop rule was breached"
        parts = [f"{rule} between {good:g} and {bad:g}" for rule, (good, bad) in sorted(self.brackets.items())]
        return "every bracket is narrow: " + "; ".join(parts)

    def failed(self, load: float, why: str) -> str:
        """End the search on the service's failure at ``load`` (it exited, or failed nearly every
        request): that load is the finding."""
        return self._stop(f"{SERVICE_FAILED} at {load:g} {'req/s' if self.rules.rate else 'users'}: {why}")

    def _stop(self, reason: str) -> str:
        self.stop_reason = reason
        return reason

    def outcome(self) -> dict:
        """What the search did, stored with the run (``search.json`` and an event)."""
        return {"stop_reason": self.stop_reason or "the run ended before the search decided",
                "brackets": {k: list(v) for k, v in self.brackets.items()},
                "loads": [load for load, _ in self.history],
                "breaches": [hits for _, hits in self.history],
                "notes": list(self.notes), "confirmed": self.confirmed,
                "rules": {k: getattr(self.rules, k) for k in self.rules.__dataclass_fields__ if k != "criteria"},
                "criteria": self.rules.criteria.model_dump(mode="json")}


def _empty_requests() -> pd.DataFrame:
    return pd.DataFrame(columns=["ts", "step", "users", "method", "name", "count", "failures", "rate_limited",
                                 "latency_sum_ms", "bytes", "hdr"])


def simulate_search(planner: SearchPlanner, service, *, seed: int = 0) -> pd.DataFrame:
    """Drive ``planner`` against a synthetic ``service`` (no Locust): ``service(load, rng)`` returns
    one step's measurements (``rps``, ``p95_ms``, ``cpu_cores``, ``model_slots``…). Returns the steps."""
    rng = np.random.default_rng(seed)
    rules = planner.rules
    stages = list(rules.first_stages().stages)
    t, rows = 0.0, []
    for i in range(10_000):
        stage = stages[i]
        row = {"step": i, "users": stage.users, "rate": stage.rate if stage.rate is not None else np.nan,
               "started_at": t, "planned_s": stage.seconds, "flags": "", "error_rate": 0.0, "rate_reached": True,
               "requests": 0, "rps": 0.0, "p95_ms": np.nan}
        if stage.users:
            row.update(service(stage.rate if rules.rate else stage.users, rng))
            row["requests"] = int(row["rps"] * (stage.seconds - rules.warmup_s))
        rows.append(row)
        t += stage.seconds
        if i == len(stages) - 1:
            decision = planner.decide_from(pd.DataFrame(rows), t)
            if isinstance(decision, str):
                break
            stages.append(decision)
    return pd.DataFrame(rows)
