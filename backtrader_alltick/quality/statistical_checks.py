"""The statistical checks: outlier returns, stale runs of one close, volume spikes.

They use robust statistics (median and MAD) so that the flaws they look for do not hide themselves;
the limits come from :class:`~.report.Thresholds`.
"""

from __future__ import annotations

import math

import numpy as np

from .bar_series import BarSeries
from .report import Finding

# Scales a median absolute deviation to a standard deviation for normal data.
MAD_TO_SIGMA = 1.4826
# Fewer returns or volumes than this give no usable median and MAD (a few close values make the
# spread tiny and every ordinary move an outlier): the statistical checks then report nothing.
MIN_STATISTICS_SAMPLE = 10


def robust_z(values: np.ndarray, scored: np.ndarray | None = None) -> np.ndarray | None:
    """z-scores of ``scored`` (default: ``values``) against the median and MAD of ``values``; None
    when there are too few values or no spread."""
    if len(values) < MIN_STATISTICS_SAMPLE:
        return None
    median = np.median(values)
    spread = np.median(np.abs(values - median)) * MAD_TO_SIGMA
    return None if spread == 0 else ((values if scored is None else scored) - median) / spread


def outlier_returns(bars: BarSeries, valid: np.ndarray, follows: np.ndarray, limit: float) -> list[Finding]:
    """Bars whose return (or a session's first bar's open-to-close move) is past ``limit`` robust
    z-scores; a one-bar spike and its way back are one finding."""
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
    z = robust_z(scaled, np.concatenate((scaled, moves)))
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


def stale_runs(bars: BarSeries, valid: np.ndarray, limit: int) -> list[Finding]:
    """Runs of at least ``limit`` valid bars with one close."""
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


def volume_spikes(bars: BarSeries, valid: np.ndarray, limit: float) -> list[Finding]:
    """Bars whose log volume is past ``limit`` robust z-scores."""
    traded = np.flatnonzero(valid & (bars.volume > 0))
    z = robust_z(np.log(bars.volume[traded]))
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
