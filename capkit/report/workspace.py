"""Where a report is built: a hidden folder beside its final place and a kernel started in it."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from capkit.errors import ConfigError
from capkit.report.execute import fast_validation
from capkit.report.kernel import start_kernel, stop_kernel

STORE_ENV = "CAPKIT_REPORT_STORE_URL"  # the kernel reads the store here, never from a parameter


def absolute_sqlite(url: str) -> str:
    """Make a relative SQLite URL absolute (the kernel runs in the report folder)."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/") and url != prefix + ":memory:":
        return prefix + str(Path(url[len(prefix):]).resolve())
    return url


class Workspace:
    """Where a report is built: a hidden folder beside its final place and a kernel started in it.

    Open it first, check the inputs while the kernel imports (~2 s), then :func:`publish` into it.
    Closing stops the kernel and removes the folder unless :func:`publish` moved it into place,
    so a failure anywhere leaves no process and nothing half-written.
    """

    def __init__(self, reports_dir: Path, store_url: str):
        fast_validation()  # before anything of the report imports nbformat
        self.reports_dir = reports_dir.resolve()  # the kernel runs in the folder: no relative paths
        self._made_reports_dir = not self.reports_dir.exists()
        try:
            self.reports_dir.mkdir(parents=True, exist_ok=True)
            self.folder = Path(tempfile.mkdtemp(prefix=".report-", dir=self.reports_dir))
        except OSError as exc:
            raise ConfigError(f"cannot write reports to {self.reports_dir}: {exc.strerror}; "
                              "set CAPKIT_REPORTS_DIR to a folder you can write") from None
        self.km = None
        try:
            self.km = start_kernel(self.folder, {STORE_ENV: absolute_sqlite(store_url)})
        except BaseException:
            self.close()
            raise

    def stop_kernel(self) -> None:
        if self.km is not None:
            km, self.km = self.km, None
            stop_kernel(km)

    def close(self) -> None:
        self.stop_kernel()
        shutil.rmtree(self.folder, ignore_errors=True)
        if self._made_reports_dir and not any(self.reports_dir.iterdir()):
            self.reports_dir.rmdir()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


