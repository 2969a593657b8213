"""The answer a report opens with: one or two sentences and the key numbers, each with its basis.

:func:`key_facts` presents the result's one capacity answer (:mod:`capkit.analysis.answer.limits`) for
every page, ``index.html``, ``tables/answer.json`` and the history.
"""

from __future__ import annotations

import html
import json
import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from capkit.analysis.present.text import users
from capkit.schemas import Interval, NotMeasured

__all__ = ["KeyNumber", "KeyFacts", "key_facts", "answer_md", "answer_html", "write_answer"]


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


def _scale_out(result):
    """The earliest warning threshold crossed, measured or projected (a Threshold), or None."""
    best = None
    for t in result.thresholds:
        if t.severity == "warning" and isinstance(t.users, Interval) and math.isfinite(t.users.estimate) \
                and str(t.basis) in ("measured", "projected"):
            if best is None or t.users.estimate < best.users.estimate:
                best = t
    return best


def key_facts(result) -> KeyFacts:
    """The answer of a :class:`~capkit.analysis.answer.result.CapacityResult`: its one capacity answer
    (``result.answer``: users per replica and the binding limit, each with its basis), the first
    warning threshold, and the replica plan — the same numbers the tables show."""
    steps = result.resources.steps
    clean = steps[steps["clean"] & (steps["users"] > 0)]
    highest = float(clean["users"].max()) if len(clean) else 0.0
    answer = result.answer
    cap, bind = answer.capacity, answer.binding
    numbers, data = [], {"run_id": result.run_id, "highest_clean_users": highest}
    meta = result.run.meta
    data.update(created_at=meta.created_at, git_sha=meta.git_sha, target=meta.target, scenario=meta.scenario,
                status=str(meta.status), stop_reason=answer.stop_reason)
    usable = (cap is not None and isinstance(cap.users, Interval) and math.isfinite(cap.users.estimate)
              and str(cap.basis) in ("measured", "projected"))
    if not usable:
        why = (f"the nearest limit ({cap.metric}) is {cap.users_text()}" if cap is not None
               else "no limit was measured")
        numbers.append(KeyNumber("Capacity per replica", "not measured", why, str(cap.basis) if cap else None))
        data.update(capacity_users=None, capacity_low=None, capacity_basis=str(cap.basis) if cap else None,
                    binding=None)
    else:
        numbers.append(KeyNumber("Capacity per replica", f"{users(cap.users.estimate)} users",
                                 f"plan for {users(math.floor(cap.users.low))}; before {cap.describe()}",
                                 str(cap.basis)))
        data.update(capacity_users=cap.users.estimate, capacity_low=cap.users.low, capacity_high=cap.users.high,
                    capacity_basis=str(cap.basis), capacity_limit=cap.metric)
        if bind is not None and isinstance(bind.users, Interval) and math.isfinite(bind.users.estimate):
            numbers.append(KeyNumber("Binding limit", bind.metric,
                                     f"{bind.describe_value()} at {users(bind.users.estimate)} users", str(bind.basis)))
            data.update(binding=bind.metric, binding_users=bind.users.estimate, binding_basis=str(bind.basis))
    second = []
    t = _scale_out(result)
    if t is not None:
        second.append(f"Scale out at **{users(t.users.estimate)} users** per replica ({t.metric} reaches "
                      f"{t.describe_value()})")
        numbers.append(KeyNumber("Scale out at", f"{users(t.users.estimate)} users",
                                 f"{t.metric} {t.describe_value()}", str(t.basis)))
        data.update(scale_out_users=t.users.estimate, scale_out_metric=f"{t.metric} {t.describe_value()}",
                    scale_out_basis=str(t.basis))
    else:
        numbers.append(KeyNumber("Scale out at", "not measured", "no warning threshold is crossed near the data"))
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
    # the answer's own sentence, its key number in bold for the pages
    first = answer.sentence(strong=lambda text: f"**{text}**")
    headline = first + (" " + "; ".join(second) + "." if second else "")
    data["headline"] = _plain(headline)
    return KeyFacts(headline=headline, numbers=numbers, data=data)


def _plain(markdown: str) -> str:
    """``markdown`` without its bold marks (the sentences above use no other Markdown)."""
    return re.sub(r"\*\*(.+?)\*\*", r"\1", markdown)


def answer_md(result) -> str:
    """The answer as Markdown: the sentences, then the key numbers as a list."""
    facts = key_facts(result)
    items = "\n".join(f"- **{n.label}:** {n.value}" + (f" ({n.note})" if n.note else "")
                      + (f" · *{n.basis}*" if n.basis else "") for n in facts.numbers)
    return f"{facts.headline}\n\n{items}"


def answer_html(result, *, facts: KeyFacts | None = None) -> str:
    """The answer as HTML: the sentences, then the key numbers in large type (``ck-answer``)."""
    from capkit.analysis.present.text import STYLE

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
