"""How every report figure is laid out and lettered: legible on a laptop and in print.

Fonts are set per figure (≥ 9 pt at the saved size) and put back afterwards, margins are fixed in
inches (see :func:`layout`), and a figure comes back drawn-once-ready (see :func:`report_figure`).
"""

from __future__ import annotations

import functools
from pathlib import Path

import matplotlib

# text sizes in points at the saved size (figures are at most 10 in wide, shown at 100 dpi)
FONTS = {"font.size": 10.0, "axes.titlesize": 11.0, "axes.labelsize": 10.0, "xtick.labelsize": 9.0,
         "ytick.labelsize": 9.0, "legend.fontsize": 9.0, "axes.titley": 1.0}
MAX_WIDTH_IN = 10.0  # wider figures are scaled down by the page, and their text with them


def layout(fig, *, left: float = 0.9, right: float = 0.2, bottom: float = 0.6, top: float = 0.4,
           gap: float = 0.9, vgap: float = 0.8) -> None:
    """Margins in inches (room for tick labels, axis label and title) instead of ``tight_layout``,
    which draws the whole figure once more to measure its text: ~1 s of a report's figures.
    Handles a grid of panels (rows and columns of the first axes' grid)."""
    width, height = fig.get_size_inches()
    spec = fig.axes[0].get_subplotspec() if fig.axes else None
    nrows, ncols = spec.get_gridspec().get_geometry() if spec is not None else (1, 1)
    axes_w = (width - left - right - gap * (ncols - 1)) / ncols
    axes_h = (height - top - bottom - vgap * (nrows - 1)) / nrows
    fig.subplots_adjust(left=left / width, right=1 - right / width, bottom=bottom / height,
                        top=1 - top / height, wspace=gap / max(axes_w, 1e-6), hspace=vgap / max(axes_h, 1e-6))


def report_figure(build=None, **margins):
    """Decorator of a report figure: :data:`FONTS` while it is built, :func:`layout` with ``margins``.

    Only these rcParams are set and put back: ``plt.rc_context`` would also restore
    ``interactive``, which the inline backend switches on with the first figure, and later
    figures would no longer be shown. Fixed titles (``axes.titley``) spare matplotlib measuring
    every axis on each draw to place them.
    """
    def wrap(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            saved = {k: matplotlib.rcParams[k] for k in FONTS}
            matplotlib.rcParams.update(FONTS)
            try:
                fig = fn(*args, **kwargs)
                if fig is not None:
                    layout(fig, **margins)
            finally:
                matplotlib.rcParams.update(saved)
            if fig is not None:
                # Drawn once, when it is shown or saved. Agg's draw_idle draws at once, and IPython's
                # post-execute hook (pyplot.draw_all) calls it for every stale figure just before the
                # inline backend renders the same figure to show it: a second full draw of each figure.
                # Any later change to the figure marks it stale again.
                fig.stale = False
            return fig
        return wrapper
    return wrap(build) if build is not None else wrap


def save_figure(fig, folder, name: str, *, dpi: int = 150) -> list[Path]:
    """``folder/name.png`` and ``folder/name.svg`` (nothing when ``folder`` is None); returns the paths."""
    if fig is None or folder is None:
        return []
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{name}.png", out / f"{name}.svg"]
    saved = {k: matplotlib.rcParams[k] for k in ("svg.fonttype",)}
    matplotlib.rcParams["svg.fonttype"] = "none"  # text stays text in the SVG (searchable, sharp in print)
    try:
        fig.savefig(paths[0], dpi=dpi)
        fig.savefig(paths[1])
    finally:
        matplotlib.rcParams.update(saved)
    fig.stale = False
    return paths
