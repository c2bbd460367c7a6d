"""``DataQuality``: a Backtrader analyzer that runs the data-quality checks on every feed of a run.

Thin glue: it collects each feed's bars as the run delivers them and hands them to
:mod:`backtrader_alltick.quality` when the run stops.  Works on any Backtrader feed
(``PandasData``, CSV feeds, ``AllTickData``); live ``AllTickData`` feeds add their
trade counters (``data.stats``).
"""

from __future__ import annotations

from datetime import date, datetime, time, timezone
from typing import Any

import backtrader as bt
import numpy as np

from .. import timeframes
from ..errors import AllTickError, BarLengthWarning, ConfigError
from ..feed import AllTickData, num_to_ms
from ..markets import MINUTE_MS, Market
from ..notices import warn_user
from ..symbols import parse_symbol
from ..timeframes import Period, grid_period
from .bar_series import series_from_ends
from .checks import QualityReport, Thresholds, check_bars, live_counts


class DataQuality(bt.Analyzer):
    """Data-quality report per feed; ``get_analysis()[name]`` is what ``alltick-bt quality --json`` prints.

    Params:

    - ``market`` (None): the calendar for feeds that are not ``AllTickData``: a
      :class:`~backtrader_alltick.markets.Market`, a symbol such as ``"AAPL.US"`` whose market to
      use, or a dict of those by feed name.  None: ``AllTickData`` knows its market; other feeds
      are read by their name (``cerebro.adddata(data, name="BTCUSDT")``).
    - ``outlier_z`` (10.0), ``stale_bars`` (15), ``volume_z`` (6.0): the thresholds, see
      :class:`~backtrader_alltick.quality.checks.Thresholds`.

    Example::

        cerebro.addanalyzer(backtrader_alltick.DataQuality)
        strategy = cerebro.run()[0]
        print(strategy.analyzers.dataquality.get_analysis()["AAPL.US"]["counts"])
    """

    params: tuple[tuple[str, object], ...] = (
        ("market", None),
        ("outlier_z", 10.0),
        ("stale_bars", 15),
        ("volume_z", 6.0),
    )

    def start(self) -> None:
        self.thresholds: Thresholds = Thresholds(self.p.outlier_z, self.p.stale_bars, self.p.volume_z)
        self.reports: dict[str, QualityReport] = {}
        # Resolved before the run, so a feed the checks cannot read fails now, not after hours of bars.
        self._feeds: list[tuple[str, Market, Period] | None] = []
        for index, data in enumerate(self.datas):
            name = feed_name(data, index)
            if isinstance(data, AllTickData) and data.inst is None:
                self._feeds.append(None)  # a symbol that does not parse: the feed reports it, no bars come
                continue
            try:
                period = grid_period(data._timeframe, data._compression, "quality checks")
            except ConfigError as e:
                raise ConfigError(f"DataQuality cannot check feed {name!r}: {e}") from None
            self._feeds.append((name, self._market(data, name), period))
        self._rows: list[list[tuple[float, ...]]] = [[] for _ in self.datas]
        self._seen = [0] * len(self.datas)

    def next(self) -> None:
        for index, data in enumerate(self.datas):
            if len(data) > self._seen[index]:  # a feed that delivered no bar this cycle is skipped
                self._seen[index] = len(data)
                self._rows[index].append(
                    (data.datetime[0], data.open[0], data.high[0], data.low[0], data.close[0], data.volume[0])
                )

    def stop(self) -> None:
        for data, feed, rows in zip(self.datas, self._feeds, self._rows):
            if feed is None:
                continue
            name, market, period = feed
            columns = np.array(rows, dtype=float).reshape(-1, 6)
            _check_bar_length(name, data, period, columns[:, 0])
            if period.is_intraday:
                end_ms = [num_to_ms(num) for num in columns[:, 0]]
            else:  # stamped with the trading date (at sessionend, in the feed's tz): pass the date
                end_ms = [_date_ms(data.num2date(num).date()) for num in columns[:, 0]]
            opens, highs, lows, closes, volumes = columns[:, 1:].T
            series = series_from_ends(end_ms, opens, highs, lows, closes, volumes, period, market)
            report = check_bars(series, market, period, name, self.thresholds)
            if isinstance(getattr(data, "stats", None), dict) and data.islive():
                report.live = live_counts(data.stats)
            self.reports[name] = report
            self.rets[name] = report.to_dict()

    def _market(self, data: bt.AbstractDataBase, name: str) -> Market:
        if isinstance(data, AllTickData) and data.inst is not None:
            return data.inst.market
        given: Any = self.p.market
        if isinstance(given, dict):
            given = given.get(name)
        if isinstance(given, Market):
            return given
        try:
            return parse_symbol(given if given is not None else name).market
        except AllTickError:
            raise ConfigError(
                f"DataQuality needs the market of feed {name!r}: pass market= a Market, a "
                f"symbol such as 'AAPL.US', or a dict of those by feed name, was "
                f"{self.p.market!r}"
            ) from None


def _check_bar_length(name: str, data: bt.AbstractDataBase, period: Period, stamps: np.ndarray) -> None:
    # Bars cannot lie closer together than they are long.  A feed that says otherwise was told the
    # wrong timeframe (PandasData and CSV feeds default to daily bars), and every check would read
    # its bars on the wrong grid: intraday bars as daily ones are "repeated timestamps".
    if len(stamps) < 3:
        return
    spacing = np.diff([num_to_ms(num) for num in stamps])
    spacing = spacing[spacing > 0]
    if not len(spacing):
        return
    typical = int(np.median(spacing))
    if typical >= period.millis / 2:
        return
    minutes = max(1, round(typical / MINUTE_MS))
    shown = timeframes.TIMEFRAME_NAMES.get(data._timeframe, data._timeframe)
    warn_user(
        f"DataQuality: feed {name!r} says its bars are {period.name} (timeframe {shown}, compression "
        f"{data._compression}), but they lie about {minutes} minute(s) apart, so the report reads them "
        f"on the wrong grid; give the feed its bar length, e.g. bt.feeds.PandasData(dataname=frame, "
        f"timeframe=bt.TimeFrame.Minutes, compression={minutes}) (PandasData and CSV feeds default to "
        f"daily bars)",
        BarLengthWarning,
    )


def _date_ms(day: date) -> int:
    return int(datetime.combine(day, time(), tzinfo=timezone.utc).timestamp() * 1000)


def feed_name(data: bt.AbstractDataBase, index: int) -> str:
    """The name a feed goes by in reports: its Cerebro name, its symbol, or ``data<index>``."""
    if getattr(data, "_name", ""):
        return data._name
    inst = getattr(data, "inst", None)
    if inst is not None:
        return inst.symbol
    dataname = getattr(data.p, "dataname", None)
    return dataname if isinstance(dataname, str) else f"data{index}"
