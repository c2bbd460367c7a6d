"""Data-quality checks over bars: what is missing, repeated, impossible or suspicious.

Pure: bars and a :class:`~backtrader_alltick.markets.Market` in, a :class:`QualityReport`
out; no I/O, no clock.  The calendar decides where bars are expected (``open_spans``), so
nights, weekends and holidays are never reported as gaps.  Statistical checks use robust
statistics (median and MAD) so that the flaws they look for do not hide themselves.

This module runs them; the report and its findings are in :mod:`.report`, the checks by family in
:mod:`.calendar_checks`, :mod:`.value_checks` and :mod:`.statistical_checks`.

Bars are identified by their close stamp (epoch ms, DESIGN.md "Bar timestamps").
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from .. import timeframes
from ..errors import ConfigError
from ..markets import Market
from ..records import Kline
from ..timeframes import Period
from .bar_series import BarSeries, series_from_ends, series_from_klines
from .calendar_checks import (
    expected_starts,
    follows_previous,
    missing_bars,
    outside_sessions,
    period_closes,
    repeated_timestamps,
)
from .report import KINDS, LIVE_COUNTS, Finding, QualityReport, Thresholds, live_counts
from .statistical_checks import (
    MAD_TO_SIGMA,
    MIN_STATISTICS_SAMPLE,
    outlier_returns,
    stale_runs,
    volume_spikes,
)
from .value_checks import impossible_values, ohlc_inconsistent, repeated_bars

__all__ = [
    "KINDS",
    "LIVE_COUNTS",
    "MAD_TO_SIGMA",
    "MIN_STATISTICS_SAMPLE",
    "BarSeries",
    "Finding",
    "QualityReport",
    "Thresholds",
    "check_bars",
    "check_frame",
    "check_klines",
    "live_counts",
    "series_from_frame",
]


def check_klines(
    klines: Sequence[Kline],
    market: Market,
    period: Period | str | None = None,
    symbol: str | None = None,
    thresholds: Thresholds | None = None,
    span: tuple[int, int] | None = None,
) -> QualityReport:
    """Check K-line records; ``period`` and ``symbol`` default to those of the records."""
    if period is None:
        period = klines[0].period if klines else "1m"
    if symbol is None:
        symbol = klines[0].symbol if klines else ""
    return check_bars(series_from_klines(klines), market, period, symbol, thresholds, span)


def check_frame(
    frame: pd.DataFrame,
    market: Market,
    period: Period | str,
    symbol: str = "",
    thresholds: Thresholds | None = None,
    span: tuple[int, int] | None = None,
) -> QualityReport:
    """Check an OHLCV DataFrame indexed by bar close time (``fetch_klines``' shape; naive means UTC);
    ``span`` as for :func:`check_bars`."""
    period = timeframes.as_period(period, "quality checks")
    return check_bars(series_from_frame(frame, market, period), market, period, symbol, thresholds, span)


def series_from_frame(frame: pd.DataFrame, market: Market, period: Period | str) -> BarSeries:
    """The bars of an OHLCV DataFrame indexed by bar close time, or by trading date for daily and
    longer bars (``fetch_klines``' shape; naive means UTC), as parallel arrays."""
    missing = [name for name in ("open", "high", "low", "close") if name not in frame.columns]
    if missing:
        raise ConfigError(
            f"the frame needs open, high, low and close columns, was missing {', '.join(missing)}"
        )
    if not isinstance(frame.index, pd.DatetimeIndex):
        raise ConfigError(
            f"the frame must be indexed by bar close time (a DatetimeIndex), "
            f"was {type(frame.index).__name__}; use frame.set_index('datetime')"
        )
    index = frame.index
    index = index.tz_localize("UTC") if index.tz is None else index.tz_convert("UTC")
    # Counted from the epoch rather than with as_unit("ms"), which pandas 1.5 lacks.
    end_ms = np.asarray((index - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(milliseconds=1), dtype=np.int64)
    volume = frame["volume"] if "volume" in frame.columns else np.zeros(len(frame))
    return series_from_ends(
        end_ms,
        frame["open"],
        frame["high"],
        frame["low"],
        frame["close"],
        volume,
        timeframes.as_period(period, "quality checks"),
        market,
    )


def check_bars(
    series: BarSeries,
    market: Market,
    period: Period | str,
    symbol: str = "",
    thresholds: Thresholds | None = None,
    span: tuple[int, int] | None = None,
) -> QualityReport:
    """Run every check over ``series`` and return the findings, ordered by bar time.

    ``span``: the intraday range that was asked for, as (first bar's start, last bar's close) in
    epoch ms; bars missing before the first bar or after the last one inside it are reported too.
    Without it only the gaps between the bars are known.
    """
    period = timeframes.as_period(period, "quality checks")
    thresholds = thresholds or Thresholds()
    order = np.argsort(series.end, kind="stable")
    bars = BarSeries(*(column[order] for column in series))
    report = QualityReport(
        symbol,
        period.name,
        market.name,
        len(bars.end),
        int(bars.end[0]) if len(bars.end) else None,
        int(bars.end[-1]) if len(bars.end) else None,
        thresholds,
    )
    if not len(bars.end):
        return report
    findings = repeated_timestamps(bars)
    unique = np.concatenate((bars.end[1:] != bars.end[:-1], [True]))  # a later repeat wins, as on the wire
    bars = BarSeries(*(column[unique] for column in bars))
    closes_at = period_closes(bars, market, period)
    expected = expected_starts(bars, closes_at, market, period, span)
    findings += missing_bars(bars, expected, market, period)
    findings += outside_sessions(bars, closes_at, market)
    valid, impossible = impossible_values(bars)
    findings += impossible
    findings += ohlc_inconsistent(bars, valid)
    findings += repeated_bars(bars, valid)
    findings += outlier_returns(
        bars, valid, follows_previous(bars, closes_at, expected, period), thresholds.outlier_z
    )
    findings += stale_runs(bars, valid, thresholds.stale_bars)
    findings += volume_spikes(bars, valid, thresholds.volume_z)
    report.findings = sorted(findings, key=lambda f: (f.time, KINDS.index(f.kind)))
    return report
