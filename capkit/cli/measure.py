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
    check_think,
    limit_options,
    limits,
    scenario_options,
    settings,
    soak_seconds,
    stage_plan,
)
from capkit.errors import CapkitError, ConfigError
from capkit.schemas import RunStatus


@click.command()
@click.option("--profile", default="quick", show_default=True, help="smoke (≤ 60 s), quick (≤ 4 min) or full.")
@click.option("--stages", help="Custom stage plan USERSxSECONDS,… (first may be 0 users: idle), e.g. 0x20,5x30,10x30; "
                               "rRATExSECONDS[@USERS] for an arrival rate.")
@click.option("--warmup", type=float, help="Seconds trimmed from the start of each step (with --stages).")
@click.option("--port", type=click.IntRange(1, 65535), help="Port for the service (default: a free one).")
@click.option("--store", "store_url", help="Results store URL (default CAPKIT_STORE_URL or sqlite:///runs/capkit.sqlite).")
@click.option("--processes", type=click.IntRange(1, 64), default=1, show_default=True, help="Local Locust processes.")
@click.option("--no-report", is_flag=True, help="Skip the papermill report.")
@click.option("--soak", help=SOAK_HELP)
@limit_options
@scenario_options
def plan(profile, stages, warmup, port, store_url, processes, no_report, soak, cpu_limit, memory_limit_mib,
         db_connection_limit, bandwidth_mbps, mix, think, sample_interval):
    """Measure the reference service and publish its capacity report (the main job)."""
    from capkit.runs.reference import run_reference

    stage_plan_ = _with_soak(stage_plan(profile, stages, warmup), soak)
    s = settings(store_url=store_url)
    lim = limits(cpu_limit, memory_limit_mib, db_connection_limit, bandwidth_mbps)
    result = run_reference(s, stage_plan_, port=port, profile=profile if stages is None else "custom",
                           processes=processes, sample_interval_s=sample_interval, mix=check_mix(mix),
                           think=check_think(think), say=click.echo)
    if result.store_failed:
        raise CapkitError(result.reason)
    baseline_md, headline, index = _analyse_and_publish(s, result.run_id, lim, report=not no_report)
    click.echo("\nBaseline Metrics (measured)\n")
    click.echo(baseline_md)
    click.echo(f"\n{headline}")
    _say_soak(s.store_url, result.run_id, stage_plan_)
    if index:
        click.echo(f"report: {index}")
    if result.status != RunStatus.COMPLETE:
        raise CapkitError(f"run {result.run_id} is incomplete: {result.reason}")


def _analyse_and_publish(s, run_id: str, lim, *, report: bool):
    """(Baseline Metrics as Markdown, headline, report index or None) of a stored run."""
    from contextlib import nullcontext

    from capkit.store import open_store

    workspace = nullcontext()
    if report:
        from capkit.report.workspace import Workspace

        # the report kernel starts now and imports (~2 s) while this process computes the table
        workspace = Workspace(Path(s.reports_dir), s.store_url)
    with workspace:
        from capkit import analysis as ca
        from capkit.analysis.capacity import resource_capacity
        from capkit.analysis.tables import markdown_table

        run = ca.read_run(open_store(s.store_url), run_id)
        if run.meta.spec.service_cores and lim.cpu_cores == 1.0:
            lim = lim.model_copy(update={"cpu_cores": run.meta.spec.service_cores})
        try:
            resources = resource_capacity(run, lim)
        except CapkitError as exc:
            raise CapkitError(f"run {run_id} was stored but cannot be analysed: {exc}") from None
        index = None
        if report:
            from capkit.report.publish import publish

            click.echo("publishing the report (papermill)…")
            index = publish(run_id, workspace=workspace,
                            overrides=ca.ReportParameters.from_limits(lim).overrides()).index
    return markdown_table(resources.baseline), resources.headline(), index


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
@scenario_options
def run_command(target, locustfile, pid, prometheus, metrics, profile, stages, warmup, processes, master,
                expect_workers, master_bind_port, store_url, soak, mix, think, sample_interval):
    """Run a stage plan and store it: against --target with your --locustfile, or the reference service."""
    from capkit.store import open_store

    plan = _with_soak(stage_plan(profile, stages, warmup), soak)
    mix, think = check_mix(mix), check_think(think)
    s = settings(store_url=store_url)
    if target is None:
        if locustfile or pid or prometheus or master:
            raise ConfigError("--locustfile, --pid, --prometheus and --master need --target URL")
        from capkit.runs.reference import run_reference

        result = run_reference(s, plan, profile=profile or "custom", processes=processes,
                               sample_interval_s=sample_interval, mix=mix, think=think, say=click.echo,
                               command="capkit run")
    else:
        from capkit.loadgen import SCENARIOS
        from capkit.runs.reference import load_env
        from capkit.runs.target import run_target

        store = open_store(s.store_url)
        env = load_env(s, mix=mix, think=think) if locustfile is None else {}
        result = run_target(store=store, target=target.rstrip("/"),
                            locustfiles=[locustfile.resolve() if locustfile else SCENARIOS], plan=plan,
                            runs_dir=Path(s.runs_dir), pid=pid, prometheus=prometheus,
                            metrics=list(metrics), processes=processes, sample_interval_s=sample_interval,
                            master_workers=expect_workers if master else 0, master_port=master_bind_port,
                            env=env, say=click.echo)
    click.echo(f"run {result.run_id}: {result.status} · {result.steps} steps · {result.request_rows} request rows"
               f" · {result.samples} samples")
    if result.status == RunStatus.COMPLETE and not result.store_failed:
        _say_soak(s.store_url, result.run_id, plan)
    if result.status != RunStatus.COMPLETE:
        raise CapkitError(f"run {result.run_id} is incomplete: {result.reason}")


def _with_soak(plan, soak: str | None):
    seconds = soak_seconds(soak)
    return plan.with_soak(seconds) if seconds else plan


def _say_soak(store_url: str, run_id: str, plan) -> None:
    """The soak's leak verdict, one line (nothing without a soak)."""
    if not plan.soak_s:
        return
    from capkit import analysis as ca
    from capkit.analysis.soak import soak_leak
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



COMMANDS = (plan, run_command, worker_command)
