"""Small typed records shared by every layer: what the wire parsers produce.

Times are epoch milliseconds in UTC; prices and sizes are floats.  A ``Kline`` carries
both ends of its period: ``start`` (how vendors stamp bars) and ``end`` (the close
stamp the feed shows, see DESIGN.md "Bar timestamps").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone


@dataclass(frozen=True, slots=True)
class Kline:
    """One closed (or, from a raw response, possibly forming) OHLCV bar.

    Example::

        Kline("AAPL.US", "1m", start=1_700_000_040_000, end=1_700_000_100_000,
              open=1.0, high=1.2, low=0.9, close=1.1, volume=300.0)
    """

    symbol: str
    period: str
    start: int
    end: int
    open: float
    high: float
    low: float
    close: float
    volume: float = 0.0
    turnover: float = 0.0


@dataclass(frozen=True, slots=True)
class Tick:
    """One trade.  ``seq`` is the vendor's sequence number where it sends one; ``session`` says
    which trading session the service puts it in, where it says so (iTick's ``te``).

    Example::

        Tick("BTCUSDT", time=1_700_000_000_123, price=37000.5, volume=0.01, seq=42)
    """

    symbol: str
    time: int
    price: float
    volume: float = 0.0
    turnover: float = 0.0
    seq: int | None = None
    direction: int = 0  # 0 neutral, 1 buy, 2 sell (AllTick's codes)
    session: int | None = None  # the service's word (iTick ``te``): 0 regular, 1 pre-market, 2 after-hours


@dataclass(frozen=True, slots=True)
class Quote:
    """A quote snapshot (iTick ``quote``): last price plus session OHLC and volume."""

    symbol: str
    time: int
    last: float
    open: float | None = None
    high: float | None = None
    low: float | None = None
    volume: float | None = None
    turnover: float | None = None
    prev_close: float | None = None


@dataclass(frozen=True, slots=True)
class Depth:
    """An order-book snapshot; levels are ``(price, volume)`` pairs, best first."""

    symbol: str
    time: int
    bids: tuple[tuple[float, float], ...] = field(default_factory=tuple)
    asks: tuple[tuple[float, float], ...] = field(default_factory=tuple)

    @property
    def best_bid(self) -> float | None:
        return self.bids[0][0] if self.bids else None

    @property
    def best_ask(self) -> float | None:
        return self.asks[0][0] if self.asks else None


Record = Tick | Quote | Depth | Kline
# Each record's kind, as it appears in Redis keys, CLI ``--types``, JSON lines and counters.
KIND_OF: dict[type, str] = {Tick: "tick", Quote: "quote", Depth: "depth", Kline: "bar"}
PUSHED_KINDS = ("tick", "quote", "depth")  # what a stream pushes; bars are built from ticks


def kind_of(record: Record) -> str:
    """``"tick"``, ``"quote"``, ``"depth"`` or ``"bar"``: the kind of ``record`` (KeyError for others)."""
    return KIND_OF[type(record)]


def normalize_epoch_ms(value: int | float | str) -> int:
    """Return epoch milliseconds from a value in seconds (10 digits) or milliseconds (13)."""
    number = int(float(value))
    # Anything below 1e12 cannot be a millisecond time after 2001: it is seconds.
    return number * 1000 if abs(number) < 1_000_000_000_000 else number


def format_utc(ms: int) -> str:
    """Epoch milliseconds as ``2024-03-05T15:00:00Z``, for messages and logs."""
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
