"""The `capkit` command: parses, calls the library, prints. Nothing else lives here."""

from __future__ import annotations

import gc
import sys
from pathlib import Path

import click

from capkit.cli_load import COMMANDS as LOAD_COMMANDS
from capkit.cli_load import check_mix, check_think, scenario_options
from capkit.errors import CapkitError


def _settings(**overrides):
    from capkit.config import get_settings

    return get_settings(**{k: v for k, v in overrides.items() if v is not None})


def _limits(cpu, memory, db, network):
    from capkit.schemas import ResourceLimits

    return ResourceLimits(cpu_cores=cpu, memory_mib=memory, db_connections=db, network_mbps=network)


def limit_options(fn):
    for opt in reversed([
        click.option("--cpu-limit", type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True,
                     help="Cores given to the service (plan: the pinned cores)."),
        click.option("--memory-limit-mib", type=click.FloatRange(min=0, min_open=True), default=1024.0,
                     show_default=True, help="Memory limit of one replica."),
        click.option("--db-connection-limit", type=click.FloatRange(min=0, min_open=True), default=60.0,
                     show_default=True, help="Database connection limit."),
        click.option("--bandwidth-mbps", type=click.FloatRange(min=0, min_open=True), default=100.0,
                     show_default=True, help="Network bandwidth limit."),
    ]):
        fn = opt(fn)
    return fn


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="capkit")
def cli():
    """Measured capacity planning: stepped load, resource metrics, capacity models, reports."""


@cli.command()
@click.option("--profile", default="quick", show_default=True, help="smoke (≤ 60 s), quick (≤ 4 min) or full.")
@click.option("--stages", help="Custom stage plan USERSxSECONDS,… (first may be 0 users: idle), e.g. 0x20,5x30,10x30; "
                               "rRATExSECONDS[@USERS] for an arrival rate.")
@click.option("--warmup", type=float, help="Seconds trimmed from the start of each step (with --stages).")
@click.option("--port", type=click.IntRange(1, 65535), help="Port for the service (default: a free one).")
@click.option("--store", "store_url", help="Results store URL (default CAPKIT_STORE_URL or sqlite:///runs/capkit.sqlite).")
@click.option("--processes", type=click.IntRange(1, 64), default=1, show_default=True, help="Local Locust processes.")
@click.option("--no-report", is_flag=True, help="Skip the papermill report.")
@limit_options
@scenario_options
def plan(profile, stages, warmup, port, store_url, processes, no_report, cpu_limit, memory_limit_mib,
         db_connection_limit, bandwidth_mbps, mix, think, sample_interval):
    """Measure the reference service and publish its capacity report (the main job)."""
    from capkit.plan import run_plan
    from capkit.schemas import StagePlan, profile_plan

    base = profile_plan(profile)
    stage_plan = base if stages is None else StagePlan.parse(
        stages, warmup_s=warmup if warmup is not None else min(base.warmup_s, 2.0))
    settings = _settings(store_url=store_url)
    limits = _limits(cpu_limit, memory_limit_mib, db_connection_limit, bandwidth_mbps)
    result = run_plan(settings, stage_plan, limits=limits, port=port, report=not no_report,
                      profile=profile if stages is None else "custom", processes=processes,
                      sample_interval_s=sample_interval, mix=check_mix(mix), think=check_think(think),
                      say=lambda s: click.echo(s))
    if result.analysis_error:
        raise CapkitError(f"run {result.run.run_id} was stored but cannot be analysed: {result.analysis_error}")
    click.echo("\nBaseline Metrics (measured)\n")
    click.echo(result.baseline_md)
    click.echo(f"\n{result.headline}")
    if result.report_index:
        click.echo(f"report: {result.report_index}")
    if result.run.status != "complete":
        raise CapkitError(f"run {result.run.run_id} is incomplete: {result.run.reason}")


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True)
@click.option("--log-level", default="warning", show_default=True)
def serve(host, port, workers, log_level):
    """Serve the reference chat + analytics service (settings: CAPKIT_* environment)."""
    from capkit.service.server import serve as run_server

    run_server(_settings(), host, port, workers=workers, log_level=log_level)


@cli.command()
def seed():
    """Create and seed the reference service's database (CAPKIT_DATABASE_URL); idempotent."""
    from capkit.service.server import prepare_database

    settings = _settings(seed_on_start=True)
    prepare_database(settings)
    click.echo("database ready")


@cli.command("load")
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--store", "store_url", help="Results store URL.")
@click.option("--replace", is_flag=True, help="Replace the run if the store already holds it.")
def load_cmd(run_dir, store_url, replace):
    """Load a run's raw files (runs/RUN_ID) into the results store, e.g. after the store was down."""
    from capkit.reload import load_run_dir, read_run_dir
    from capkit.store import open_store

    read_run_dir(run_dir)  # refuse a folder that is not a run before touching the store
    loaded = load_run_dir(run_dir, open_store(_settings(store_url=store_url).store_url), replace=replace)
    click.echo(f"loaded run {loaded.run_id} ({loaded.status}): {loaded.steps} steps, "
               f"{loaded.request_rows} request rows, {loaded.samples} samples")


@cli.command("db-create")
def db_create():
    """Create the PostgreSQL databases named by CAPKIT_DATABASE_URL and CAPKIT_STORE_URL if missing."""
    from capkit.dbadmin import create_database

    settings = _settings()
    for url in (settings.database_url, settings.store_url):
        if create_database(url):
            click.echo(f"created {url.rsplit('/', 1)[-1]}")


@cli.command()
@click.argument("run_id", required=False)
@click.option("--store", "store_url", help="Results store URL.")
@click.option("--compare", "compare_id", help="A second run (e.g. another git SHA): adds the comparison page.")
@click.option("--target-users", type=click.FloatRange(min=0, min_open=True), default=500.0, show_default=True,
              help="Users the replica count is planned for.")
@click.option("--bootstrap", type=click.IntRange(0, 100_000), default=200, show_default=True,
              help="Bootstrap resamples of the USL and latency intervals.")
@limit_options
def report(run_id, store_url, compare_id, target_users, bootstrap, cpu_limit, memory_limit_mib, db_connection_limit,
           bandwidth_mbps):
    """Execute the report notebooks for RUN_ID (default: the latest) into reports/RUN_ID/."""
    from capkit.reporting import Workspace, limit_parameters, publish

    settings = _settings(store_url=store_url)
    reports_dir = Path(settings.reports_dir)
    with Workspace(reports_dir, settings.store_url) as workspace:  # the kernel imports while the run is checked
        from capkit.store import open_store

        store = open_store(settings.store_url, create=False)
        run_id = run_id or store.latest_run_id()
        if not run_id:
            raise CapkitError("the results store holds no runs yet; run `capkit plan` first")
        run = store.get_run(run_id)  # unknown ids fail here, before any notebook runs
        if compare_id:
            store.get_run(compare_id)
        if run["spec"].get("service_cores") and cpu_limit == 1.0:
            cpu_limit = float(run["spec"]["service_cores"])
        limits = _limits(cpu_limit, memory_limit_mib, db_connection_limit, bandwidth_mbps)
        published = publish(run_id, store_url=settings.store_url, reports_dir=reports_dir,
                            parameters={**limit_parameters(limits), "target_users": target_users,
                                        "bootstrap": bootstrap},
                            compare=compare_id, workspace=workspace)
    click.echo(f"report: {published.index}")


@cli.command()
@click.argument("run_id")
@click.option("--store", "store_url", help="Results store URL.")
@click.option("--max-p95-ms", type=float, default=2000.0, show_default=True,
              help="Highest p95 of the clean steps allowed.")
@click.option("--max-error-rate", type=float, default=0.05, show_default=True, help="Failures / requests allowed.")
@click.option("--min-capacity", type=float, help="Minimum planning capacity (users per replica).")
@click.option("--baseline", "baseline_id", help="Baseline run: fail on a significant capacity loss.")
@click.option("--max-regression", type=float, default=0.10, show_default=True,
              help="Capacity loss against --baseline allowed, as a share.")
@click.option("--junit", "junit_path", type=click.Path(dir_okay=False), help="Write JUnit XML here.")
@limit_options
def check(run_id, store_url, max_p95_ms, max_error_rate, min_capacity, baseline_id, max_regression, junit_path,
          cpu_limit, memory_limit_mib, db_connection_limit, bandwidth_mbps):
    """CI gates for RUN_ID: exit 1 when a threshold is breached (JUnit XML with --junit)."""
    from capkit.check import run_check

    ok, lines = run_check(_settings(store_url=store_url).store_url, run_id,
                          limits=_limits(cpu_limit, memory_limit_mib, db_connection_limit, bandwidth_mbps),
                          max_p95_ms=max_p95_ms, max_error_rate=max_error_rate, min_capacity=min_capacity,
                          baseline_id=baseline_id, max_regression=max_regression, junit_path=junit_path)
    for line in lines:
        click.echo(line)
    if not ok:
        from capkit.errors import GateFailure

        raise GateFailure(f"run {run_id} breached {sum(ln.startswith('FAIL') for ln in lines)} gate(s)")


@cli.command()
@click.option("--store", "store_url", help="Results store URL.")
def runs(store_url):
    """List the runs in the results store."""
    from capkit.store import open_store

    frame = open_store(_settings(store_url=store_url).store_url, create=False).list_runs()
    if frame.empty:
        click.echo("no runs yet")
        return
    for row in frame.itertuples():
        click.echo(f"{row.run_id}  {row.status:<10}  {row.scenario or '':<10}  {row.target}"
                   + (f"  ({row.reason})" if row.reason else ""))


@cli.command()
@click.argument("csv_file", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@click.option("--bootstrap", type=click.IntRange(0, 100_000), default=200, show_default=True)
@click.option("--seed", "seed_", type=int, default=0, show_default=True)
def usl(csv_file, as_json, bootstrap, seed_):
    """Fit the Universal Scalability Law to CSV_FILE (columns: concurrency, throughput)."""
    from capkit.analysis.usl import usl_report

    click.echo(usl_report(csv_file, as_json=as_json, bootstrap=bootstrap, seed=seed_))


for _command in LOAD_COMMANDS:  # run, worker, import (capkit/cli_load.py)
    cli.add_command(_command)


def main(argv: list[str] | None = None) -> int:
    """Entry point: user mistakes print one line and exit non-zero; bugs keep their traceback."""
    try:
        cli.main(args=argv, prog_name="capkit", standalone_mode=False)
    except CapkitError as exc:
        click.echo(f"capkit: error: {exc}", err=True)
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo("capkit: interrupted", err=True)
        return 130
    except KeyboardInterrupt:
        click.echo("capkit: interrupted", err=True)
        return 130
    except click.ClickException as exc:
        click.echo(f"capkit: error: {exc.format_message()} (see capkit {' '.join(_command(argv))} --help)", err=True)
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return exc.exit_code
    return 0


def _command(argv) -> list[str]:
    args = list(sys.argv[1:] if argv is None else argv)
    return [a for a in args[:1] if not a.startswith("-")]


def run() -> None:
    """Process entry point (console script and ``python -m capkit``)."""
    code = main()
    # The process ends here. Without this, the interpreter's last garbage collections walk every
    # object the command created: ~0.3 s after a report (nbconvert, papermill, jupyter_client).
    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":  # pragma: no cover
    run()
