"""The answer a report opens with: one or two sentences and the key numbers, each with its basis.

:func:`key_facts` is the ONE place the answer is built, for every page, ``index.html``,
``tables/answer.json`` and the history. Today it derives it from the per-replica limits (resource
fits and the p95 warning crossing), the scaling thresholds and the replica plan; when the result
carries a capacity answer of its own (``result.answer`` with ``.headline``), its headline is used.
"""

from __future__ import annotations

import html
import json
import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from capkit.analysis.formatting import users
from capkit.analysis.regression import ResourceFit
from capkit.schemas import RESOURCES, Interval, NotMeasured

# a number beyond the highest clean load is "projected" up to this factor, "extrapolated" beyond
PROJECTED_FACTOR = 1.25

__all__ = ["KeyNumber", "KeyFacts", "key_facts", "basis_of", "answer_md", "answer_html", "write_answer"]


@dataclass
class KeyNumber:
    """One number of the answer: ``value`` (text), what it is, and its basis."""

    label: str
    value: str
    note: str = ""
    basis: str | None = None  # measured | projected | extrapolated | not reached | None


@dataclass
class KeyFacts:
    """The answer: ``headline`` (Markdown, one or two sentences), the key numbers, and the same as
    plain JSON-safe values in ``data``."""

    headline: str
    numbers: list[KeyNumber]
    data: dict = field(default_factory=dict)


def basis_of(estimate: float, highest_clean: float) -> str:
    """``measured`` within the clean steps, ``projected`` up to 1.25× the highest clean load,
    ``extrapolated`` beyond, ``not reached`` when infinite."""
    if not math.isfinite(estimate):
        return "not reached"
    if estimate <= highest_clean:
        return "measured"
    return "projected" if estimate <= PROJECTED_FACTOR * highest_clean else "extrapolated"


def _limits(result) -> list[dict]:
    """Every per-replica limit with a finite capacity: label, estimate, planning bound."""
    out = []
    for resource, fit in result.resources.fits.items():
        if isinstance(fit, ResourceFit) and isinstance(fit.capacity, Interval) and math.isfinite(fit.capacity.low):
            label, unit = RESOURCES[resource]
            out.append({"limit": f"{label} ({fit.limit:g} {unit})", "short": f"{label} at {fit.limit:g} {unit}",
                        "estimate": fit.capacity.estimate, "low": fit.capacity.low, "high": fit.capacity.high})
    lat = result.latency
    if lat is not None:
        c = lat.crossing("warning")
        if math.isfinite(c.estimate) and math.isfinite(c.low):
            ms = lat.threshold_ms("warning")
            out.append({"limit": f"p95 latency ({ms:g} ms warning)", "short": f"p95 latency reaching {ms:g} ms",
                        "estimate": c.estimate, "low": c.low, "high": c.high})
    return out


def _scale_out(result):
    """The earliest warning threshold crossed: (Threshold, Interval) or None."""
    best = None
    for t in result.thresholds:
        if t.level == "warning" and isinstance(t.users, Interval) and math.isfinite(t.users.estimate):
            if best is None or t.users.estimate < best.users.estimate:
                best = t
    return best


def key_facts(result) -> KeyFacts:
    """The answer of a :class:`~capkit.analysis.result.CapacityResult` (see the module docstring)."""
    steps = result.resources.steps
    clean = steps[steps["clean"] & (steps["users"] > 0)]
    highest = float(clean["users"].max()) if len(clean) else 0.0
    limits = _limits(result)
    binding = min(limits, key=lambda r: r["low"]) if limits else None
    numbers, data = [], {"run_id": result.run_id, "highest_clean_users": highest}
    meta = result.run.meta
    data.update(created_at=meta.created_at, git_sha=meta.git_sha, target=meta.target, scenario=meta.scenario,
                status=str(meta.status))
    if binding is None:
        why = "no measured limit is reached within the data's support"
        first = (f"Capacity per replica is **not measured**: {why} (highest clean load {users(highest)} users). "
                 "Measure higher loads before planning with it.")
        numbers.append(KeyNumber("Capacity per replica", "not measured", why, "not reached"))
        data.update(capacity_users=None, capacity_low=None, capacity_basis="not reached", binding=None)
    else:
        basis = basis_of(binding["estimate"], highest)
        where = {"measured": f"measured: the run went up to {users(highest)} users",
                 "projected": f"projected a little beyond the {users(highest)} users measured",
                 "extrapolated": f"extrapolated {binding['estimate'] / max(highest, 1):.1f}× beyond the "
                                 f"{users(highest)} users measured; measure closer to it before relying on it"}[basis]
        first = (f"One replica carries about **{users(binding['estimate'])} concurrent users** "
                 f"(plan for {users(math.floor(binding['low']))}), limited by {binding['short']} — {where}.")
        numbers.append(KeyNumber("Capacity per replica", f"{users(binding['estimate'])} users",
                                 f"plan for {users(math.floor(binding['low']))}", basis))
        numbers.append(KeyNumber("Binding limit", binding["limit"]))
        data.update(capacity_users=binding["estimate"], capacity_low=binding["low"], capacity_high=binding["high"],
                    capacity_basis=basis, binding=binding["limit"])
    second = []
    t = _scale_out(result)
    if t is not None:
        b = basis_of(t.users.estimate, highest)
        second.append(f"Scale out at **{users(t.users.estimate)} users** per replica ({t.metric} reaches "
                      f"{t.value:g} {t.unit})")
        numbers.append(KeyNumber("Scale out at", f"{users(t.users.estimate)} users",
                                 f"{t.metric} {t.value:g} {t.unit}", b))
        data.update(scale_out_users=t.users.estimate, scale_out_metric=f"{t.metric} {t.value:g} {t.unit}",
                    scale_out_basis=b)
    else:
        numbers.append(KeyNumber("Scale out at", "not measured", "no warning threshold is crossed in the data",
                                 "not reached"))
        data.update(scale_out_users=None)
    plan = result.replicas
    target = users(plan.target_users)
    if isinstance(plan.replicas, NotMeasured):
        second.append(f"replicas for {target} users are unknown ({plan.replicas.reason})")
        numbers.append(KeyNumber(f"Replicas for {target} users", "not measured", plan.replicas.reason))
        data.update(replicas=None)
    elif math.isinf(plan.replicas):
        second.append(f"one replica cannot carry a single user within {plan.deciding}")
        numbers.append(KeyNumber(f"Replicas for {target} users", "not possible", str(plan.deciding)))
        data.update(replicas=None)
    else:
        second.append(f"**{target} users need {plan.replicas:.0f} replicas** (N+{plan.headroom})")
        numbers.append(KeyNumber(f"Replicas for {target} users", f"{plan.replicas:.0f}",
                                 f"N+{plan.headroom}, decided by {plan.deciding}"))
        data.update(replicas=plan.replicas)
    data.update(target_users=plan.target_users, headroom=plan.headroom)
    headline = first + " " + "; ".join(second) + "."
    answer = getattr(result, "answer", None)
    if answer is not None and getattr(answer, "headline", None):
        headline = str(answer.headline)  # the lead's capacity answer, once the analysis carries it
    data["headline"] = re.sub(r"\*\*(.+?)\*\*", r"\1", headline)
    return KeyFacts(headline=headline, numbers=numbers, data=data)


def answer_md(result) -> str:
    """The answer as Markdown: the sentences, then the key numbers as a list."""
    facts = key_facts(result)
    items = "\n".join(f"- **{n.label}:** {n.value}" + (f" ({n.note})" if n.note else "")
                      + (f" · *{n.basis}*" if n.basis else "") for n in facts.numbers)
    return f"{facts.headline}\n\n{items}"


def answer_html(result, *, facts: KeyFacts | None = None) -> str:
    """The answer as HTML: the sentences, then the key numbers in large type (``ck-answer``)."""
    from capkit.analysis.formatting import STYLE

    facts = facts or key_facts(result)
    text = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", html.escape(facts.headline))
    keys = "".join(
        f'<div class="ck-key"><div class="l">{html.escape(n.label)}</div><div class="v">{html.escape(n.value)}</div>'
        + (f'<div class="l">{html.escape(n.note)}</div>' if n.note else "")
        + (f'<div class="b ck-basis-{n.basis.replace(" ", "-")}">{html.escape(n.basis)}</div>' if n.basis else "")
        + "</div>" for n in facts.numbers)
    return f'{STYLE}<div class="ck-answer"><p>{text}</p><div class="ck-keys">{keys}</div></div>'


def write_answer(result, out_dir) -> list[Path]:
    """``answer.json`` (the key numbers) and ``answer.html`` (the fragment ``index.html`` embeds)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    facts = key_facts(result)
    clean = {k: (v if not isinstance(v, float) or math.isfinite(v) else None) for k, v in facts.data.items()}
    clean["numbers"] = [asdict(n) for n in facts.numbers]
    (out / "answer.json").write_text(json.dumps(clean, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (out / "answer.html").write_text(answer_html(result, facts=facts), encoding="utf-8")
    return [out / "answer.json", out / "answer.html"]
