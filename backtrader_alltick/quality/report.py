"""What the data-quality checks report: the kinds of flaw, the thresholds, each finding, and the
report of one series (with the counters of a live feed, in the report's words)."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import ConfigError
from ..records import format_utc

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


def live_counts(stats: dict[str, int]) -> dict[str, int]:
    """A live feed's ``data.stats`` in the report's words, with the number of REST/stream seams."""
    counts = {name: int(stats.get(counter, 0)) for counter, name in LIVE_COUNTS.items()}
    counts["seams"] = 1 + counts["reconnects"] if counts["bars_from_trades"] or counts["reconnects"] else 0
    return counts
