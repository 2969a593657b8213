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

    from capkit.analysis.present import figures as plots

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


def test_backtest_bars_draw_with_a_point_outside_its_interval_or_none_at_all(result):
    """A percentile interval need not hold its point (skewed draws; float noise of a degenerate
    one put a bound 1 ulp past it, and matplotlib refused the negative bar); NaN bounds draw none."""
    import copy
    import io

    from capkit.analysis.present import figures as plots

    shifted = copy.copy(result)
    shifted.backtest = copy.copy(result.backtest)
    pred = result.backtest.predictions.copy()
    pred.loc[pred.index[0], "low"] = pred.loc[pred.index[0], "predicted"] + 1e-12
    pred.loc[pred.index[1], ["low", "high"]] = float("nan")
    shifted.backtest.predictions = pred
    fig = plots.plot_backtest(shifted)
    fig.savefig(io.BytesIO(), format="png")
    assert len(fig.axes) >= 1
