"""Report kernels: a Jupyter kernel over local IPC sockets, started early with the analysis imports."""

from __future__ import annotations

import os
import sys
import tempfile
import uuid
from functools import lru_cache
from pathlib import Path

from capkit.errors import InstallError

KERNEL_NAME = "python3"  # the environment's own Python (ipykernel's native kernel)

# Report figures lay themselves out (``tight_layout``); the inline backend's default
# ``bbox_inches="tight"`` would draw every figure once more to crop it (~1 s per report).
KERNEL_ARGS = ("--InlineBackend.print_figure_kwargs={'bbox_inches': None}",)


@lru_cache(maxsize=1)
def kernel_manager_class():
    """The kernel manager class, built on first use (importing jupyter_client costs ~0.2 s)."""
    from jupyter_client.manager import AsyncKernelManager

    class LocalKernelManager(AsyncKernelManager):
        """A kernel reached over local IPC sockets instead of TCP (no network exposure, no warning),
        started with :data:`KERNEL_ARGS`.

        Each kernel gets its own absolute socket path: jupyter_client's default is the relative
        ``kernel-ipc-<n>``, which two kernels started together by one process share (their messages
        then cross and fail the signature check), and a short one, for the 107-byte limit of a Unix
        socket path."""

        def __init__(self, **kwargs):
            kwargs.setdefault("transport", "ipc")
            kwargs.setdefault("ip", os.path.join(tempfile.gettempdir(), f"capkit-kernel-{uuid.uuid4().hex[:12]}-ipc"))
            super().__init__(**kwargs)

        def format_kernel_cmd(self, extra_arguments=None):
            return super().format_kernel_cmd(list(extra_arguments or []) + list(KERNEL_ARGS))

    return LocalKernelManager


# What a report kernel imports while it starts (~2 s): the parent checks the runs, imports papermill
# and merges the pages meanwhile (see :class:`Workspace`).
PRELOAD = "import matplotlib.pyplot, capkit.analysis.present.figures"


def check_kernel() -> None:
    """Raise :class:`InstallError` unless the report kernel is installed (before a run, not after it)."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        KernelSpecManager().get_kernel_spec(KERNEL_NAME)
    except NoSuchKernel:
        raise _no_kernel() from None


def _no_kernel() -> InstallError:
    return InstallError(f"the Jupyter kernel {KERNEL_NAME!r} that runs the report notebooks is not installed: "
                        f"{sys.executable} -m pip install ipykernel")


def start_kernel(cwd: Path, env: dict[str, str]):
    """Launch a report kernel now (it preloads :data:`PRELOAD`); hand it to :func:`execute_notebook`
    and shut it down with :func:`stop_kernel`."""
    from jupyter_client.kernelspec import NoSuchKernel
    from jupyter_core.utils import run_sync

    km = kernel_manager_class()(kernel_name=KERNEL_NAME)
    try:
        run_sync(km.start_kernel)(extra_arguments=[f"--IPKernelApp.exec_lines={PRELOAD}"],
                                  env={**os.environ, **env}, cwd=str(cwd))
    except NoSuchKernel:
        raise _no_kernel() from None
    return km


def stop_kernel(km) -> None:
    from jupyter_core.utils import run_sync

    if run_sync(km.is_alive)():
        run_sync(km.shutdown_kernel)(now=True)  # also removes its connection file and sockets
    else:
        run_sync(km.cleanup_resources)()


