"""`capkit serve`, `capkit seed` and `capkit token`: the reference service."""

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

    run_server(settings(), host, port, workers=workers, log_level=log_level, say=click.echo)


@click.command()
@click.option("--target", default="http://127.0.0.1:8000", show_default=True, help="The reference service's URL.")
@click.option("--username", help="A user of that service (default: its first load-test account, loadtest-0000).")
@click.option("--password", help="Its password (default: CAPKIT_TEST_ACCOUNT_PASSWORD, the load-test accounts').")
def token(target, username, password):
    """Print an access token of the reference service: what its /v1 wants as the bearer token
    (`capkit run --scenario openai-chat --api-key-env VAR`)."""
    from capkit.runs.openai_target import reference_token

    s = settings()
    click.echo(reference_token(target, username=username or f"{s.test_account_prefix}0000",
                               password=password or s.test_account_password))


@click.command()
def seed():
    """Create and seed the reference service's database (CAPKIT_DATABASE_URL); idempotent."""
    from capkit.service.server import prepare_database

    prepare_database(settings(seed_on_start=True))
    click.echo("database ready")


COMMANDS = (serve, seed, token)
