"""What a history load asks for (:class:`Window`) and what it answers (:class:`BarRange`)."""

from __future__ import annotations

from dataclasses import dataclass

from ..markets import Market
from ..param_checks import check_window
from ..records import Kline
from ..timeframes import BarSpec, first_slot_start


@dataclass(frozen=True)
class Window:
    """Bars stamped ``start_ms <= bar.end <= end_ms`` (Backtrader's filter; None: open), or the newest
    ``count`` of them.

    Epoch ms only: a plain date is read once, before a window is made
    (:func:`~backtrader_alltick.param_checks.bar_window`, as ``fetch_klines`` and the feed read it).

    Example::

        Window(count=100)                                   # the newest 100 closed bars
        Window(start_ms=1_709_251_200_000, end_ms=None)     # every closed bar from 2024-03-01 00:00 UTC
    """

    start_ms: int | None = None
    end_ms: int | None = None
    count: int | None = None

    def __post_init__(self) -> None:
        check_window(self.start_ms, self.end_ms)

    def load_start(self, spec: BarSpec, market: Market) -> int | None:
        """Where loading must start so every bar stamped at or after ``start_ms`` is whole (None:
        anywhere)."""
        return None if self.start_ms is None else first_slot_start(spec, self.start_ms, market)

    def keep(self, bars: list[Kline], upto_ms: int | None = None) -> list[Kline]:
        """Backtrader's filter over ``bars`` (stamped ``start_ms <= end``, and ``end <= upto_ms`` if
        given), then the newest ``count``."""
        start = self.start_ms
        bars = [
            bar
            for bar in bars
            if (start is None or bar.end >= start) and (upto_ms is None or bar.end <= upto_ms)
        ]
        return bars if self.count is None else bars[-self.count :]


@dataclass(frozen=True)
class BarRange:
    """Closed bars, oldest first, and the moment up to which they are complete: every bar of the
    window final by ``complete_ms`` is in ``bars``; later ones were not closed yet (or not asked for).

    Example::

        got = store.history.get_range(inst, spec, Window(count=100))
        got.bars[-1].close, got.complete_ms
    """

    bars: list[Kline]
    complete_ms: int
