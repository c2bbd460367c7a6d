"""Data quality: checks over bars, the Backtrader analyzer that runs them, and the HTML report.

Example::

    from backtrader_alltick.quality import check_frame
    from backtrader_alltick.markets import US_STOCKS

    report = check_frame(frame, US_STOCKS, "5m", symbol="AAPL.US")
    print(report.is_clean, report.counts)
"""

from .checks import (
    KINDS,
    LIVE_COUNTS,
    Finding,
    QualityReport,
    Thresholds,
    check_bars,
    check_frame,
    check_klines,
    live_counts,
)

__all__ = [
    "KINDS",
    "LIVE_COUNTS",
    "Finding",
    "QualityReport",
    "Thresholds",
    "check_bars",
    "check_frame",
    "check_klines",
    "live_counts",
]
