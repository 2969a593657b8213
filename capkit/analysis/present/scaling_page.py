"""A scaling plan in words, as a table and as a figure (``capkit scale`` and the "Scaling plan" page)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from capkit.analysis.answer.autoscale import Replay
from capkit.analysis.present.figstyle import report_figure
from capkit.analysis.present.text import number, percent
from capkit.schemas import Interval, NotMeasured

KIND_TEXT = {"cpu": "CPU utilization", "memory": "memory utilization"}


def _hours(h: float) -> str:
    return f"{number(h, 3)} replica-hours"


def _cost(replay: Replay) -> str:
    return "" if replay.cost is None else f", cost {number(replay.cost, 4)}"


def replay_text(replay: Replay | NotMeasured, warning_ms: float, critical_ms: float) -> str:
    if isinstance(replay, NotMeasured):
        return str(replay)
    return (f"{replay.name}: {number(replay.minutes_over_warning, 3)} min with p95 over {warning_ms:,.0f} ms, "
            f"{number(replay.minutes_over_critical, 3)} min over {critical_ms:,.0f} ms, "
            f"{_hours(replay.replica_hours)}{_cost(replay)}, at most {replay.peak_replicas} replicas")


def _probability(risk) -> str:
    """The breach probability with its sampling error; none in n draws is "below 3/n" (the rule of three)."""
    if risk.breach_probability == 0:
        return f"below {percent(3 / risk.draws, 2)} (no breach in any draw"
    return f"{percent(risk.breach_probability)} (± {percent(risk.standard_error)}"


def _span(pct) -> str:
    return str(pct[0]) if pct[0] == pct[2] else f"{pct[0]}–{pct[2]}"


def policy_text(plan) -> str:
    policy, signal = plan.policy, plan.policy.signal
    if signal.kind in KIND_TEXT:
        target = f"{KIND_TEXT[signal.kind]} at {policy.target_value:.0f} % of the pod's request"
    else:
        target = f"{signal.metric} at {number(policy.target_value, 3)} per pod on average"
    t = policy.timing
    return (f"HorizontalPodAutoscaler on {target} — each replica aimed at {policy.target_users:,.0f} users "
            f"({policy.target_why}), "
            f"{policy.min_replicas}–{policy.max_replicas} replicas; sync every {t.sync_s:g} s, a new pod ready "
            f"after {t.pod_start_s:g} s, scale-down window {t.stabilization_s:g} s, tolerance {t.tolerance:g}")


def fleet_text(plan) -> list[str]:
    from capkit.analysis.answer.replicas import MITIGATION

    lines = [c.describe() for c in plan.fleet]
    binds = plan.database_binds
    if binds is not None:
        lines.append(f"the database binds ({binds.describe()}): more replicas do not help — {MITIGATION}")
    cap = plan.fleet_max_replicas
    if binds is None and isinstance(cap, int) and cap < plan.policy.max_replicas:
        lines.append(f"the database's connections allow at most {plan.fleet_max_replicas} replicas at the peak, "
                     f"fewer than the policy's maximum {plan.policy.max_replicas}: {MITIGATION}")
    return lines


def scaling_lines(plan) -> list[str]:
    """The plan as the terminal prints it: one fact a line."""
    cap, risk = plan.capacity, plan.risk
    rng = f"{cap.users.low:,.0f}–{cap.users.high:,.0f}" if isinstance(cap.users, Interval) else "–"
    lines = [
        f"Scaling plan for run {plan.run_id}: {plan.traffic.source}; peak {plan.peak_users:,.0f} users.",
        f"One replica carries {plan.users_per_replica} users at its planning bound (the low end of "
        f"{cap.users.estimate:,.0f}, {rng}, before {cap.describe()}, {cap.basis}); headroom N+{plan.headroom}.",
        f"Static plan: {plan.replicas_at_peak} replicas at the peak (⌈{plan.peak_users:,.0f} / "
        f"{plan.users_per_replica}⌉ + {plan.headroom}); a risk of at most {percent(risk.risk, 0)} of p95 over "
        f"{plan.warning_ms:,.0f} ms at the peak needs {risk.replicas_for_risk}.",
        f"Scale on {plan.policy.signal.metric}: {plan.policy.signal.why}.",
        f"Policy: {policy_text(plan)}.",
        f"Replayed over the day — {replay_text(plan.replay, plan.warning_ms, plan.critical_ms)}; "
        f"{replay_text(plan.static, plan.warning_ms, plan.critical_ms)}.",
        f"At the peak the policy puts p95 over {plan.warning_ms:,.0f} ms with probability "
        f"{_probability(risk)}, {risk.draws:,} draws over the capacity's range and the per-user cost; the HPA "
        f"holds {_span(risk.policy_replicas)} replicas "
        f"there); the static plan's {plan.replicas_at_peak}: {percent(risk.static_breach_probability, 2)}.",
    ]
    lines += [f"Database: {text}." for text in fleet_text(plan)]
    return lines


def scaling_md(plan) -> str:
    """The plan's facts as a Markdown list (the page's opening)."""
    return "\n".join(f"- {line}" for line in scaling_lines(plan))


def scaling_facts(plan) -> tuple[str, list]:
    """The plan's answer: a sentence (Markdown bold) and its key numbers
    (:class:`~capkit.analysis.present.headline.KeyNumber`)."""
    from capkit.analysis.present.headline import KeyNumber

    signal, policy, risk = plan.policy.signal, plan.policy, plan.risk
    auto, static = plan.replay, plan.static
    text = (f"**Scale on {signal.metric}**: {signal.short}. For {plan.traffic.source} (peak "
            f"{plan.peak_users:,.0f} users) the autoscaler runs **{policy.min_replicas}–{policy.max_replicas} "
            f"replicas**")
    if not isinstance(auto, NotMeasured):
        text += (f": {number(auto.replica_hours, 3)} replica-hours a day against {number(static.replica_hours, 3)} "
                 f"for {plan.replicas_at_peak} replicas all day, with {number(auto.minutes_over_warning, 2)} minutes "
                 f"of p95 over {plan.warning_ms:,.0f} ms (static: {number(static.minutes_over_warning, 2)})")
    numbers = [
        KeyNumber("users per replica (planning)", f"{plan.users_per_replica}", str(plan.capacity.basis)),
        KeyNumber(f"replicas at the peak (N+{plan.headroom})", str(plan.replicas_at_peak), "static plan"),
        KeyNumber(f"replicas for ≤ {percent(risk.risk, 0)} risk", str(risk.replicas_for_risk), "at the peak"),
        KeyNumber("breach at the peak", _probability(risk).split(" (")[0], "autoscaled"),
    ]
    if not isinstance(auto, NotMeasured):
        numbers += [KeyNumber("replica-hours a day", number(auto.replica_hours, 3),
                              f"static {number(static.replica_hours, 3)}"),
                    KeyNumber(f"minutes p95 > {plan.warning_ms:,.0f} ms", number(auto.minutes_over_warning, 2),
                              f"static {number(static.minutes_over_warning, 2)}")]
    return text + ".", numbers


def scaling_html(plan) -> str:
    """The plan's answer in the report's answer box (``ck-answer``)."""
    import html
    import re

    from capkit.analysis.present.text import STYLE

    text, numbers = scaling_facts(plan)
    text = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", html.escape(text))
    keys = "".join(f'<div class="ck-key"><div class="l">{html.escape(n.label)}</div><div class="v">'
                   f'{html.escape(n.value)}</div><div class="l">{html.escape(n.note)}</div></div>' for n in numbers)
    return f'{STYLE}<div class="ck-answer"><p>{text}</p><div class="ck-keys">{keys}</div></div>'


def comparison_table(plan) -> pd.DataFrame:
    """Policy against the static plan: minutes over each threshold, replica-hours, cost, peak replicas."""
    rows = []
    for replay in (plan.replay, plan.static):
        if isinstance(replay, NotMeasured):
            continue
        rows.append({"Plan": replay.name,
                     f"Minutes p95 > {plan.warning_ms:,.0f} ms": number(replay.minutes_over_warning, 3),
                     f"Minutes p95 > {plan.critical_ms:,.0f} ms": number(replay.minutes_over_critical, 3),
                     "Replica-hours": number(replay.replica_hours, 3),
                     "Cost": "–" if replay.cost is None else number(replay.cost, 4),
                     "Most replicas": replay.peak_replicas})
    return pd.DataFrame(rows)


def policy_table(plan) -> pd.DataFrame:
    """What the manifests say, and where each number comes from."""
    policy, pod, signal = plan.policy, plan.pod, plan.policy.signal
    request = lambda v, unit: str(v) if isinstance(v, NotMeasured) else f"{number(v, 3)} {unit}"  # noqa: E731
    target = (f"{policy.target_value:.0f} % of the CPU request" if signal.kind == "cpu" else
              f"{policy.target_value:.0f} % of the memory request" if signal.kind == "memory" else
              f"{number(policy.target_value, 3)} per pod (average)")
    rows = [("Scale on", signal.metric, signal.why),
            ("Target", target, f"one replica at {policy.target_users:,.0f} users: {policy.target_why}"),
            ("Replicas", f"{policy.min_replicas}–{policy.max_replicas}",
             f"min: 1 + headroom {plan.headroom}; max: the most of the static plan's {plan.replicas_at_peak}, the "
             f"{plan.risk.replicas_for_risk} a {percent(plan.risk.risk, 0)} risk needs, and the peak at the target "
             f"+ {plan.headroom}"),
            ("CPU request", request(pod.cpu_request, "cores"),
             "idle + per-user CPU at the planned users (the mean's upper confidence bound, at most the limit)"),
            ("Memory request", request(pod.memory_request, "MiB"),
             "idle + per-user memory at the planned users (the mean's upper confidence bound, at most the limit)"),
            ("Limits", f"{number(pod.cpu_limit, 3)} cores, {number(pod.memory_limit, 4)} MiB",
             "what one replica was measured against")]
    return pd.DataFrame(rows, columns=["", "Value", "From"])


@report_figure(vgap=0.6)
def plot_scaling(plan):
    """Three panels over the day: traffic; replicas (static rule, static plan, autoscaled); each replica's p95."""
    import matplotlib.pyplot as plt

    fig, (ax_u, ax_r, ax_p) = plt.subplots(3, 1, figsize=(9, 8.5), sharex=True)
    t_h = np.append(plan.traffic.t_s, plan.traffic.end_s) / 3600
    ax_u.stairs(plan.traffic.users, t_h, color="tab:blue", lw=1.5, label="concurrent users", baseline=None)
    ax_u.set_ylabel("users")
    ax_u.set_ylim(bottom=0)
    ax_u.set_title(f"Traffic: {plan.traffic.source}")
    ax_r.stairs(plan.over_time["replicas"], t_h, color="tab:gray", lw=1, ls="--",
                label=f"needed: ⌈users / {plan.users_per_replica}⌉ + {plan.headroom}", baseline=None)
    ax_r.axhline(plan.replicas_at_peak, color="tab:red", lw=1, label=f"static plan ({plan.replicas_at_peak})")
    for replay in (plan.replay, plan.static):
        if isinstance(replay, NotMeasured):
            continue
        tl = replay.timeline
        edges = np.append(tl["t_s"], tl["t_s"].iloc[-1] + tl["duration_s"].iloc[-1]) / 3600
        if replay is plan.replay:
            ax_r.stairs(tl["ready"], edges, color="tab:green", lw=1.5, label="autoscaled: ready replicas",
                        baseline=None)
        p95 = np.minimum(tl["p95_ms"].to_numpy(float), 10 * plan.critical_ms)
        ax_p.stairs(p95, edges, lw=1.2, color="tab:green" if replay is plan.replay else "tab:red",
                    label=replay.name, baseline=None)
    ax_r.set_ylabel("replicas")
    ax_r.set_ylim(bottom=0)
    ax_r.set_title("Replicas")
    ax_r.legend(loc="upper left")
    ax_p.axhline(plan.warning_ms, color="tab:olive", ls="--", lw=0.8, label=f"warning {plan.warning_ms:,.0f} ms")
    ax_p.axhline(plan.critical_ms, color="tab:red", ls=":", lw=0.8, label=f"critical {plan.critical_ms:,.0f} ms")
    ax_p.set_yscale("log")
    ax_p.set_ylabel("p95 of a replica (ms)")
    ax_p.set_xlabel("hours from the start of the traffic")
    ax_p.set_title("Each replica's p95 (the run's latency model at its load)")
    ax_p.legend(loc="upper left")
    ax_u.legend(loc="upper left")
    return fig

