"""Small helpers the report notebooks call, so that no notebook defines or repeats logic."""

from __future__ import annotations

import html
import math
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from capkit.analysis.answer.parameters import ReportParameters
from capkit.analysis.answer.result import CapacityResult, result_for
from capkit.analysis.data.read import read_run
from capkit.analysis.fits.compare import compare_runs
from capkit.analysis.fits.llm import LlmServing, corrected_percentiles, goodput_knee, llm_steps, llm_turns, slo_of
from capkit.analysis.present import tables as views
from capkit.analysis.present.export import export_tables, fits_table, markdown_table
from capkit.analysis.present.headline import answer_html, answer_md
from capkit.analysis.present.sentences import peak_sentence, regime_sentence
from capkit.analysis.present.text import frame_html, number
from capkit.errors import CapkitError
from capkit.schemas import Interval, NotMeasured, resource_label
from capkit.store import open_store

CONSOLIDATED_COLUMNS = ["Component", "Test scenario", "Throughput", "Response time (p95)", "Error rate", "Status",
                        "Recommendations"]

__all__ = ["open_result", "answer", "answer_md", "answer_html", "table", "views", "capacity_chart", "figures_dir",
           "usl_md", "overview_md", "notes_md", "consolidated", "backtest_md", "comparison", "comparison_display",
           "markdown_table", "fits_table", "endpoint_costs", "what_if_table", "what_if_view", "scaling_plan",
           "scaling_answer", "scaling_md", "scaling_chart", "scaling_comparison", "scaling_policy"]


def open_result(store_url=None, run_id=None, output_dir=None, **parameters) -> CapacityResult:
    """The result a report page shows, from its ``parameters`` cell: validates the parameters,
    analyses the run (once per kernel) and writes its tables into ``output_dir`` when given."""
    params = ReportParameters.from_notebook(store_url=store_url, run_id=run_id, output_dir=output_dir, **parameters)
    result = result_for(params)
    export_tables(result, output_dir)
    if output_dir:
        views.export_html(result, output_dir)
    return result


def answer(result: CapacityResult):
    """The answer a page opens with (:func:`~capkit.analysis.present.headline.key_facts`), for ``display``."""
    from IPython.display import HTML

    return HTML(answer_html(result))


def table(frame: pd.DataFrame, **kwargs):
    """A table for people (:func:`~capkit.analysis.present.text.frame_html`), for ``display``."""
    from IPython.display import HTML

    return HTML(frame_html(frame, **kwargs))


def figures_dir(output_dir) -> Path | None:
    """Where a report's named figures go: ``figures/`` beside the tables folder ``output_dir``."""
    return Path(output_dir).parent / "figures" if output_dir else None


def capacity_chart(result: CapacityResult, output_dir=None):
    """The capacity chart (:func:`~capkit.analysis.present.figures.plot_capacity`), also written as
    ``figures/capacity.png`` and ``.svg`` beside ``output_dir`` when given."""
    from capkit.analysis.present.figstyle import save_figure
    from capkit.analysis.present.figures import plot_capacity

    fig = plot_capacity(result)
    save_figure(fig, figures_dir(output_dir), "capacity")
    return fig


def usl_md(result: CapacityResult) -> str:
    """The USL in one sentence: its regime in words, the peak and the fit quality."""
    usl = result.usl
    if usl is None:
        return f"USL {result.errors['usl']}."
    text = f"**{regime_sentence(usl, result.params.level).capitalize()}.**"
    peak = peak_sentence(usl, result.params.level)
    text += f" {peak[0].upper()}{peak[1:]}."
    return text + (f" Fitted on {usl.concurrency.size} clean steps ({usl.concurrency.min():g}–"
                   f"{usl.concurrency.max():g} users), R² {number(usl.r_squared)}.")


def overview_md(result: CapacityResult) -> str:
    """Run, target, git SHA, status, steps and the flagged ones, as Markdown."""
    m = result.run.meta
    steps = result.resources.steps
    when = datetime.fromtimestamp(m.created_at, tz=timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    flagged = steps[~steps["clean"]]
    lines = [f"**Run** `{m.run_id}` · {when} · target `{m.target}` · scenario {m.scenario or '–'}"
             f" · git `{(m.git_sha or '–')[:12]}` · status **{m.status}**" + (f" ({m.reason})" if m.reason else ""),
             f"{len(steps)} steps ({result.resources.clean_user_steps} clean with users), "
             f"warm-up {result.run.warmup_s:g} s trimmed from each; {int(steps['requests'].sum()):,} requests."]
    if len(flagged):
        lines.append("Left out of the fits: " + "; ".join(f"step {s.step} ({s.users} users): {s.flags}"
                                                          for s in flagged.itertuples()))
    return "\n\n".join(lines)


def notes_md(result: CapacityResult) -> str:
    """Models that could not be fitted, with why (empty string when all were)."""
    return "\n".join(f"- **{name}** not available: {why.reason}" for name, why in result.errors.items())


def consolidated(result: CapacityResult) -> pd.DataFrame:
    """The consolidated results table (display columns only)."""
    return result.components.reindex(columns=CONSOLIDATED_COLUMNS)


def backtest_md(result: CapacityResult) -> str:
    """One paragraph on how far to trust the projection."""
    bt = result.backtest
    if bt is None:
        why = result.errors.get("backtest")
        return f"Backtest not available: {why.reason if why else 'too few steps'}."
    worst = bt.summary.sort_values("max_abs_error_pct").iloc[-1] if len(bt.summary) else None
    text = (f"Fitted on the steps at {', '.join(map(str, bt.train_users))} users, "
            f"predicted {', '.join(map(str, bt.test_users))} users.")
    if worst is not None and math.isfinite(worst["max_abs_error_pct"]):
        text += (f" Largest error: {worst['quantity']}, {worst['max_abs_error_pct']:.1f} % — trust projections of "
                 f"that quantity beyond the measured range no more than this.")
    return text


def backtest_table(result: CapacityResult):
    """The backtest's table for ``display`` (nothing without a backtest: :func:`backtest_md` says why)."""
    from IPython.display import Markdown

    return table(views.backtest_view(result)) if result.backtest is not None else Markdown("")


def comparison(store_url=None, run_id=None, output_dir=None, baseline_run_id=None, **parameters):
    """(baseline result, result, comparison table) for a comparison page; the baseline defaults to the
    run stored before ``run_id``. Writes ``comparison.csv`` into ``output_dir`` when given."""
    params = ReportParameters.from_notebook(store_url=store_url, run_id=run_id, **parameters)
    b = result_for(params)
    if baseline_run_id is None:
        from capkit.analysis.data.read import resolve_url

        store = open_store(resolve_url(params.store_url), create=False)
        baseline_run_id = store.latest_run_id(before=b.run_id)
        store.engine.dispose()
        if baseline_run_id is None:
            from capkit.errors import ParameterError

            raise ParameterError(f"no run was stored before {b.run_id}: pass baseline_run_id")
    a = result_for(params.replace(run_id=baseline_run_id))
    table = compare_runs(a.resources, b.resources, usl_a=a.usl, usl_b=b.usl, level=params.level)
    if output_dir:
        Path(output_dir).mkdir(parents=True, exist_ok=True)
        table.to_csv(Path(output_dir) / "comparison.csv", index=False)
    return a, b, table


def comparison_display(table: pd.DataFrame, a_name: str, b_name: str) -> pd.DataFrame:
    """The comparison with readable numbers and "yes" for significant differences."""
    def num(v):
        return number(v) if isinstance(v, (int, float)) else "–"

    return pd.DataFrame({
        "Quantity": table["quantity"], a_name: table["run_a"].map(num), b_name: table["run_b"].map(num),
        "Difference": table["difference"].map(num),
        "Change": table["change_pct"].map(lambda v: "–" if not math.isfinite(v) else f"{v:+.1f} %"),
        "p": table["p_value"].map(num),
        "Significant": [("yes" if s is True else "no") if isinstance(n, float) else n
                        for s, n in zip(table["significant"], table["note"].fillna(0.0), strict=True)],
    })


def endpoint_costs(result: CapacityResult) -> pd.DataFrame:
    """Per endpoint: bytes per request (measured), CPU ms per request and MiB per session of its
    class (fitted), see :func:`capkit.analysis.fits.costs.endpoint_costs`."""
    from capkit.analysis.fits.costs import endpoint_costs as costs

    return costs(result.run, result.mix)


def _what_if_users(result: CapacityResult) -> float:
    steps = result.resources.steps
    loaded = steps[steps["clean"] & (steps["users"] > 0)]
    return float(loaded["users"].max()) if len(loaded) else 10.0


def what_if_table(result: CapacityResult, users: float | None = None) -> pd.DataFrame | str:
    """The run's own mix and each class's traffic doubled, at ``users`` (default: the highest clean
    step): predicted CPU, binding limit, users per replica (each with its basis); a sentence when the run's
    demands cannot answer."""
    model = result.mix
    if isinstance(model, NotMeasured):
        return f"What-if {model}."
    users = users or _what_if_users(result)
    # a run of one mix answers only for the mix it ran: as measured (its --mix rounds to whole users)
    own = model.base_mix if model.identifiable else {c: round(100 * w, 1) for c, w in model.run_mix.items()}
    mixes = [("the run's mix", own)]
    if model.identifiable:
        mixes += [(f"{c} traffic × 2", {**own, c: 2 * own[c]}) for c in model.classes]
    rows = []
    for label, mix in mixes:
        try:
            answer = model.what_if(mix, users=users)
        except CapkitError as exc:
            rows.append({"Mix": label, "Weights": ", ".join(f"{c}={w:g}" for c, w in mix.items()),
                         "Users": f"{users:,.0f}", "CPU cores": f"not measured ({exc})"})
            continue
        cpu = next((r for r in answer.resources if r.resource == "cpu_cores"), None)
        upr, b = answer.users_per_replica, answer.binding
        rows.append({"Mix": label, "Weights": ", ".join(f"{c}={w:g}" for c, w in mix.items()),
                     "Users": f"{users:,.0f}", "CPU cores": f"{cpu.value}, {answer.basis}" if cpu else "not measured",
                     "Binding limit": resource_label(b.resource)[0] if b else "none",
                     "Users per replica (plan · mean)": (f"{upr.low:,.0f} · {upr.estimate:,.0f}, "
                                                         f"{answer.basis_at(upr.low)}"
                                                         if isinstance(upr, Interval) and math.isfinite(upr.low)
                                                         else str(upr))})
    return pd.DataFrame(rows)


def what_if_view(result: CapacityResult, *, interactive: bool = False, users: float | None = None):
    """What-if for other traffic mixes: the static :func:`what_if_table` (what papermill keeps), and
    with ``interactive`` (JupyterLab) ipywidgets sliders for each class's weight and the users, the
    prediction table redrawn as they move."""
    from IPython.display import HTML, Markdown, display

    static = what_if_table(result, users)
    display(Markdown(static) if isinstance(static, str) else HTML(frame_html(static)))
    model = result.mix
    if not interactive or isinstance(model, NotMeasured):
        return None
    import ipywidgets as widgets

    classes = model.classes if model.identifiable else ()
    sliders = {c: widgets.FloatSlider(value=float(model.base_mix.get(c, 0.0)), min=0, max=max(10.0, 2 * max(
        model.base_mix.values())), step=0.5, description=c) for c in classes}
    load = widgets.FloatSlider(value=users or _what_if_users(result), min=1, max=1000, step=1, description="users")
    out = widgets.HTML()

    def redraw(_change=None):
        weights = {c: s.value for c, s in sliders.items()} or dict(model.base_mix)
        if sum(weights.values()) <= 0:
            out.value = "<p>Give at least one class a weight above 0.</p>"
            return
        try:
            answer = model.what_if(weights, users=load.value)
        except CapkitError as exc:
            out.value = f"<p>Not measured: {html.escape(str(exc))}</p>"
            return
        out.value = frame_html(answer.table()) + f"<p>{answer.summary().splitlines()[-1]}</p>"

    for w in (*sliders.values(), load):
        w.observe(redraw, names="value")
    redraw()
    box = widgets.VBox([*sliders.values(), load, out])
    display(box)
    return box


def llm_serving(store_url=None, run_id=None, output_dir=None, **parameters) -> LlmServing:
    """The LLM serving page's result, from its ``parameters`` cell (writes ``llm_steps.csv`` and, with
    conversation turns, ``llm_turns.csv`` into ``output_dir`` when given and measured)."""
    params = ReportParameters.from_notebook(store_url=store_url, run_id=run_id, output_dir=output_dir, **parameters)
    run = read_run(params.store_url, params.run_id)
    slo = slo_of(run)
    table = llm_steps(run.steps, run.llm, warmup_s=run.warmup_s, slo=slo)
    serving = LlmServing(run, table, slo, goodput_knee(table),
                         corrected_percentiles(run.steps, run.corrected, warmup_s=run.warmup_s),
                         llm_turns(run.steps, run.llm, warmup_s=run.warmup_s, slo=slo))
    if output_dir and serving.measured:
        Path(output_dir).mkdir(parents=True, exist_ok=True)
        table.to_csv(Path(output_dir) / "llm_steps.csv", index=False)
        if not serving.turns.empty:
            serving.turns.to_csv(Path(output_dir) / "llm_turns.csv", index=False)
    return serving


SCALING_KEYS = ("target_share", "risk", "draws", "seed")
TIMING_KEYS = ("sync_s", "pod_start_s", "stabilization_s", "tolerance")


def scaling_plan(store_url=None, run_id=None, output_dir=None, *, traffic=None, peak_users=None, session_minutes=None,
                 growth=1.0, headroom="N+1", replica_cost=None, scaling=None, **parameters):
    """The Scaling plan page's :class:`~capkit.analysis.answer.scaling.ScalingPlan` from its ``parameters``
    cell: the run analysed once per kernel, the traffic (a CSV path, a peak for the bundled weekday, or
    the bundled weekday), and ``scaling`` (``target_share``, ``risk``, ``draws``, ``seed``, the
    autoscaler's ``sync_s``, ``pod_start_s``, ``stabilization_s``, ``tolerance``). Writes
    ``scaling_timeline.csv``, ``scaling_comparison.csv`` and ``scaling_plan.json`` into ``output_dir``.
    A run whose capacity per replica is not measured gives :class:`~capkit.schemas.NotMeasured` (why),
    which the page's other helpers show as such: no replica count without a measurement behind it."""
    import json

    from capkit.analysis.answer.autoscale import HpaTiming
    from capkit.analysis.answer.scaling import scaling_plan as plan_for
    from capkit.analysis.answer.traffic import parse_headroom, traffic_for
    from capkit.analysis.present.scaling_page import comparison_table
    from capkit.errors import InsufficientDataError, ParameterError

    params = ReportParameters.from_notebook(store_url=store_url, run_id=run_id, output_dir=output_dir, **parameters)
    options = dict(scaling or {})
    unknown = sorted(set(options) - set(SCALING_KEYS) - set(TIMING_KEYS))
    if unknown:
        raise ParameterError(f"unknown scaling parameter(s) {', '.join(unknown)}; known: "
                             f"{', '.join(SCALING_KEYS + TIMING_KEYS)}")
    timing = HpaTiming(**{k: float(options.pop(k)) for k in TIMING_KEYS if k in options})
    day = traffic_for(traffic, peak_users=peak_users, session_minutes=session_minutes)
    try:
        plan = plan_for(result_for(params), day, growth=growth, headroom=parse_headroom(headroom),
                        replica_cost=replica_cost, timing=timing, **options)
    except InsufficientDataError as exc:
        return NotMeasured(str(exc))
    if output_dir:
        out = Path(output_dir)
        out.mkdir(parents=True, exist_ok=True)
        if not isinstance(plan.replay, NotMeasured):
            plan.replay.timeline.to_csv(out / "scaling_timeline.csv", index=False)
        comparison_table(plan).to_csv(out / "scaling_comparison.csv", index=False)
        (out / "scaling_plan.json").write_text(json.dumps(plan.to_json(), indent=2) + "\n", encoding="utf-8")
    return plan


def scaling_answer(plan):
    """The plan's answer (a sentence and its key numbers) in the answer box, for ``display``."""
    from IPython.display import HTML, Markdown

    from capkit.analysis.present.scaling_page import scaling_html

    return Markdown(f"**Scaling plan {plan}.**") if isinstance(plan, NotMeasured) else HTML(scaling_html(plan))


def scaling_md(plan) -> str:
    """The plan's facts, one a line, as Markdown."""
    from capkit.analysis.present.scaling_page import scaling_md as md

    return f"**Scaling plan {plan}.**" if isinstance(plan, NotMeasured) else md(plan)


def scaling_chart(plan, output_dir=None):
    """Traffic, replicas and each replica's p95 over the day; also ``figures/scaling_plan.png``/``.svg``."""
    from capkit.analysis.present.figstyle import save_figure
    from capkit.analysis.present.scaling_page import plot_scaling

    if isinstance(plan, NotMeasured):
        return None
    fig = plot_scaling(plan)
    save_figure(fig, figures_dir(output_dir), "scaling_plan")
    return fig


def scaling_comparison(plan):
    """The policy against the static plan, for ``display``."""
    from capkit.analysis.present.scaling_page import comparison_table

    return None if isinstance(plan, NotMeasured) else table(comparison_table(plan))


def scaling_policy(plan):
    """The policy and the pod's resources as the manifests carry them, for ``display``."""
    from capkit.analysis.present.scaling_page import policy_table

    return None if isinstance(plan, NotMeasured) else table(policy_table(plan))
