"""The checks the calendar decides: bars repeated at one time, missing in a session, or outside
the sessions; and which bars directly follow the one before (a return is only measured between those).

Each takes the bars sorted by close stamp and returns :class:`~.report.Finding` s.
"""

from __future__ import annotations

import numpy as np

from .. import timeframes
from ..markets import Market
from ..timeframes import Period
from .bar_series import BarSeries
from .report import Finding


def repeated_timestamps(bars: BarSeries) -> list[Finding]:
    """Each bar whose close stamp repeats the one before (the later is the one kept)."""
    repeats = np.flatnonzero(bars.end[1:] == bars.end[:-1]) + 1
    return [
        Finding("repeated_timestamp", int(bars.end[i]), "another bar has the same close time")
        for i in repeats
    ]


def period_closes(bars: BarSeries, market: Market, period: Period) -> np.ndarray:
    """Where each bar's period ends (``next_start``): a daily bar's stamp may be a plain date,
    before its own start."""
    if period.is_intraday:
        return bars.start + period.millis
    return np.array(
        [timeframes.next_start(period, int(start), market) for start in bars.start], dtype=np.int64
    )


def expected_starts(
    bars: BarSeries, closes_at: np.ndarray, market: Market, period: Period, span: tuple[int, int] | None
) -> np.ndarray:
    """Starts of the bars the calendar expects from the first bar to the last close (or over
    ``span``, intraday): one per period with an open session."""
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


def follows_previous(
    bars: BarSeries, closes_at: np.ndarray, expected: np.ndarray, period: Period
) -> np.ndarray:
    """True where a bar directly follows the one before: a return across a night, a weekend or a
    gap is not one bar's move.  Daily bars follow across weekends and holidays (nothing was expected)."""
    if period.is_intraday:
        follows = bars.start[1:] == closes_at[:-1]
    else:
        position = np.searchsorted(expected, bars.start)
        follows = position[1:] == position[:-1] + 1
    return np.concatenate(([False], follows))


def missing_bars(bars: BarSeries, expected: np.ndarray, market: Market, period: Period) -> list[Finding]:
    """Runs of expected bars that are not there, one finding per run."""
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


def outside_sessions(bars: BarSeries, closes_at: np.ndarray, market: Market) -> list[Finding]:
    """Bars whose period overlaps none of the market's sessions."""
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
