"""The one error hierarchy of capkit.

A :class:`CapkitError` is a user mistake or an environment problem: the CLI prints its
message as one line and exits non-zero. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class CapkitError(Exception):
    """Base class: ``str(err)`` is one line naming what is wrong and how to fix it."""

    exit_code = 2


class ConfigError(CapkitError):
    """A setting, profile, stage plan or option that cannot be used."""


class ParameterError(ConfigError):
    """A notebook or analysis parameter of the wrong type or with a value that makes no sense."""


class GateFailure(CapkitError):
    """`capkit check`: at least one CI gate was breached (exit code 1)."""

    exit_code = 1


class StoreError(CapkitError):
    """The results store cannot be opened, read or written."""

    def __init__(self, url: str, reason: str):
        self.url = url
        self.reason = reason
        super().__init__(f"results store {url} cannot be used: {reason}")


class RunNotFoundError(CapkitError):
    """A run id that is not in the store."""

    def __init__(self, run_id: str, known: list[str] | None = None):
        self.run_id = run_id
        hint = f" (latest: {', '.join(known[:3])})" if known else " (the store holds no runs yet)"
        super().__init__(f"run {run_id!r} is not in the results store{hint}; `capkit runs` lists them")


class InsufficientDataError(CapkitError):
    """Too few clean steps or samples for a model."""


class LoadError(CapkitError):
    """The load generator could not start or died."""


class ServiceError(CapkitError):
    """The service under test could not be started or does not answer."""


class InstallError(CapkitError):
    """A part of capkit's installation is missing: a report notebook, the Jupyter kernel."""


class ReportError(CapkitError):
    """A report notebook failed; carries the notebook and the cell's error."""

    def __init__(self, notebook: str, ename: str, evalue: str):
        self.notebook = notebook
        self.ename = ename
        self.evalue = evalue
        super().__init__(f"report notebook {notebook} failed: {ename}: {evalue}")


def redact_url(url: str) -> str:
    """Return ``url`` with any password replaced by ``***`` (safe for logs, store and reports)."""
    from urllib.parse import urlsplit, urlunsplit

    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable url>"
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))
