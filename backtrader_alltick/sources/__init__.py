"""Bar sources: every way bars reach a feed, behind one small interface.

A source is built from explicit collaborators (the store, the instrument, the bar spec and a
frozen :class:`SourceOptions`), never from a feed.  It runs whatever threads it needs and hands
its results to one consumer thread through :meth:`BarSource.poll`, as events (a consumer of many
sources passes them one shared :class:`~.inbox.Wake`, waits once on it for all of them with
``wake.wait_for_events(timeout)``, which takes their input and runs their timers meanwhile, then
calls ``poll(0)`` on each):

* :class:`BarReady`: the next bar (a :class:`~backtrader_alltick.records.Kline`, or a
  :class:`~backtrader_alltick.records.Tick` for ``TimeFrame.Ticks``) with the book that belongs to it;
* :class:`StateChanged`: the source moved to ``"delayed"`` (bars still come from history),
  ``"live"`` (bars now come as they close) or ``"connbroken"`` (the connection dropped);
* :class:`Failed`: nothing more will come, and why.

``AllTickData`` alone turns these into Backtrader states, lines and notifications; the relay
drives sources directly.  Sources count what they see in :attr:`BarSource.stats`.

The sources: :class:`~.stream.StreamBars` (REST backfill and the service's WebSocket, seamed),
:class:`~.redis.RedisBars` (a relay's Redis streams); history for backtests comes from
:meth:`History.get_range <backtrader_alltick.history.History.get_range>` (REST and cache, or a
relay's InfluxDB archive).

Example::

    event = source.poll(0.5)          # on the consumer's thread only
    if isinstance(event, BarReady):
        print(event.bar.close)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Protocol

from ..errors import AllTickError
from ..records import Kline, Tick

# What every source counts (``AllTickData.stats``).
COUNTERS = (
    "ticks",
    "bars_rest",
    "bars_live",
    "late_ticks",
    "duplicates",
    "overflows",
    "reconnects",
    "offhours_trades",
    "offhours_bars",
    "held_bars",
)

# Where a source's bars come from now (StateChanged.state).
SourceState = Literal["delayed", "live", "connbroken"]


@dataclass(frozen=True)
class SourceOptions:
    """The feed parameters a source needs, frozen: a source never reads a feed.

    Example::

        SourceOptions(lookback=100, bidask=True)
    """

    lookback: int = 500
    backfill_start: bool = True
    backfill: bool = True
    grace: float = 0.25
    emit_empty: bool = False
    extended_hours: bool = True
    bidask: bool = False
    inbox_size: int = 200_000
    url: str | None = None
    prefix: str = "alltick"


@dataclass(frozen=True)
class BarReady:
    """The next bar, with the best bid/ask when it closed (NaN for a bar from history)."""

    bar: Kline | Tick
    bid: float = math.nan
    ask: float = math.nan


@dataclass(frozen=True)
class StateChanged:
    """The source's state: ``delayed``, ``live`` or ``connbroken``."""

    state: SourceState


@dataclass(frozen=True)
class Failed:
    """The source ended because of ``error``; it sends nothing after this."""

    error: AllTickError


Event = BarReady | StateChanged | Failed


class BarSource(Protocol):
    """What a feed (or the relay) needs from any source of bars."""

    stats: dict[str, int]

    def poll(self, timeout: float) -> Event | None:
        """The next event, waiting at most ``timeout`` wall seconds; None when there is none yet."""

    def has_pending(self) -> bool:
        """True when :meth:`poll` would return an event without waiting."""

    def has_events(self) -> bool:
        """True when :meth:`poll` has an event ready without taking more input."""

    def take_input(self) -> bool:
        """Take what the source's threads put and run its timers due; True when an event is then ready.

        Its :class:`~.inbox.Wake` calls this while it waits for many sources.
        """

    def due_in(self) -> float:
        """Wall seconds until :meth:`poll` has timed work even without new input (``math.inf``: none)."""

    def timers_due(self) -> bool:
        """True when :meth:`poll` has timed work now, even without new input."""

    @property
    def history_until(self) -> int | None:
        """While bars still come from history, the close stamp of the last one handed out; else None."""

    def close(self) -> None:
        """Stop the source's threads and release its connections; idempotent."""
