"""`capkit runs`, `capkit load`, `capkit import locust-csv`, `capkit db-create`: the results store."""

from __future__ import annotations

from pathlib import Path

import click

from capkit.cli.options import settings


@click.command()
@click.option("--store", "store_url", help="Results store URL.")
def runs(store_url):
    """List the runs in the results store."""
    from capkit.store import open_store

    frame = open_store(settings(store_url=store_url).store_url, create=False).list_runs()
    if frame.empty:
        click.echo("no runs yet")
        return
    for row in frame.itertuples():
        click.echo(f"{row.run_id}  {row.status:<10}  {row.scenario or '':<10}  {row.target}"
                   + (f"  ({row.reason})" if row.reason else ""))


@click.command("load")
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--store", "store_url", help="Results store URL.")
@click.option("--replace", is_flag=True, help="Replace the run if the store already holds it.")
def load_command(run_dir, store_url, replace):
    """Load a run's raw files (runs/RUN_ID) into the results store, e.g. after the store was down."""
    from capkit.runs.restore import read_run_dir, restore_run
    from capkit.store import open_store

    read_run_dir(run_dir)  # refuse a folder that is not a run before touching the store
    restored = restore_run(run_dir, open_store(settings(store_url=store_url).store_url), replace=replace)
    click.echo(f"loaded run {restored.run_id} ({restored.status}): {restored.steps} steps, "
               f"{restored.request_rows} request rows, {restored.samples} samples")


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
    from capkit.runs.locust_csv import read_locust_history, store_imported_run
    from capkit.runs.orchestrator import new_run_id
    from capkit.store import open_store

    imported = read_locust_history(prefix, min_step_s=min_step, warmup_s=warmup)  # all checks before writing
    store = open_store(settings(store_url=store_url).store_url)
    run_id = new_run_id()
    store_imported_run(store, imported, run_id=run_id, target=target)
    users = ", ".join(str(s["users"]) for s in imported.steps)
    click.echo(f"run {run_id}: imported {imported.requests} requests in {len(imported.steps)} steps "
               f"(users {users}) from {imported.source}")


@click.command("db-create")
def db_create():
    """Create the PostgreSQL databases named by CAPKIT_DATABASE_URL and CAPKIT_STORE_URL if missing."""
    from capkit.store.admin import create_database

    s = settings()
    for url in (s.database_url, s.store_url):
        if create_database(url):
            click.echo(f"created {url.rsplit('/', 1)[-1]}")


COMMANDS = (runs, load_command, import_group, db_create)
