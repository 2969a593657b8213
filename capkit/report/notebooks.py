"""Where the report notebooks are: inside the installed package, or the checkout's ``notebooks/``.

A wheel carries them as ``capkit/_notebooks/*.ipynb`` (``setup.py`` maps the top-level
``notebooks/`` onto that package path at build time); a checkout (an editable install) reads the
top-level ``notebooks/`` itself, the one copy an analyst edits. ``docs/packaging.md`` says why.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from capkit.errors import ConfigError, InstallError

SHIPPED = "_notebooks"  # the package path of the notebooks in a built wheel


def notebook_dir() -> Path:
    """The folder of the report notebooks: the installed package's ``capkit/_notebooks``, else the
    checkout's top-level ``notebooks/``.

    Raises
    ------
    InstallError
        Neither holds a notebook (a wheel built without them, or a damaged installation).
    """
    shipped = resources.files("capkit").joinpath(SHIPPED)
    checkout = Path(__file__).resolve().parents[2]
    candidates = [Path(str(shipped))]
    if (checkout / "pyproject.toml").is_file():
        candidates.append(checkout / "notebooks")
    for folder in candidates:
        if any(folder.glob("*.ipynb")):
            return folder
    raise InstallError(f"capkit's report notebooks are missing (looked in {', '.join(map(str, candidates))}); "
                       "reinstall capkit (pip install --force-reinstall capkit)")


def notebook_paths(names, folder: Path | None = None) -> list[Path]:
    """The paths of the notebooks ``names`` in ``folder`` (default :func:`notebook_dir`).

    Raises
    ------
    InstallError
        One of them is not there: it names the missing ones and the folder.
    """
    folder = notebook_dir() if folder is None else folder
    paths = [folder / name for name in names]
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise InstallError(f"report notebook {', '.join(missing)} is missing from {folder}; "
                           "reinstall capkit (pip install --force-reinstall capkit)")
    return paths


ANALYST_KERNEL = "capkit"  # the kernel `capkit notebooks --register-kernel` registers for any Jupyter
ANALYST_KERNEL_DISPLAY = "Python (capkit)"


def copy_notebooks(folder: Path, *, force: bool = False, kernel: str | None = None) -> list[Path]:
    """Copy the report notebooks into ``folder`` (made if missing) for an analyst; return the copies.

    Parameters
    ----------
    folder : Path
    force : bool
        Overwrite notebooks of the same name already there; without it those are refused, so an
        analyst's edited copy is never lost.
    kernel : str, optional
        Name the copies' kernel (their ``kernelspec``) so that Jupyter opens them with it, e.g.
        :data:`ANALYST_KERNEL`; None keeps the notebooks' own (``python3``).

    Raises
    ------
    ConfigError
        Notebooks already there (without ``force``), or ``folder`` cannot be written.
    """
    import shutil

    import nbformat

    sources = sorted(notebook_dir().glob("*.ipynb"))
    there = [s.name for s in sources if (folder / s.name).exists()]
    if there and not force:
        raise ConfigError(f"{folder} already holds {', '.join(there)}: choose another folder, or --force to overwrite")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        copies = []
        for source in sources:
            copy = folder / source.name
            if kernel is None:
                shutil.copyfile(source, copy)
            else:
                nb = nbformat.read(str(source), as_version=4)
                nb.metadata["kernelspec"] = {"name": kernel, "display_name": ANALYST_KERNEL_DISPLAY,
                                             "language": "python"}
                nbformat.write(nb, str(copy))
            copies.append(copy)
    except OSError as exc:
        raise ConfigError(f"cannot write the notebooks to {folder}: {exc.strerror}") from None
    return copies


def register_kernel(name: str = ANALYST_KERNEL, display_name: str = ANALYST_KERNEL_DISPLAY) -> Path:
    """Register this environment's Python as the Jupyter kernel ``name`` for the user (what
    ``python -m ipykernel install --user --name capkit`` does); return the kernel's folder."""
    try:
        from ipykernel.kernelspec import install
    except ImportError:
        raise InstallError("ipykernel is not installed in capkit's environment: "
                           "pip install ipykernel, then register the kernel again") from None
    return Path(install(user=True, kernel_name=name, display_name=display_name))
