"""The load commands of `capkit`: ``run``, ``worker``, ``import locust-csv``.

Registered on the group in :mod:`capkit.cli`; like it, they only parse and call.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path

import click

from capkit.errors import CapkitError, ConfigError

MIX_ITEM = re.compile(r"^(chat|analytics|auth|ws)=\d+$")


def _settings(**overrides):
    from capkit.config import get_settings

    return get_settings(**{k: v for k, v in overrides.items() if v is not None})


def check_mix(mix: str | None) -> str | None:
    """``chat=4,analytics=1,auth=1,ws=1`` (weights ≥ 0, at least one > 0) or ConfigError."""
    if mix is None:
        return None
    items = [i.strip() for i in mix.split(",") if i.strip()]
    if not items or not all(MIX_ITEM.match(i) for i in items) or all(i.endswith("=0") for i in items):
        raise ConfigError(f"--mix {mix!r} is not NAME=WEIGHT,… with NAME in chat, analytics, auth, ws and "
                          f"a weight > 0 (example: --mix chat=4,analytics=1,auth=1,ws=1)")
    return ",".join(items)


def check_think(think: str | None) -> str | None:
    """``MIN,MAX`` seconds (or one number) or ConfigError."""
    if think is None:
        return None
    low, _, high = think.partition(",")
    try:
        lo, hi = float(low), float(high or low)
    except ValueError:
        lo = hi = -1.0
    if not (0 <= lo <= hi):
        raise ConfigError(f"--think {think!r} is not MIN,MAX seconds with 0 ≤ MIN ≤ MAX (example: --think 0.5,1.5)")
    return f"{lo:g},{hi:g}"


def stage_plan(profile: str | None, stages: str | None, warmup: float | None):
    from capkit.schemas import StagePlan, profile_plan

    base = profile_plan(profile or "quick")
    if stages is None:
        return base
    return StagePlan.parse(stages, warmup_s=warmup if warmup is not None else min(base.warmup_s, 2.0))


def scenario_options(fn):
    for opt in reversed([
        click.option("--mix", help="Reference scenario weights, e.g. chat=4,analytics=1,auth=1,ws=1 "
                                   "(classes not named are left out)."),
        click.option("--think", help="Think time range MIN,MAX seconds between a user's tasks (default 0.5,1.5)."),
        click.option("--sample-interval", type=click.FloatRange(0.1, 60), default=1.0, show_default=True,
                     help="Seconds between resource samples."),
    ]):
        fn = opt(fn)
    return fn


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
@scenario_options
def run_command(target, locustfile, pid, prometheus, metrics, profile, stages, warmup, processes, master,
                expect_workers, master_bind_port, store_url, mix, think, sample_interval):
    """Run a stage plan and store it: against --target with your --locustfile, or the reference service."""
    from capkit.store import open_store

    plan = stage_plan(profile, stages, warmup)
    mix, think = check_mix(mix), check_think(think)
    settings = _settings(store_url=store_url)
    if target is None:
        if locustfile or pid or prometheus or master:
            raise ConfigError("--locustfile, --pid, --prometheus and --master need --target URL")
        from capkit.plan import run_plan
        from capkit.schemas import ResourceLimits

        result = run_plan(settings, plan, limits=ResourceLimits(), report=False, profile=profile or "custom",
                          processes=processes, sample_interval_s=sample_interval, mix=mix, think=think,
                          analyse=False, say=click.echo).run
    else:
        from capkit.load.runner import SCENARIOS
        from capkit.plan import load_env
        from capkit.run_target import run_target

        store = open_store(settings.store_url)
        env = load_env(settings, mix=mix, think=think) if locustfile is None else {}
        result = run_target(store=store, target=target.rstrip("/"),
                            locustfiles=[locustfile.resolve() if locustfile else SCENARIOS], plan=plan,
                            runs_dir=Path(settings.runs_dir), pid=pid, prometheus=prometheus,
                            metrics=list(metrics), processes=processes, sample_interval_s=sample_interval,
                            master_workers=expect_workers if master else 0, master_port=master_bind_port,
                            env=env, say=click.echo)
    click.echo(f"run {result.run_id}: {result.status} · {result.steps} steps · {result.request_rows} request rows"
               f" · {result.samples} samples")
    if result.status != "complete":
        raise CapkitError(f"run {result.run_id} is incomplete: {result.reason}")


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
    from capkit.load.runner import SCENARIOS
    from capkit.run_target import check_locustfile
    from capkit.run_target import worker_command as command

    files = [locustfile.resolve() if locustfile else SCENARIOS]
    if locustfile:
        check_locustfile(files[0])
    env = dict(os.environ)
    env.update({k: v for k, v in (("CAPKIT_MIX", check_mix(mix)), ("CAPKIT_THINK", check_think(think))) if v})
    cmd = command(master_host=master_host, master_port=master_port, locustfiles=files, processes=processes)
    click.echo(f"worker joining {master_host}:{master_port or 5557} …")
    proc = subprocess.Popen(cmd, env=env, start_new_session=True)
    try:
        code = proc.wait()
    except KeyboardInterrupt:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)
        raise
    if code != 0:
        raise CapkitError(f"the Locust worker exited with code {code}")


@click.group("import")
def import_group():
    """Import load results produced without capkit."""


@import_group.command("locust-csv")
@click.argument("prefix")
@click.option("--min-step", type=click.FloatRange(1, 3600), default=3.0, show_default=True,
              help="Shorter runs of one user count are ramp seconds of the next step.")
@click.option("--warmup", type=click.FloatRange(0, 3600), default=2.0, show_default=True,
              help="Seconds trimmed from the start of each step.")
@click.option("--target", help="What was loaded (stored with the run).")
@click.option("--store", "store_url", help="Results store URL.")
def import_locust_csv(prefix, min_step, warmup, target, store_url):
    """Import PREFIX_stats_history.csv of `locust --csv PREFIX --csv-full-history` as a run."""
    from capkit.metrics.locust_csv import read_locust_history, store_imported_run
    from capkit.orchestrator import new_run_id
    from capkit.store import open_store

    imported = read_locust_history(prefix, min_step_s=min_step, warmup_s=warmup)  # all checks before writing
    store = open_store(_settings(store_url=store_url).store_url)
    run_id = new_run_id()
    store_imported_run(store, imported, run_id=run_id, target=target)
    users = ", ".join(str(s["users"]) for s in imported.steps)
    click.echo(f"run {run_id}: imported {imported.requests} requests in {len(imported.steps)} steps "
               f"(users {users}) from {imported.source}")


COMMANDS = (run_command, worker_command, import_group)
