"""PNG charts that render without a display: K-line charts and ``cerebro.plot`` figures.

Backtrader's plot package calls ``matplotlib.use("TkAgg")`` when it is imported, so
``cerebro.plot()`` fails on a server, in CI or over SSH ("Cannot load backend 'TKAgg'
... as 'headless' is currently running").  :func:`save_cerebro_plot` selects the
non-interactive Agg backend before Backtrader's plot package touches matplotlib and
saves the figure instead of showing it.  :func:`plot_klines` draws on a bare Agg
figure and never changes the process's backend.

matplotlib is an optional extra: ``pip install 'backtrader-alltick[plot]'``.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from .errors import ConfigError

logger: logging.Logger = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'backtrader-alltick[plot]'"
# Above this many bars, candle bodies are thinner than a pixel; a close line reads better.
MAX_CANDLES = 400
_CEREBRO_PLOT_ARGS = ("numfigs", "iplot", "start", "end", "use")
_UP, _DOWN, _LINE = "#26a69a", "#ef5350", "#1f77b4"


def _matplotlib() -> Any:
    try:
        return importlib.import_module("matplotlib")
    except ImportError:
        raise ConfigError(f"plotting needs matplotlib, which is not installed; run {INSTALL_HINT}") from None


def use_headless_backend() -> None:
    """Make ``matplotlib.pyplot`` and Backtrader's plot package use the Agg backend.

    Call it before ``cerebro.plot()`` on a machine without a display.  Safe to call
    more than once.
    """
    matplotlib = _matplotlib()
    if "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg")
    import matplotlib.pyplot as pyplot

    # Importing backtrader.plot now only tries to switch pyplot to TkAgg; headless the
    # switch fails and Backtrader ignores that, with a display it succeeds and is undone below.
    importlib.import_module("backtrader.plot")
    if pyplot.get_backend().lower() != "agg":
        pyplot.switch_backend("Agg")


def plot_klines(
    frame: pd.DataFrame,
    path: str | os.PathLike[str],
    *,
    title: str | None = None,
    candles: bool | None = None,
    dpi: int = 110,
) -> Path:
    """Write a K-line chart (candlesticks or a close line, with volume below) to a PNG file.

    Parameters
    ----------
    frame : pandas.DataFrame
        Bars indexed by time with ``open``, ``high``, ``low``, ``close`` and, optionally,
        ``volume`` columns, as :meth:`AllTickStore.fetch_klines` returns them.
    path : str or Path
        The PNG file to write; its folder must exist.
    title : str, optional
        Chart title; default "K-lines".
    candles : bool, optional
        Candlesticks (True) or a close line (False); default candlesticks up to
        ``MAX_CANDLES`` bars.
    dpi : int
        Resolution of the PNG.

    Returns
    -------
    Path
        The file written.

    Example::

        frame = store.fetch_klines("AAPL.US", "1m", count=50)
        plot_klines(frame, "aapl.png", title="AAPL 1-minute")
    """
    missing = [c for c in ("open", "high", "low", "close") if c not in frame.columns]
    if missing:
        raise ConfigError(f"frame must have open/high/low/close columns, was missing {', '.join(missing)}")
    if frame.empty:
        raise ConfigError("frame has no bars to plot; widen --from/--to or raise --count")
    _matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    has_volume = "volume" in frame.columns
    figure = Figure(figsize=(11, 6 if has_volume else 4.5))
    FigureCanvasAgg(figure)
    grid = figure.add_gridspec(
        2 if has_volume else 1, 1, height_ratios=[3, 1] if has_volume else [1], hspace=0.05
    )
    price = figure.add_subplot(grid[0])
    times = _naive_utc(frame.index)
    if candles if candles is not None else len(frame) <= MAX_CANDLES:
        _draw_candles(price, frame, times)
    else:
        price.plot(times, frame["close"].to_numpy(), color=_LINE, linewidth=1.0, label="close")
    price.set_title(title or "K-lines")
    price.set_ylabel("price")
    price.grid(True, alpha=0.3)
    if has_volume:
        volume = figure.add_subplot(grid[1], sharex=price)
        colors = [_UP if c >= o else _DOWN for o, c in zip(frame["open"], frame["close"])]
        volume.bar(times, frame["volume"].to_numpy(), width=_bar_width(times), color=colors)
        volume.set_ylabel("volume")
        volume.grid(True, alpha=0.3)
        price.tick_params(labelbottom=False)
        axis = volume
    else:
        axis = price
    axis.set_xlabel("bar close (UTC)")
    figure.autofmt_xdate()
    target = Path(path)
    figure.savefig(target, dpi=dpi, bbox_inches="tight")
    logger.info("wrote K-line chart of %d bars to %s", len(frame), target)
    return target


def save_cerebro_plot(
    cerebro: Any,
    path: str | os.PathLike[str],
    *,
    width: float = 14.0,
    height: float = 9.0,
    dpi: int = 100,
    **plot_kwargs: Any,
) -> Path:
    """Render ``cerebro.plot()`` of a finished run to a PNG file, with no display needed.

    The chart is Backtrader's own: price bars with buy/sell marks, the broker's cash
    and value (equity), trades and every plotted indicator.  ``plot_kwargs`` are
    ``cerebro.plot`` arguments (``start``, ``end``, ``numfigs``) and plot-scheme
    settings (``style="candle"``, ``volume=False``, ...).  With several strategies the first
    figure is saved.  This switches ``matplotlib.pyplot`` to the Agg backend.

    Example::

        cerebro.run()
        save_cerebro_plot(cerebro, "run.png", style="candle")
    """
    if not getattr(cerebro, "runstrats", None):
        raise ConfigError("cerebro has nothing to plot: call cerebro.run() before saving its chart")
    use_headless_backend()
    import matplotlib.pyplot as pyplot
    from backtrader.plot import Plot

    class _SavingPlot(Plot):
        def show(self) -> None:  # Backtrader calls show() after drawing; headless there is nothing to show
            pass

    run_kwargs = {key: plot_kwargs.pop(key) for key in _CEREBRO_PLOT_ARGS if key in plot_kwargs}
    run_kwargs.setdefault("iplot", False)
    # The rest are plot-scheme settings (style, barup, volume, ...), which only the plotter takes.
    groups = cerebro.plot(plotter=_SavingPlot(**plot_kwargs), **run_kwargs) or []
    figures = [figure for group in groups if group for figure in group]
    if not figures:
        exactbars = getattr(cerebro.p, "exactbars", None)
        raise ConfigError(
            "cerebro has nothing to plot: it needs at least one bar and exactbars off "
            f"(exactbars=0), was exactbars={exactbars!r}"
        )
    _show_dates_below(figures[0])
    _fit_markers(figures[0])
    target = Path(path)
    try:
        figures[0].set_size_inches(width, height)
        figures[0].savefig(target, dpi=dpi, bbox_inches="tight")
    finally:
        for figure in figures:
            pyplot.close(figure)
    logger.info("wrote Backtrader chart to %s", target)
    return target


def _show_dates_below(figure: Any) -> None:
    # Backtrader hides every axis' date labels, then shows the bottom axis' ones label by label;
    # with matplotlib 3.x the ticks it showed are replaced when the axes rescale, so no dates
    # remain.  Switching the labels on per axis survives the rescale.
    axes = [axis for axis in figure.axes if axis.get_visible()]
    if axes:
        bottom = min(axes, key=lambda axis: axis.get_position().y0)
        bottom.tick_params(axis="x", which="major", labelbottom=True, labelrotation=15)


def _fit_markers(figure: Any) -> None:
    # Backtrader sets each axis' y range from the bars, so buy/sell marks drawn beyond the
    # bars (BuySell with barplot=True) can fall outside it; widen the range to every mark.
    import numpy as np

    for axis in figure.axes:
        marks = [
            line
            for line in axis.get_lines()
            if line.get_linestyle() in ("None", "", " ") and line.get_marker() not in (None, "None", "")
        ]
        columns = [np.asarray(line.get_ydata(), dtype=float) for line in marks]
        values = np.concatenate([v[np.isfinite(v)] for v in columns]) if columns else np.array([])
        if not values.size:
            continue
        low, high = axis.get_ylim()
        pad = (max(high, values.max()) - min(low, values.min())) * 0.02
        if values.min() < low or values.max() > high:
            axis.set_ylim(min(low, values.min() - pad), max(high, values.max() + pad))


def _naive_utc(index: pd.Index) -> Any:
    times = pd.DatetimeIndex(index)
    if times.tz is not None:
        times = times.tz_convert("UTC").tz_localize(None)
    return times.to_pydatetime()


def _bar_width(times: Any) -> float:
    # matplotlib dates are in days; leave a gap of a fifth of the bar spacing.
    gaps = [(b - a).total_seconds() for a, b in zip(times, times[1:]) if b > a]
    spacing = min(gaps) / 86_400 if gaps else 1 / 1440
    return spacing * 0.8


def _draw_candles(axis: Any, frame: pd.DataFrame, times: Any) -> None:
    width = _bar_width(times)
    opens, highs = frame["open"].to_numpy(), frame["high"].to_numpy()
    lows, closes = frame["low"].to_numpy(), frame["close"].to_numpy()
    colors = [_UP if c >= o else _DOWN for o, c in zip(opens, closes)]
    axis.vlines(times, lows, highs, colors=colors, linewidth=0.8)
    bottoms = [min(o, c) for o, c in zip(opens, closes)]
    # A doji still gets a visible body: at least a thousandth of the price range.
    floor = (highs.max() - lows.min()) / 1000 or 1e-9
    heights = [max(abs(c - o), floor) for o, c in zip(opens, closes)]
    axis.bar(times, heights, width=width, bottom=bottoms, color=colors, edgecolor=colors, linewidth=0.5)
