"""`capkit plan`, `capkit run`, `capkit worker`: measuring a service."""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
from pathlib import Path

import click

from capkit.cli.options import (
    SOAK_HELP,
    check_mix,
    check_slo,
    check_think,
    criteria,
    criteria_options,
    fleet_options,
    limit_options,
    limits,
    llm_options,
    pod_limits,
    scenario_options,
    settings,
    soak_seconds,
    stage_plan,
)
from capkit.errors import CapkitError, ConfigError
from capkit.schemas import Criteria, RunStatus


def search_options(fn):
    """``--budget``, ``--step-seconds``, ``--json``: the capacity search and its answer."""
    for opt in reversed([
        click.option("--budget", help="Time budget of the capacity search, e.g. 4m or 200s (default 4m)."),
        click.option("--step-seconds", type=click.FloatRange(4, 3600), default=15.0, show_default=True,
                     help="Length of each search step."),
        click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path),
                     help="Write the capacity answer (users per replica, binding limit, thresholds) here."),
    ]):
        fn = opt(fn)
    return fn


def make_planner(*, budget: str | None, step_seconds: float, criteria: Criteria, cpu_limit: float,
                 memory_limit_mib: float, rate: bool = False, start: float | None = None,
                 custom: dict | None = None):
    """The capacity search's planner for these options (bad values: one ConfigError line)."""
    from capkit.analysis.design.search import SearchPlanner, SearchRules, parse_budget

    rules = SearchRules(criteria=criteria, step_s=step_seconds, warmup_s=min(3.0, step_seconds / 4),
                        budget_s=parse_budget(budget) if budget else SearchRules.budget_s, rate=rate,
                        **({"start": start} if start else {}))
    return SearchPlanner(rules, cpu_limit=cpu_limit, memory_limit_mib=memory_limit_mib,
                         custom_limits=dict(custom or {}))


def chosen_plan(*, search: bool, profile, stages, warmup, soak, seed, budget, step_seconds, criteria, cpu_limit,
                memory_limit_mib, rate: bool = False, custom: dict | None = None,
                budget_without_search: str = "--budget is the search's; a fixed grid (--profile/--stages) runs its "
                                             "own length"):
    """(the first stage plan, the search's planner or None) of `plan`'s and `run`'s options."""
    planner = None
    if search:
        if soak:
            raise ConfigError("--soak holds the last step of a fixed plan: give --profile or --stages with it")
        planner = make_planner(budget=budget, step_seconds=step_seconds, criteria=criteria, cpu_limit=cpu_limit,
                               memory_limit_mib=memory_limit_mib, rate=rate, start=10.0 if rate else None,
                               custom=custom)
        chosen = planner.rules.first_stages()
    else:
        if budget is not None:
            raise ConfigError(budget_without_search)
        chosen = _with_soak(stage_plan(profile, stages, warmup), soak)
    return chosen.model_copy(update={"seed": seed}), planner


@click.command()
@click.option("--profile", help="A fixed grid instead of the search: smoke (≤ 60 s), quick (≤ 4 min) or full.")
@click.option("--stages", help="A fixed stage plan instead of the search: USERSxSECONDS,… (first may be 0 users: "
                               "idle), e.g. 0x20,5x30,10x30; rRATExSECONDS[@USERS] for an arrival rate.")
@click.option("--warmup", type=float, help="Seconds trimmed from the start of each step (with --stages).")
@click.option("--port", type=click.IntRange(1, 65535), help="Port for the service (default: a free one).")
@click.option("--store", "store_url", help="Results store URL (default CAPKIT_STORE_URL or sqlite:///runs/capkit.sqlite).")
@click.option("--processes", type=click.IntRange(1, 64), default=1, show_default=True, help="Local Locust processes.")
@click.option("--no-report", is_flag=True, help="Skip the papermill report.")
@click.option("--soak", help=SOAK_HELP)
@search_options
@criteria_options
@limit_options(enforced=True)
@fleet_options
@scenario_options
@llm_options
def plan(profile, stages, warmup, port, store_url, processes, no_report, soak, budget, step_seconds, json_path,
         p95_ms, p95_critical_ms, max_error_rate, cpu_limit, memory_limit_mib, db_connection_limit, bandwidth_mbps,
         replicas, pgbouncer, shared_model, mix, think, sample_interval, slo, seed, burstiness):
    """Measure the reference service and publish its capacity report (the main job).

    By default it searches: a ramp until the service stops meeting its limits, then bisection
    around the answer, within --budget. --profile or --stages run a fixed grid instead."""
    slo = check_slo(slo)
    check_fleet(replicas, pgbouncer or shared_model, port=port)
    crit = criteria(p95_ms=p95_ms, p95_critical_ms=p95_critical_ms, max_error_rate=max_error_rate)
    if profile is None and stages is None and warmup is not None:
        raise ConfigError("--warmup goes with --stages; the search trims a quarter of each step (≤ 3 s)")
    stage_plan_, planner = chosen_plan(search=profile is None and stages is None, profile=profile, stages=stages,
                                       warmup=warmup, soak=soak, seed=seed, budget=budget, step_seconds=step_seconds,
                                       criteria=crit, **_search_limits(cpu_limit, memory_limit_mib, replicas))
    stage_plan_ = with_burstiness(stage_plan_, burstiness)
    s = settings(store_url=store_url)
    lim = limits(cpu_limit, memory_limit_mib, db_connection_limit, bandwidth_mbps, replicas=replicas or 1)
    if not no_report:
        _check_report_parts()
    result = _run_reference(s, stage_plan_, port=port, profile=profile if stages is None else "custom",
                            processes=processes, sample_interval_s=sample_interval, mix=check_mix(mix),
                            think=check_think(think), say=click.echo, planner=planner, slo=slo, criteria=crit,
                            limits=pod_limits(cpu_limit, memory_limit_mib), replicas=replicas, pgbouncer=pgbouncer,
                            shared_model=shared_model, db_connection_limit=db_connection_limit)
    if result.store_failed:
        raise CapkitError(result.reason)
    baseline_md, headline, index = _analyse_and_publish(s, result.run_id, lim, report=not no_report,
                                                        json_path=json_path, incomplete=result.reason)
    click.echo("\nBaseline Metrics (measured)\n")
    click.echo(baseline_md)
    click.echo(f"\n{headline}")
    if planner is not None and planner.stop_reason:  # how the search ended, and what it did beyond its rules
        click.echo(f"search: {planner.stop_reason}")
        for note in planner.notes:
            click.echo(f"  · {note}")
    _say_soak(s.store_url, result.run_id, stage_plan_)
    if index:
        click.echo(f"report: {index}")
    if result.status != RunStatus.COMPLETE:
        raise CapkitError(f"run {result.run_id} is incomplete: {result.reason}")


def check_fleet(replicas: int | None, fleet_only: bool, *, port: int | None = None) -> None:
    """``--replicas`` ≥ 1, and ``--pgbouncer``, ``--shared-model`` (``fleet_only``) and ``--port``
    only where they mean something."""
    if replicas is not None and replicas < 1:
        raise ConfigError(f"--replicas {replicas}: a fleet has at least 1 replica (1 is the fleet's baseline)")
    if fleet_only and replicas is None:
        raise ConfigError("--pgbouncer and --shared-model are parts of a fleet: give --replicas N with them")
    if replicas is not None and port is not None:
        raise ConfigError("--port is the single service's; a fleet's replicas and balancer take free ports")


def _search_limits(cpu_limit, memory_limit_mib, replicas) -> dict:
    """The search's CPU and memory limits: the service's (a fleet's: its replicas' together)."""
    from capkit.cli.options import DEFAULT_CPU_LIMIT, DEFAULT_MEMORY_LIMIT_MIB

    n = replicas or 1
    return {"cpu_limit": n * (cpu_limit or DEFAULT_CPU_LIMIT),
            "memory_limit_mib": n * (memory_limit_mib or DEFAULT_MEMORY_LIMIT_MIB)}


def _run_reference(s, plan, *, replicas, pgbouncer, shared_model, db_connection_limit, **kwargs):
    """The reference service alone (``replicas`` None) or as a fleet."""
    if replicas is None:
        from capkit.runs.reference import run_reference

        return run_reference(s, plan, cgroup_root=s.cgroup_root, **kwargs)
    from capkit.runs.reference import run_fleet

    kwargs.pop("port", None)
    return run_fleet(s, plan, replicas=replicas, pgbouncer=pgbouncer, shared_model=shared_model,
                     db_connection_limit=int(db_connection_limit),
                     cgroup_root=s.cgroup_root, haproxy=s.haproxy_bin, **kwargs)


def _check_report_parts() -> None:
    """A missing report notebook or kernel fails before the load, not after it."""
    from capkit.report.kernel import check_kernel
    from capkit.report.notebooks import notebook_paths
    from capkit.report.publish import REPORT_NOTEBOOKS

    notebook_paths(REPORT_NOTEBOOKS)
    check_kernel()


def _analyse_and_publish(s, run_id: str, lim, *, report: bool, json_path: Path | None = None,
                         incomplete: str | None = None):
    """(Baseline Metrics as a terminal table, the answer's headline, report index or None) of a stored run;
    the answer as JSON into ``json_path`` when given. ``incomplete``: why the run ended early, said
    with the error when what it kept cannot be analysed."""
    from contextlib import nullcontext

    from capkit.store import open_store

    workspace = nullcontext()
    if report:
        from capkit.report.workspace import Workspace

        # the report kernel starts now and imports (~2 s) while this process computes the table
        workspace = Workspace(Path(s.reports_dir), s.store_url)
    with workspace:
        from capkit import analysis as ca
        from capkit.analysis.present.text import terminal_table

        run = ca.read_run(open_store(s.store_url), run_id)
        if run.meta.spec.service_cores and lim.cpu_cores == 1.0:
            lim = lim.model_copy(update={"cpu_cores": run.meta.spec.service_cores})
        params = ca.ReportParameters.from_limits(lim, criteria=run.meta.spec.criteria)  # the run's own
        try:
            result = ca.analyse_run(run, params)
        except CapkitError as exc:
            if incomplete:
                raise CapkitError(f"run {run_id} is incomplete ({incomplete}) and what it kept cannot be "
                                  f"analysed: {exc}") from None
            raise CapkitError(f"run {run_id} was stored but cannot be analysed: {exc}") from None
        if json_path is not None:
            write_answer(json_path, result.answer)
        index = None
        if report:
            from capkit.report.publish import publish

            click.echo("publishing the report (papermill)…")
            index = publish(run_id, workspace=workspace, overrides=params.overrides()).index
    return terminal_table(result.baseline), result.headline(), index


def write_answer(path: Path, answer) -> None:
    import json

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(answer.to_json(), indent=2) + "\n", encoding="utf-8")


@click.command("run")
@click.option("--target", help="URL of a running service to load (default: start the reference service).")
@click.option("--locustfile", type=click.Path(dir_okay=False, path_type=Path),
              help="Your own plain locustfile (with --target); default: capkit's reference scenarios.")
@click.option("--pid", type=int, help="PID of the service under test: its process tree's CPU, memory, fds.")
@click.option("--prometheus", help="Prometheus /metrics URL of the service (without --pid: its resources).")
@click.option("--metric", "metrics", multiple=True,
              help="NAME=SERIES[:rate|:/N|:*N] from --prometheus, repeatable "
                   "(default: cpu_cores, rss_mib, fds from the standard process_* series).")
@click.option("--profile", help="smoke, quick (default) or full.")
@click.option("--stages", help="Stage plan: USERSxSECONDS or rRATExSECONDS[@USERS] items, e.g. 0x20,5x30 or "
                               "0x10,r20x30,r40x30 (arrival rate: task runs per second).")
@click.option("--warmup", type=float, help="Seconds trimmed from the start of each step (with --stages).")
@click.option("--processes", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Local Locust processes (Locust's --processes).")
@click.option("--master", is_flag=True, help="Run as Locust master; workers join with `capkit worker`.")
@click.option("--expect-workers", type=click.IntRange(1, 1000), default=1, show_default=True,
              help="Workers the master waits for (with --master).")
@click.option("--master-bind-port", type=click.IntRange(1, 65535), help="Port the master listens on (default 5557).")
@click.option("--store", "store_url", help="Results store URL.")
@click.option("--soak", help=SOAK_HELP)
@click.option("--search", "search_mode", type=click.Choice(["users", "rate"]), flag_value="users",
              help="Search for the capacity instead of a fixed plan: --search (users, closed model) or "
                   "--search=rate (the highest arrival rate that meets the limits, open model).")
@click.option("--limit", "limits_", multiple=True,
              help="NAME=VALUE: the limit of a --metric series, which becomes a resource like CPU "
                   "(e.g. a pool gauge: --metric pool_in_use=my_pool_active --limit pool_in_use=20).")
@search_options
@criteria_options
@limit_options(enforced=True)
@fleet_options
@click.option("--scenario", type=click.Choice(["reference", "openai-chat"]), default="reference", show_default=True,
              help="With --target: capkit's reference users, or openai-chat (any OpenAI-compatible server).")
@click.option("--model", help="openai-chat: the model name sent (default: the first of the target's /v1/models).")
@click.option("--prompts", type=click.Path(dir_okay=False, path_type=Path),
              help="openai-chat: prompts file, one a line or JSONL (default: built-in prompts, each unique).")
@click.option("--max-tokens", type=click.IntRange(1, 1_000_000), help="openai-chat: max_tokens of each request.")
@click.option("--api-key-env", help="openai-chat: name of the environment variable holding the API key.")
@click.option("--turns", help="openai-chat: turns per conversation, MEAN[,SD[,MIN,MAX]] (normal, rounded, clipped; "
                              "default 1); the history is resent every turn, --think waits between turns.")
@click.option("--input-tokens", help="openai-chat: synthetic prompts of MEAN[,SD[,MIN,MAX]] tokens (instead of "
                                     "--prompts), e.g. 512,128,64,2048.")
@click.option("--output-tokens", help="openai-chat: max_tokens drawn per request, MEAN[,SD[,MIN,MAX]] (instead of "
                                      "--max-tokens).")
@click.option("--shared-prefix", help="openai-chat: SHARE,TOKENS: that share of conversations opens with the same "
                                      "system prompt of TOKENS tokens (server prefix caching shows in TTFT).")
@click.option("--trace", type=click.Path(dir_okay=False, path_type=Path),
              help="openai-chat: replay a timestamped trace (JSONL: timestamp ms, input_length, output_length; "
                   "Mooncake's shape) instead of --stages.")
@click.option("--trace-scale", type=float, help="With --trace: multiply its times (0.5 replays twice as fast).")
@click.option("--server", help="The inference server at --target: vllm, sglang, tgi or ollama; maps its queue, "
                               "running batch and KV-cache series (--prometheus, default TARGET/metrics) to limits.")
@click.option("--design", type=click.Choice(["mix"]),
              help="mix: every loaded stage becomes the --mix and one step per class tilted halfway to all of the "
                   "users, so per-class demands can be told apart (for `capkit what-if`); keep the loads below the "
                   "knee.")
@scenario_options
@llm_options
def run_command(target, locustfile, pid, prometheus, metrics, profile, stages, warmup, processes, master,
                expect_workers, master_bind_port, store_url, soak, search_mode, limits_, budget, step_seconds,
                json_path, p95_ms, p95_critical_ms, max_error_rate, cpu_limit, memory_limit_mib, db_connection_limit,
                bandwidth_mbps, replicas, pgbouncer, shared_model, scenario, model, prompts, max_tokens, api_key_env,
                turns, input_tokens, output_tokens, shared_prefix, trace, trace_scale, server, design, mix, think,
                sample_interval, slo, seed, burstiness):
    """Run a stage plan (or a capacity search) and store it: against --target with your --locustfile,
    or the reference service."""
    from capkit.store import open_store

    prometheus, metrics, server_limits = _server(server, target, prometheus, metrics)
    custom = {**server_limits, **check_limits(limits_, metrics)}
    check_fleet(replicas, pgbouncer or shared_model)
    if replicas is not None and (target or scenario != "reference"):
        raise ConfigError("--replicas runs capkit's reference service as a fleet: leave out --target and --scenario "
                          "(a fleet of your own: run it yourself and give its balancer's URL as --target)")
    crit = criteria(p95_ms=p95_ms, p95_critical_ms=p95_critical_ms, max_error_rate=max_error_rate)
    if search_mode and (profile or stages):
        raise ConfigError("--search decides its own steps: leave out --profile and --stages")
    workload = _workload(scenario, prompts=prompts, max_tokens=max_tokens, turns=turns, input_tokens=input_tokens,
                         output_tokens=output_tokens, shared_prefix=shared_prefix, trace=trace,
                         trace_scale=trace_scale, seed=seed)
    trace_requests = workload.check() if workload is not None else None
    if trace_requests is not None:
        if profile or stages or search_mode or soak or warmup is not None:
            raise ConfigError("--trace is the plan: leave out --profile, --stages, --search, --soak and --warmup")
        from capkit.runs.openai_target import trace_plan

        plan, planner = trace_plan(trace_requests, seed=seed), None
    else:
        plan, planner = chosen_plan(search=bool(search_mode), profile=profile, stages=stages, warmup=warmup,
                                    soak=soak, seed=seed, budget=budget, step_seconds=step_seconds, criteria=crit,
                                    **_search_limits(cpu_limit, memory_limit_mib, replicas),
                                    rate=search_mode == "rate", custom=custom,
                                    budget_without_search="--budget goes with --search")
    mix, think, slo = check_mix(mix), check_think(think), check_slo(slo)
    plan = with_burstiness(plan, burstiness)
    if design == "mix":
        plan = _mix_design(plan, planner, mix, locustfile=locustfile, scenario=scenario, soak=soak)
    s = settings(store_url=store_url)
    openai_only = {"--model": model, "--prompts": prompts, "--max-tokens": max_tokens, "--api-key-env": api_key_env,
                   "--turns": turns, "--input-tokens": input_tokens, "--output-tokens": output_tokens,
                   "--shared-prefix": shared_prefix, "--trace": trace, "--trace-scale": trace_scale}
    if scenario != "openai-chat" and any(v is not None for v in openai_only.values()):
        given = ", ".join(k for k, v in openai_only.items() if v is not None)
        raise ConfigError(f"{given}: only with --scenario openai-chat --target URL")
    if scenario == "openai-chat" and planner is not None:
        raise ConfigError("--search drives capkit's own users; with --scenario openai-chat give --stages "
                          "(arrival rates rRATExSECONDS or pRATExSECONDS find the goodput knee)")
    if scenario == "openai-chat":
        if target is None or locustfile or master or mix:
            raise ConfigError("--scenario openai-chat needs --target URL and takes no --locustfile, --master or --mix")
        from capkit.runs.openai_target import run_openai_chat, target_model

        target = target.rstrip("/")
        result = run_openai_chat(store=open_store(s.store_url), target=target, plan=plan, runs_dir=Path(s.runs_dir),
                                 model=model or target_model(target, api_key_env), workload=workload,
                                 api_key_env=api_key_env, slo=slo, think=think, pid=pid,
                                 prometheus=prometheus, metrics=list(metrics), processes=processes,
                                 sample_interval_s=sample_interval, say=click.echo, criteria=crit, limits=custom,
                                 server=server)
    elif target is None:
        if locustfile or pid or prometheus or master:
            raise ConfigError("--locustfile, --pid, --prometheus and --master need --target URL")
        result = _run_reference(s, plan, profile=profile or "custom", processes=processes,
                                sample_interval_s=sample_interval, mix=mix, think=think, say=click.echo,
                                command="capkit run", planner=planner, slo=slo, criteria=crit,
                                limits=pod_limits(cpu_limit, memory_limit_mib), replicas=replicas,
                                pgbouncer=pgbouncer, shared_model=shared_model,
                                db_connection_limit=db_connection_limit)
    else:
        from capkit.loadgen import SCENARIOS
        from capkit.runs.reference import load_env
        from capkit.runs.target import run_target

        store = open_store(s.store_url)
        env = load_env(s, mix=mix, think=think) if locustfile is None else {}
        if slo is not None:
            import json

            env["CAPKIT_SLO"] = json.dumps(slo.to_dict())
        result = run_target(store=store, target=target.rstrip("/"),
                            locustfiles=[locustfile.resolve() if locustfile else SCENARIOS], plan=plan,
                            runs_dir=Path(s.runs_dir), pid=pid, prometheus=prometheus,
                            metrics=list(metrics), processes=processes, sample_interval_s=sample_interval,
                            master_workers=expect_workers if master else 0, master_port=master_bind_port,
                            env=env, say=click.echo, planner=planner, limits=custom,
                            slo=slo.to_dict() if slo else None, criteria=crit)
    click.echo(f"run {result.run_id}: {result.status} · {result.steps} steps · {result.request_rows} request rows"
               f" · {result.samples} samples")
    if json_path is not None or planner is not None:
        lim = limits(cpu_limit, memory_limit_mib, db_connection_limit, bandwidth_mbps,
                     replicas=replicas or 1).model_copy(
            update={"custom": custom})
        _, headline, _ = _analyse_and_publish(s, result.run_id, lim, report=False, json_path=json_path,
                                              incomplete=result.reason)
        click.echo(headline)
    if result.status == RunStatus.COMPLETE and not result.store_failed:
        _say_soak(s.store_url, result.run_id, plan)
    if result.status != RunStatus.COMPLETE:
        raise CapkitError(f"run {result.run_id} is incomplete: {result.reason}")


def _server(server: str | None, target: str | None, prometheus: str | None, metrics: tuple) -> tuple:
    """(prometheus URL, metric mappings, limits) with ``--server``'s series added (ConfigError when unknown)."""
    from capkit.metrics.prometheus import DEFAULT_MAPPING
    from capkit.metrics.servers import server_signals

    signals = server_signals(server)
    if signals is None:
        return prometheus, metrics, {}
    if target is None:
        raise ConfigError("--server names the inference server at --target URL: give --target")
    if not signals.mappings:
        if prometheus:
            raise ConfigError(f"--server {signals.name}: {signals.note}; leave out --prometheus")
    else:
        prometheus = prometheus or target.rstrip("/") + "/metrics"
        metrics = (*metrics, *(() if metrics else DEFAULT_MAPPING), *signals.mappings)
    if signals.note:
        click.echo(f"--server {signals.name}: {signals.note}")
    return prometheus, metrics, dict(signals.limits)


def _workload(scenario: str, *, prompts, max_tokens, turns, input_tokens, output_tokens, shared_prefix, trace,
              trace_scale, seed):
    """The openai-chat workload of these options (parsed, not yet read: ``check()`` reads the files);
    None for the other scenarios."""
    if scenario != "openai-chat":
        return None
    from capkit.records.prompts import LengthDist
    from capkit.runs.openai_target import ChatWorkload, parse_prefix

    if trace_scale is not None and trace is None:
        raise ConfigError("--trace-scale goes with --trace")
    share, tokens = parse_prefix(shared_prefix)
    return ChatWorkload(prompts=prompts, max_tokens=max_tokens, turns=LengthDist.parse(turns, "--turns"),
                        input_tokens=LengthDist.parse(input_tokens, "--input-tokens"),
                        output_tokens=LengthDist.parse(output_tokens, "--output-tokens"), prefix_share=share,
                        prefix_tokens=tokens, trace=trace, trace_scale=1.0 if trace_scale is None else trace_scale,
                        seed=seed)


def with_burstiness(plan, burstiness: float | None):
    """``plan`` with ``--burstiness`` (gamma gaps of its pRATE stages); ConfigError when ≤ 0 or without one."""
    if burstiness is None:
        return plan
    if not (burstiness > 0) or burstiness == float("inf"):
        raise ConfigError(f"--burstiness {burstiness:g} must be > 0 (1: Poisson; smaller: burstier; larger: "
                          f"more regular)")
    if not any(s.poisson for s in plan.stages):
        raise ConfigError("--burstiness shapes the gaps of Poisson stages: give pRATExSECONDS[@USERS] stages")
    return plan.model_copy(update={"burstiness": float(burstiness)})


def _mix_design(plan, planner, mix: str | None, *, locustfile, scenario: str, soak):
    """``plan`` as the ``--design mix`` steps (a fixed grid of the reference scenarios only)."""
    from capkit.analysis.design.mixes import mix_design, parse_mix
    from capkit.loadgen import DEFAULT_MIX

    if planner is not None or soak:
        raise ConfigError("--design mix tilts the steps of a fixed grid: give --profile or --stages, "
                          "not --search or --soak")
    if locustfile or scenario != "reference":
        raise ConfigError("--design mix varies the reference scenarios' classes: leave out --locustfile and "
                          "--scenario")
    return mix_design(plan, parse_mix(mix or DEFAULT_MIX))


def _with_soak(plan, soak: str | None):
    seconds = soak_seconds(soak)
    return plan.with_soak(seconds) if seconds else plan


def _say_soak(store_url: str, run_id: str, plan) -> None:
    """The soak's leak verdict, one line (nothing without a soak)."""
    if not plan.soak_s:
        return
    from capkit import analysis as ca
    from capkit.analysis.fits.soak import soak_leak
    from capkit.store import open_store

    leak = soak_leak(ca.read_run(open_store(store_url, create=False), run_id))
    click.echo(leak.summary() if hasattr(leak, "summary") else f"soak: {leak}")


@click.command("worker")
@click.option("--master-host", required=True, help="Host of the `capkit run --master`.")
@click.option("--master-port", type=click.IntRange(1, 65535), help="Its --master-bind-port (default 5557).")
@click.option("--locustfile", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The same locustfile as the master's (default: capkit's reference scenarios).")
@click.option("--processes", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Worker processes on this machine.")
@click.option("--mix", help="Reference scenario weights (as on `capkit run`).")
@click.option("--think", help="Think time range MIN,MAX seconds (as on `capkit run`).")
def worker_command(master_host, master_port, locustfile, processes, mix, think):
    """Generate load for a `capkit run --master` on another machine until the master ends the run."""
    from capkit.loadgen import SCENARIOS
    from capkit.runs.locust import worker_command as command
    from capkit.runs.target import check_locustfile

    files = [locustfile.resolve() if locustfile else SCENARIOS]
    if locustfile:
        check_locustfile(files[0])
    env = dict(os.environ)
    env.update({k: v for k, v in (("CAPKIT_MIX", check_mix(mix)), ("CAPKIT_THINK", check_think(think))) if v})
    cmd = command(master_host=master_host, master_port=master_port, locustfiles=files, processes=processes)
    # Locust's output goes to a log file, so a worker that leaves says why in one line
    work = Path(tempfile.mkdtemp(prefix="capkit-worker-"))
    env["CAPKIT_WORKER_STATUS"] = str(work / "status")
    click.echo(f"worker joining {master_host}:{master_port or 5557} … (Locust log: {work / 'locust.log'})")
    with open(work / "locust.log", "ab") as log:
        proc = subprocess.Popen(cmd, env=env, start_new_session=True, stdout=log, stderr=subprocess.STDOUT)
    try:
        code = proc.wait()
    except KeyboardInterrupt:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)
        raise
    status = work / "status"
    if status.exists():  # the worker left by itself (refused, or its master went away)
        raise CapkitError(f"worker left: {status.read_text().strip()}")
    if code != 0:
        raise CapkitError(f"the Locust worker exited with code {code} (log: {work / 'locust.log'})")



def check_limits(items, metrics) -> dict[str, float]:
    """``--limit NAME=VALUE`` items → {name: value}; each NAME must be a ``--metric`` mapping."""
    mapped = {m.partition("=")[0].strip() for m in metrics}
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip()
        try:
            number = float(value)
        except ValueError:
            number = float("nan")
        if not sep or not name or not (number > 0):
            raise ConfigError(f"--limit {item!r} is not NAME=VALUE with VALUE > 0 (example: --limit pool_in_use=20)")
        if name not in mapped:
            raise ConfigError(f"--limit {name}: no --metric {name}=SERIES maps such a series; map it with "
                              f"--metric {name}=SERIES (and --prometheus URL)")
        out[name] = number
    return out


COMMANDS = (plan, run_command, worker_command)
