"""The `capkit` command: parses, calls the library, prints. One module per command group:
:mod:`~capkit.cli.measure` (plan, run, worker), :mod:`~capkit.cli.results` (report, check, usl),
:mod:`~capkit.cli.scale` (scale),
:mod:`~capkit.cli.store` (runs, load, import, db-create), :mod:`~capkit.cli.service` (serve, seed, token)."""

from __future__ import annotations

import gc
import sys

import click

from capkit.cli import measure, results, scale, service, store
from capkit.errors import CapkitError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="capkit")
def cli():
    """Measured capacity planning: stepped load, resource metrics, capacity models, reports."""


for _module in (measure, results, scale, store, service):
    for _command in _module.COMMANDS:
        cli.add_command(_command)


def main(argv: list[str] | None = None) -> int:
    """Entry point: user mistakes print one line and exit non-zero; bugs keep their traceback."""
    try:
        cli.main(args=argv, prog_name="capkit", standalone_mode=False)
    except CapkitError as exc:
        click.echo(f"capkit: error: {exc}", err=True)
        return exc.exit_code
    except (click.exceptions.Abort, KeyboardInterrupt):
        click.echo("capkit: interrupted", err=True)
        return 130
    except click.ClickException as exc:
        click.echo(f"capkit: error: {exc.format_message()} (see capkit {' '.join(_command_of(argv))} --help)",
                   err=True)
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return exc.exit_code
    return 0


def _command_of(argv) -> list[str]:
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
