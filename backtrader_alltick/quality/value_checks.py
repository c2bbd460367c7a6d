"""The checks of one bar's values: impossible prices or volumes, open/high/low/close that contradict
each other, and a bar sent twice.  :func:`impossible_values` also says which bars the other checks
may trust."""

from __future__ import annotations

import numpy as np

from .bar_series import BarSeries
from .report import Finding


def impossible_values(bars: BarSeries) -> tuple[np.ndarray, list[Finding]]:
    """Bars with a price that is not a positive number or a volume below 0; also the mask of
    the valid bars, which the other checks look at."""
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


def ohlc_inconsistent(bars: BarSeries, valid: np.ndarray) -> list[Finding]:
    """Valid bars whose high is below the open, the close or the low, or whose low is above them."""
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


def repeated_bars(bars: BarSeries, valid: np.ndarray) -> list[Finding]:
    """Valid bars with the same open, high, low, close and volume as the one before."""
    same = np.ones(len(bars.end) - 1, dtype=bool)
    for column in (bars.open, bars.high, bars.low, bars.close, bars.volume):
        same &= column[1:] == column[:-1]
    # A zero-volume copy is a quiet bar (see stale runs), not a bar sent twice.
    same &= valid[1:] & valid[:-1] & (bars.volume[1:] > 0)
    return [
        Finding("repeated_bar", int(bars.end[i]), "same open, high, low, close and volume as the bar before")
        for i in np.flatnonzero(same) + 1
    ]
