"""Report figures are drawn once, when shown."""

import pytest


@pytest.mark.parametrize("draw", ["plot_resource_fits", "plot_usl", "plot_latency_model", "plot_backtest"])
def test_report_figures_are_drawn_once_when_shown(result, draw):
    """IPython's post-execute hook (pyplot.draw_all) draws every stale figure, and Agg draws at
    once, just before the inline backend draws the same figure to show it: report figures come
    back up to date, so only the showing draws them. A later change marks them stale again."""
    import io

    import matplotlib
    import matplotlib.pyplot as plt

    from capkit.analysis import plots

    fig = getattr(plots, draw)(result.resources if draw == "plot_resource_fits" else result)
    draws = []
    fig.canvas.mpl_connect("draw_event", draws.append)
    interactive = matplotlib.is_interactive()
    matplotlib.interactive(True)  # as in a notebook once the inline backend is active
    try:
        plt.draw_all()
        assert draws == []
        fig.savefig(io.BytesIO(), format="png")  # what showing it does
        assert len(draws) == 1
        fig.axes[0].set_xlim(0, 10)
        plt.draw_all()
        assert len(draws) == 2
    finally:
        matplotlib.interactive(interactive)
        plt.close(fig)
