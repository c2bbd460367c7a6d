"""Data-quality checks over bars: what is missing, repeated, impossible or suspicious.

Pure: bars and a :class:`~backtrader_alltick.markets.Market` in, a :class:`QualityReport`
out; no I/O, no clock.  The calendar decides where bars are expected (``open_spans``), so
nights, weekends and holidays are never reported as gaps.  Statistical checks use robust
statistics (median and MAD) so that the flaws they look for do not hide themselves.

Bars are identified by their close stamp (epoch ms, DESIGN.md "Bar timestamps").
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .. import timeframes
from ..errors import ConfigError
from ..markets import Market
from ..records import Kline, format_utc
from ..timeframes import Period
from .bar_series import BarSeries, series_from_ends, series_from_klines

# Scales a median absolute deviation to a standard deviation for normal data.
MAD_TO_SIGMA = 1.4826
# Fewer returns or volumes than this give no usable median and MAD (a few close values make the
# spread tiny and every ordinary move an outlier): the statistical checks then report nothing.
MIN_STATISTICS_SAMPLE = 10
KINDS = (
    "missing_bars",
    "outside_session",
    "repeated_timestamp",
    "repeated_bar",
    "impossible_value",
    "ohlc_inconsistent",
    "outlier_return",
    "stale_run",
    "volume_spike",
)
# What a live feed counts (sources.COUNTERS) and how the report names it.
LIVE_COUNTS = {
    "ticks": "trades",
    "late_ticks": "late_trades",
    "duplicates": "duplicate_trades",
    "reconnects": "reconnects",
    "bars_rest": "bars_from_rest",
    "bars_live": "bars_from_trades",
    "overflows": "inbox_overflows",
    "offhours_trades": "trades_left_out_offhours",
    "offhours_bars": "bars_left_out_offhours",
    "held_bars": "bars_held_for_the_stream",
}


@dataclass(frozen=True)
class Thresholds:
    """The limits the statistical checks use; every report states them.

    ``outlier_z``: robust z-score of a bar's log return (median/MAD over the series)
    above which the return is an outlier.  ``stale_bars``: this many bars in a row with
    the same close are a stale run.  ``volume_z``: robust z-score of log volume above
    which a bar is a volume spike.

    Example::

        check_klines(klines, US_STOCKS, thresholds=Thresholds(outlier_z=8))
    """

    outlier_z: float = 10.0
    stale_bars: int = 15
    volume_z: float = 6.0

    def __post_init__(self) -> None:
        for name in ("outlier_z", "volume_z"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ConfigError(f"{name} must be a number above 0, was {value!r}")
        if not (isinstance(self.stale_bars, int) and self.stale_bars >= 2):
            raise ConfigError(f"stale_bars must be a whole number of 2 or more, was {self.stale_bars!r}")


@dataclass(frozen=True)
class Finding:
    """One flaw: ``time`` is the close stamp of the (first) bar concerned, ``end`` of the last."""

    kind: str
    time: int
    detail: str
    end: int | None = None
    bars: int = 1

    def to_dict(self) -> dict[str, Any]:
        end = self.time if self.end is None else self.end
        return {
            "kind": self.kind,
            "time": format_utc(self.time),
            "end": format_utc(end),
            "time_ms": self.time,
            "end_ms": end,
            "bars": self.bars,
            "detail": self.detail,
        }


@dataclass
class QualityReport:
    """What :func:`check_bars` found in one series of bars.

    ``counts`` holds, per kind, how many bars are concerned (gaps: bars missing);
    ``live`` the counters of a live feed, when there was one.

    Example::

        frame = store.fetch_klines("BTCUSDT", "1m", count=1000)
        report = check_frame(frame, parse_symbol("BTCUSDT").market, "1m", "BTCUSDT")
        print(report.counts["missing_bars"], report.to_dict()["findings"][:3])
    """

    symbol: str
    period: str
    market: str
    bars: int
    first: int | None
    last: int | None
    thresholds: Thresholds
    findings: list[Finding] = field(default_factory=list)
    live: dict[str, int] | None = None

    @property
    def counts(self) -> dict[str, int]:
        counts = Counter({kind: 0 for kind in KINDS})
        for finding in self.findings:
            counts[finding.kind] += finding.bars
        return dict(counts)

    @property
    def is_clean(self) -> bool:
        return not self.findings

    def to_dict(self) -> dict[str, Any]:
        """The report as one JSON-ready object (what ``alltick-bt quality --json`` prints)."""
        counts: dict[str, int] = self.counts
        if self.live is not None:
            counts = {**counts, **self.live}
        return {
            "symbol": self.symbol,
            "period": self.period,
            "market": self.market,
            "bars": self.bars,
            "first": format_utc(self.first) if self.first is not None else None,
            "last": format_utc(self.last) if self.last is not None else None,
            "thresholds": asdict(self.thresholds),
            "counts": counts,
            "findings": [finding.to_dict() for finding in self.findings],
        }


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
    findings = _repeated_timestamps(bars)
    unique = np.concatenate((bars.end[1:] != bars.end[:-1], [True]))  # a later repeat wins, as on the wire
    bars = BarSeries(*(column[unique] for column in bars))
    closes_at = _period_closes(bars, market, period)
    expected = _expected_starts(bars, closes_at, market, period, span)
    findings += _missing_bars(bars, expected, market, period)
    findings += _outside_sessions(bars, closes_at, market)
    valid, impossible = _impossible_values(bars)
    findings += impossible
    findings += _ohlc_inconsistent(bars, valid)
    findings += _repeated_bars(bars, valid)
    findings += _outlier_returns(
        bars, valid, _follows_previous(bars, closes_at, expected, period), thresholds.outlier_z
    )
    findings += _stale_runs(bars, valid, thresholds.stale_bars)
    findings += _volume_spikes(bars, valid, thresholds.volume_z)
    report.findings = sorted(findings, key=lambda f: (f.time, KINDS.index(f.kind)))
    return report


def live_counts(stats: dict[str, int]) -> dict[str, int]:
    """A live feed's ``data.stats`` in the report's words, with the number of REST/stream seams."""
    counts = {name: int(stats.get(counter, 0)) for counter, name in LIVE_COUNTS.items()}
    counts["seams"] = 1 + counts["reconnects"] if counts["bars_from_trades"] or counts["reconnects"] else 0
    return counts


# -- The checks ----------------------------------------------------------------------------------


def _repeated_timestamps(bars: BarSeries) -> list[Finding]:
    repeats = np.flatnonzero(bars.end[1:] == bars.end[:-1]) + 1
    return [
        Finding("repeated_timestamp", int(bars.end[i]), "another bar has the same close time")
        for i in repeats
    ]


def _period_closes(bars: BarSeries, market: Market, period: Period) -> np.ndarray:
    # Where each bar's period ends; a daily bar's stamp may be a plain date, before its own start.
    if period.is_intraday:
        return bars.start + period.millis
    return np.array(
        [timeframes.next_start(period, int(start), market) for start in bars.start], dtype=np.int64
    )


def _expected_starts(
    bars: BarSeries, closes_at: np.ndarray, market: Market, period: Period, span: tuple[int, int] | None
) -> np.ndarray:
    first, last = int(bars.start[0]), int(closes_at.max())
    if period.is_intraday:
        if span is not None:
            first, last = min(first, timeframes.bar_start(period, span[0], market)), max(last, span[1])
        step = period.millis
        grids = [
            np.arange(timeframes.bar_start(period, lo, market), hi, step, dtype=np.int64)
            for lo, hi in market.open_spans(first, last)
        ]
        if not grids:
            return np.empty(0, dtype=np.int64)
        starts = np.concatenate(grids)
        # Spans come in order; two spans can share a bar (a lunch break inside an hour): keep it once.
        starts = starts[np.concatenate((np.array([True]), np.diff(starts) > 0))]
        return starts[(starts >= first) & (starts + step <= last)]
    expected, start = [], timeframes.bar_start(period, first, market)
    while start < last:
        following = timeframes.next_start(period, start, market)
        if start >= first and market.open_spans(start, following):
            expected.append(start)
        start = following
    return np.array(expected, dtype=np.int64)


def _follows_previous(
    bars: BarSeries, closes_at: np.ndarray, expected: np.ndarray, period: Period
) -> np.ndarray:
    # True where a bar directly follows the one before: a return across a night, a weekend or a gap
    # is not one bar's move.  Daily bars follow across weekends and holidays (nothing was expected).
    if period.is_intraday:
        follows = bars.start[1:] == closes_at[:-1]
    else:
        position = np.searchsorted(expected, bars.start)
        follows = position[1:] == position[:-1] + 1
    return np.concatenate(([False], follows))


def _missing_bars(bars: BarSeries, expected: np.ndarray, market: Market, period: Period) -> list[Finding]:
    starts = np.sort(bars.start)
    position = np.minimum(np.searchsorted(starts, expected), len(starts) - 1)
    where = np.flatnonzero(starts[position] != expected)
    if not len(where):
        return []
    ends = [timeframes.bar_end(period, int(expected[i]), market) for i in where]
    runs = np.split(np.arange(len(where)), np.flatnonzero(np.diff(where) != 1) + 1)
    return [
        Finding(
            "missing_bars",
            ends[run[0]],
            f"{len(run)} bar{'s' * (len(run) > 1)} missing in session",
            end=ends[run[-1]],
            bars=len(run),
        )
        for run in runs
    ]


def _outside_sessions(bars: BarSeries, closes_at: np.ndarray, market: Market) -> list[Finding]:
    spans = np.array(market.open_spans(int(bars.start[0]), int(closes_at.max())), dtype=np.int64).reshape(
        -1, 2
    )
    # A bar is inside when the last span that opens before its period ends closes after its start.
    index = np.searchsorted(spans[:, 0], closes_at, side="left") - 1
    inside = (
        (index >= 0) & (spans[np.maximum(index, 0), 1] > bars.start)
        if len(spans)
        else np.zeros(len(bars.end), dtype=bool)
    )
    return [
        Finding("outside_session", int(bars.end[i]), f"bar outside the {market.name} sessions")
        for i in np.flatnonzero(~inside)
    ]


def _impossible_values(bars: BarSeries) -> tuple[np.ndarray, list[Finding]]:
    prices = {"open": bars.open, "high": bars.high, "low": bars.low, "close": bars.close}
    bad = {name: ~(np.isfinite(values) & (values > 0)) for name, values in prices.items()}
    bad["volume"] = ~(np.isfinite(bars.volume) & (bars.volume >= 0))
    any_bad = np.zeros(len(bars.volume), dtype=bool)
    for flags in bad.values():
        any_bad |= flags
    findings = []
    for i in np.flatnonzero(any_bad):
        values = ", ".join(
            f"{name}={float(prices.get(name, bars.volume)[i])!r}" for name in bad if bad[name][i]
        )
        findings.append(
            Finding("impossible_value", int(bars.end[i]), f"not a valid price or volume: {values}")
        )
    return ~any_bad, findings


def _ohlc_inconsistent(bars: BarSeries, valid: np.ndarray) -> list[Finding]:
    top, bottom = np.maximum(bars.open, bars.close), np.minimum(bars.open, bars.close)
    broken = valid & ((bars.high < top) | (bars.low > bottom) | (bars.high < bars.low))
    return [
        Finding(
            "ohlc_inconsistent",
            int(bars.end[i]),
            f"open {bars.open[i]:g} high {bars.high[i]:g} low {bars.low[i]:g} close {bars.close[i]:g}",
        )
        for i in np.flatnonzero(broken)
    ]


def _repeated_bars(bars: BarSeries, valid: np.ndarray) -> list[Finding]:
    same = np.ones(len(bars.end) - 1, dtype=bool)
    for column in (bars.open, bars.high, bars.low, bars.close, bars.volume):
        same &= column[1:] == column[:-1]
    # A zero-volume copy is a quiet bar (see stale runs), not a bar sent twice.
    same &= valid[1:] & valid[:-1] & (bars.volume[1:] > 0)
    return [
        Finding("repeated_bar", int(bars.end[i]), "same open, high, low, close and volume as the bar before")
        for i in np.flatnonzero(same) + 1
    ]


def _robust_z(values: np.ndarray, scored: np.ndarray | None = None) -> np.ndarray | None:
    # z-scores of ``scored`` (default: ``values``) against the median and MAD of ``values``.
    if len(values) < MIN_STATISTICS_SAMPLE:
        return None
    median = np.median(values)
    spread = np.median(np.abs(values - median)) * MAD_TO_SIGMA
    return None if spread == 0 else ((values if scored is None else scored) - median) / spread


def _outlier_returns(bars: BarSeries, valid: np.ndarray, follows: np.ndarray, limit: float) -> list[Finding]:
    pairs = np.flatnonzero(follows[1:] & valid[1:] & valid[:-1]) + 1
    returns = np.log(bars.close[pairs] / bars.close[pairs - 1])
    # A move after k bars with one close happened over k bars (a quiet or stale spell): scale it
    # like a k-bar return, so the catch-up after a pause is not an outlier by itself.
    changed = np.concatenate(([True], bars.close[1:] != bars.close[:-1]))
    run_start = np.maximum.accumulate(np.where(changed, np.arange(len(changed)), 0))
    held = (pairs - 1) - run_start[pairs - 1] + 1
    scaled = returns / np.sqrt(held)
    # A bar that follows none (a session's first, the first after a gap) has no return; its own
    # open-to-close move is its one-bar move, scored against the others' returns, so that a spike
    # there is named at its own time and not at the next bar, which only falls back.
    openers = np.flatnonzero(~follows & valid)
    moves = np.log(bars.close[openers] / bars.open[openers])
    z = _robust_z(scaled, np.concatenate((scaled, moves)))
    if z is None:
        return []
    bar_at, changes = np.concatenate((pairs, openers)), np.concatenate((returns, moves))
    flagged = {int(bar_at[j]): (float(changes[j]), float(z[j])) for j in np.flatnonzero(np.abs(z) > limit)}
    findings = []
    for i in sorted(flagged):
        if i - 1 in flagged and follows[i] and flagged[i - 1][0] * flagged[i][0] < 0:
            continue  # the way back from a spike, reported with it
        change, score = flagged[i]
        detail = (
            f"close moved {math.expm1(change):+.2%}{'' if follows[i] else ' from the open'} "
            f"(robust z {score:+.1f})"
        )
        if i + 1 in flagged and follows[i + 1] and flagged[i + 1][0] * change < 0:
            detail += f", then {math.expm1(flagged[i + 1][0]):+.2%} the next bar: a one-bar spike"
        findings.append(Finding("outlier_return", int(bars.end[i]), detail))
    return findings


def _stale_runs(bars: BarSeries, valid: np.ndarray, limit: int) -> list[Finding]:
    same = (bars.close[1:] == bars.close[:-1]) & valid[1:] & valid[:-1]
    edges = np.diff(np.concatenate(([0], same.astype(np.int8), [0])))
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)  # runs of `same` in pairs
    return [
        Finding(
            "stale_run",
            int(bars.end[lo]),
            f"close {bars.close[lo]:g} for {hi - lo + 1} bars",
            end=int(bars.end[hi]),
            bars=int(hi - lo + 1),
        )
        for lo, hi in zip(starts, stops)
        if hi - lo + 1 >= limit
    ]


def _volume_spikes(bars: BarSeries, valid: np.ndarray, limit: float) -> list[Finding]:
    traded = np.flatnonzero(valid & (bars.volume > 0))
    z = _robust_z(np.log(bars.volume[traded]))
    if z is None:
        return []
    median = float(np.median(bars.volume[traded]))
    return [
        Finding(
            "volume_spike",
            int(bars.end[traded[j]]),
            f"volume {bars.volume[traded[j]]:g} is {bars.volume[traded[j]] / median:.0f}x the median "
            f"(robust z {z[j]:+.1f})",
        )
        for j in np.flatnonzero(z > limit)
    ]
