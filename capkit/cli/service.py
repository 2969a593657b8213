"""`capkit serve` and `capkit seed`: the reference service."""

from __future__ import annotations

import click

from capkit.cli.options import settings


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True)
@click.option("--log-level", default="warning", show_default=True)
def serve(host, port, workers, log_level):
    """Serve the reference chat + analytics service (settings: CAPKIT_* environment)."""
    from capkit.service.server import serve as run_server

    run_server(settings(), host, port, workers=workers, log_level=log_level)


@click.command()
def seed():
    """Create and seed the reference service's database (CAPKIT_DATABASE_URL); idempotent."""
    from capkit.service.server import prepare_database

    prepare_database(settings(seed_on_start=True))
    click.echo("database ready")


COMMANDS = (serve, seed)
