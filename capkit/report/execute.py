"""Executing a notebook with papermill in a report kernel."""

from __future__ import annotations

import sys
from pathlib import Path

from capkit.errors import ReportError


def fast_validation() -> None:
    """Skip jsonschema's optional IRI-format checker: importing ``rfc3987_syntax`` compiles a
    grammar (~2 s per process) and no notebook field uses the ``iri`` format. Called before
    anything of the report imports nbformat (and with it jsonschema)."""
    if "jsonschema" not in sys.modules:
        sys.modules.setdefault("rfc3987_syntax", None)


def execute_notebook(notebook: Path, output: Path, parameters: dict, *, km) -> None:
    """Run one notebook with papermill in ``km`` (from :func:`start_kernel`; its owner shuts it
    down); raise :class:`ReportError` naming the failing cell."""
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    try:
        pm.execute_notebook(str(notebook), str(output), parameters=parameters, kernel_name="python3",
                            cwd=str(output.parent), progress_bar=False, report_mode=True, km=km,
                            # no save at every cell start and end (85 JSON dumps with validation per
                            # report, ~1 s on the critical path): papermill writes once at the end,
                            # and on a failing cell before raising
                            request_save_on_cell_execute=False)
    except PapermillExecutionError as exc:
        raise ReportError(notebook.name, exc.ename, str(exc.evalue).splitlines()[0] if exc.evalue else "") from None


