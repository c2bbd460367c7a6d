"""The simulator's deterministic market: trades, K-lines, quotes and depth for any time.

Pure (no I/O, no clock): every method takes ``now_ms`` where the answer depends on what
has happened yet.  K-lines of every period are aggregations of exactly the trades
:meth:`MarketModel.trade_arrays` returns, which are exactly the trades the WebSocket
pushes, so REST history and the live stream agree bar for bar.  Hours come from
:mod:`.hours`, the K-line grid from :mod:`.grid`: the simulator's own, not the client's.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from ..errors import ConfigError
from ..records import Depth, Kline, Quote, Tick
from ..symbols import Instrument, parse_symbol
from . import grid, prices
from .grid import DAY_MS, MINUTE_MS
from .hours import MODES, MarketHours, hours_for
from .tape import MAX_LATE_PRINT_MS, day_tape


@dataclass(frozen=True)
class MinuteBars:
    """One-minute OHLCV of the open minutes of one UTC day (arrays of equal length)."""

    minute: prices.Int64Array  # epoch minutes
    open: prices.Int64Array  # ticks
    high: prices.Int64Array
    low: prices.Int64Array
    close: prices.Int64Array
    volume: prices.Int64Array  # size units
    turnover: npt.NDArray[np.float64]  # price * size


_V = TypeVar("_V")


class _Lru(OrderedDict[Hashable, Any]):
    def __init__(self, capacity: int) -> None:
        super().__init__()
        self.capacity = capacity

    def remember(self, key: Hashable, value: _V) -> _V:
        self[key] = value
        if len(self) > self.capacity:
            self.popitem(last=False)
        return value

    def recall(self, key: Hashable) -> Any:
        value = self.get(key)
        if value is not None:
            self.move_to_end(key)
        return value


class MarketModel:
    """Seeded trades per instrument, and everything derived from them.

    Example::

        model = MarketModel(seed=1, symbols=["AAPL.US", "BTCUSDT"], history_start_ms=0)
        bars = model.klines_between("BTCUSDT", "1m", start_ms, end_ms, now_ms=end_ms)

    ``hours`` picks the sessions that trade (:data:`.hours.MODES`); ``late_print_ms`` > 0 adds one
    trade that long after each session close.
    """

    def __init__(
        self,
        seed: int,
        symbols: Iterable[str],
        history_start_ms: int,
        hours: str = "regular",
        late_print_ms: int = 0,
    ) -> None:
        if hours not in MODES:
            raise ConfigError(f"hours must be one of {', '.join(MODES)}, was {hours!r}")
        if type(late_print_ms) is not int or not 0 <= late_print_ms < MAX_LATE_PRINT_MS:
            raise ConfigError(
                f"late_print_ms must be a whole number of ms from 0 to "
                f"{MAX_LATE_PRINT_MS - 1}, was {late_print_ms!r}"
            )
        self.seed = seed
        self.hours_mode = hours
        self.kinds: frozenset[str] = MODES[hours]
        self.late_print_ms = late_print_ms
        self.instruments: dict[str, Instrument] = {}
        for name in symbols:
            instrument = parse_symbol(name)
            self.instruments[instrument.symbol] = instrument
        self.hours: dict[str, MarketHours] = {
            name: hours_for(inst.asset, inst.region, inst.code) for name, inst in self.instruments.items()
        }
        self.specs: dict[str, prices.AssetSpec] = {
            name: prices.asset_spec(inst) for name, inst in self.instruments.items()
        }
        self._keys = {name: prices.symbol_key(seed, name) for name in self.instruments}
        self.history_start_ms = history_start_ms
        # The pusher reads every subscribed symbol's day each step: a cache smaller than the
        # universe would regenerate every tape on every step (a day and the next at midnight).
        self._trades = _Lru(max(256, 2 * len(self.instruments)))
        self._minutes = _Lru(4096)
        self._bars = _Lru(65536)

    # -- lookup -------------------------------------------------------------------------

    def instrument(self, symbol: str) -> Instrument | None:
        """Return the served instrument named ``symbol`` (canonical form), or None."""
        return self.instruments.get(symbol)

    # -- trades ---------------------------------------------------------------------------

    def day_trades(self, symbol: str, day: int) -> prices.DayTrades:
        """All trades of ``symbol`` on UTC day ``day`` (cached)."""
        cached = self._trades.recall((symbol, day))
        if cached is not None:
            return cached
        trades = day_tape(
            self._keys[symbol],
            self.specs[symbol],
            self.hours[symbol],
            self.kinds,
            day,
            self.history_start_ms,
            self.late_print_ms,
        )
        return self._trades.remember((symbol, day), trades)

    # -- hours ----------------------------------------------------------------------------

    def is_open(self, symbol: str, ts_ms: int) -> bool:
        """True when ``symbol``'s market trades at ``ts_ms`` in this model's hours mode."""
        return self.hours[symbol].is_open(ts_ms, self.kinds)

    def session_kinds(self, symbol: str, times: list[int]) -> list[str | None]:
        """The kind of session (:mod:`.hours`) each instant falls in, or closed late for."""
        return self.hours[symbol].kinds_at(times)

    def closed_instants(self, symbol: str, start_ms: int, end_ms: int, every_ms: int) -> list[int]:
        """The multiples of ``every_ms`` in ``[start_ms, end_ms)`` at which ``symbol``'s market is closed."""
        first = -(-start_ms // every_ms) * every_ms
        if first >= end_ms:
            return []
        sessions = self.hours[symbol].sessions(start_ms, end_ms, self.kinds)
        return [
            moment
            for moment in range(first, end_ms, every_ms)
            if not any(s.start <= moment < s.end for s in sessions)
        ]

    def trade_arrays(self, symbol: str, start_ms: int, end_ms: int) -> prices.TradeArrays:
        """Trades with ``start_ms <= time < end_ms`` as (time, price, size, direction, seq) arrays."""
        parts: list[prices.TradeArrays] = []
        for day in range(start_ms // DAY_MS, (end_ms - 1) // DAY_MS + 1):
            trades = self.day_trades(symbol, day)
            lo, hi = np.searchsorted(trades.time, (start_ms, end_ms), side="left")
            if hi > lo:
                parts.append(
                    (
                        trades.time[lo:hi],
                        trades.price[lo:hi],
                        trades.size[lo:hi],
                        trades.direction[lo:hi],
                        trades.seq[lo:hi],
                    )
                )
        if not parts:
            empty = np.empty(0, dtype=np.int64)
            return empty, empty, empty, empty, empty
        if len(parts) == 1:
            return parts[0]
        time, price, size, direction, seq = (np.concatenate(column) for column in zip(*parts))
        return time, price, size, direction, seq

    def trades(self, symbol: str, start_ms: int, end_ms: int) -> list[Tick]:
        """Trades of ``symbol`` in ``[start_ms, end_ms)`` as records."""
        spec = self.specs[symbol]
        time, price, size, direction, seq = self.trade_arrays(symbol, start_ms, end_ms)
        ps, ss = spec.price_scale, spec.size_scale
        return [
            Tick(symbol, t, p / ps, s / ss, (p / ps) * (s / ss), q, d)
            for t, p, s, d, q in zip(
                time.tolist(), price.tolist(), size.tolist(), direction.tolist(), seq.tolist()
            )
        ]

    def last_trade(self, symbol: str, now_ms: int) -> Tick | None:
        """The latest trade before ``now_ms`` (searching back to the start of history)."""
        row = self.last_row(symbol, now_ms)
        if row is None:
            return None
        time, ticks, units, direction, seq = row
        spec = self.specs[symbol]
        price, size = ticks / spec.price_scale, units / spec.size_scale
        return Tick(symbol, time, price, size, price * size, seq, direction)

    def last_row(self, symbol: str, now_ms: int) -> tuple[int, int, int, int, int] | None:
        """The latest trade before ``now_ms`` as (time, price ticks, size units, direction, seq)."""
        day = (now_ms - 1) // DAY_MS
        while day * DAY_MS + DAY_MS > self.history_start_ms:
            trades = self.day_trades(symbol, day)
            hi = int(np.searchsorted(trades.time, now_ms, side="left"))
            if hi:
                at = hi - 1
                return (
                    int(trades.time[at]),
                    int(trades.price[at]),
                    int(trades.size[at]),
                    int(trades.direction[at]),
                    int(trades.seq[at]),
                )
            day -= 1
        return None

    # -- minute bars ----------------------------------------------------------------------

    def minute_bars(self, symbol: str, day: int, now_ms: int | None = None) -> MinuteBars:
        """One-minute bars of a UTC day; with ``now_ms``, only trades before it count."""
        full = self._minutes.recall((symbol, day))
        if full is None:
            full = self._minutes.remember((symbol, day), self._aggregate_day(symbol, day))
        if now_ms is None or now_ms >= (day + 1) * DAY_MS:
            return full
        current = now_ms // MINUTE_MS
        keep = int(np.searchsorted(full.minute, current, side="left"))
        bars = MinuteBars(*(getattr(full, name)[:keep] for name in MinuteBars.__dataclass_fields__))
        partial_start = current * MINUTE_MS
        if partial_start < now_ms:
            time, price, size, _, _ = self.trade_arrays(symbol, partial_start, now_ms)
            if len(time):
                scale = self.specs[symbol].price_scale * self.specs[symbol].size_scale
                extra = (
                    np.array([current]),
                    price[:1],
                    price.max(keepdims=True),
                    price.min(keepdims=True),
                    price[-1:],
                    size.sum(keepdims=True),
                    np.array([float((price * size).sum()) / scale]),
                )
                bars = MinuteBars(
                    *(
                        np.concatenate((old, new))
                        for old, new in zip(
                            (getattr(bars, name) for name in MinuteBars.__dataclass_fields__), extra
                        )
                    )
                )
        return bars

    def _aggregate_day(self, symbol: str, day: int) -> MinuteBars:
        trades = self.day_trades(symbol, day)
        if not len(trades.time):
            empty = np.empty(0, dtype=np.int64)
            return MinuteBars(empty, empty, empty, empty, empty, empty, np.empty(0))
        starts = np.cumsum(trades.count) - trades.count
        ends = starts + trades.count - 1
        scale = self.specs[symbol].price_scale * self.specs[symbol].size_scale
        value = trades.price * trades.size
        return MinuteBars(
            trades.minute,
            trades.price[starts],
            np.maximum.reduceat(trades.price, starts),
            np.minimum.reduceat(trades.price, starts),
            trades.price[ends],
            np.add.reduceat(trades.size, starts),
            np.add.reduceat(value, starts) / scale,
        )

    # -- K-lines --------------------------------------------------------------------------

    def aggregate(
        self, symbol: str, start_ms: int, end_ms: int, now_ms: int
    ) -> tuple[int, int, int, int, int, float] | None:
        """(open, high, low, close, volume, turnover) in ticks/units of ``[start, end)`` by ``now``."""
        end = min(end_ms, now_ms)
        opens: list[int] = []
        highs: list[int] = []
        lows: list[int] = []
        closes: list[int] = []
        volume, turnover = 0, 0.0
        for day in range(start_ms // DAY_MS, (end - 1) // DAY_MS + 1):
            bars = self.minute_bars(symbol, day, now_ms)
            lo, hi = np.searchsorted(bars.minute, (start_ms // MINUTE_MS, -(-end // MINUTE_MS)))
            if hi > lo:
                opens.append(int(bars.open[lo]))
                closes.append(int(bars.close[hi - 1]))
                highs.append(int(np.max(bars.high[lo:hi])))
                lows.append(int(np.min(bars.low[lo:hi])))
                volume += int(bars.volume[lo:hi].sum())
                turnover += float(bars.turnover[lo:hi].sum())
        if not opens:
            return None
        return opens[0], max(highs), min(lows), closes[-1], volume, turnover

    def latest_klines(self, symbol: str, period: str, count: int, end_ms: int, now_ms: int) -> list[Kline]:
        """The newest ``count`` bars starting at or before ``end_ms`` (forming bar included), ascending."""
        rule = self.hours[symbol].rule
        end_ms = min(end_ms, now_ms - 1)
        found: list[Kline] = []
        if grid.is_intraday(grid.check_period(period)):
            day = end_ms // DAY_MS
            while len(found) < count and (day + 1) * DAY_MS > self.history_start_ms:
                bars = [bar for bar in self._intraday(symbol, period, day, now_ms) if bar.start <= end_ms]
                found[:0] = bars[-(count - len(found)) :]
                day -= 1
            return found
        start = grid.bar_start(period, end_ms, rule)
        while len(found) < count and grid.next_start(period, start, rule) > self.history_start_ms:
            bar = self._period_bar(symbol, period, start, now_ms)
            if bar is not None:
                found.insert(0, bar)
            start = grid.bar_start(period, start - 1, rule)
        return found

    def klines_between(
        self, symbol: str, period: str, start_ms: int, end_ms: int, now_ms: int, closed_only: bool = True
    ) -> list[Kline]:
        """Bars whose start is in ``[start_ms, end_ms)``; only bars ended by ``now_ms`` if ``closed_only``.

        A bar of a day or longer ends when its last trading date is over, not at a session close.
        """
        rule = self.hours[symbol].rule
        out: list[Kline] = []
        if grid.is_intraday(grid.check_period(period)):
            for day in range(start_ms // DAY_MS, (min(end_ms, now_ms) - 1) // DAY_MS + 1):
                out.extend(
                    bar
                    for bar in self._intraday(symbol, period, day, now_ms)
                    if start_ms <= bar.start < end_ms
                )
        else:
            start = grid.bar_start(period, start_ms, rule)
            if start < start_ms:
                start = grid.next_start(period, start, rule)
            while start < min(end_ms, now_ms):
                bar = self._period_bar(symbol, period, start, now_ms)
                if bar is not None:
                    out.append(bar)
                start = grid.next_start(period, start, rule)
        if closed_only:
            out = [bar for bar in out if bar.end <= now_ms]
        return out

    def _intraday(self, symbol: str, period: str, day: int, now_ms: int) -> list[Kline]:
        minutes = grid.INTRADAY_MINUTES[period]
        complete = now_ms >= (day + 1) * DAY_MS
        if complete:
            cached = self._bars.recall((symbol, minutes, day))
            if cached is not None:
                return cached
        bars = self.minute_bars(symbol, day, now_ms)
        if not len(bars.minute):
            return self._bars.remember((symbol, minutes, day), []) if complete else []
        group = bars.minute // minutes
        starts = np.flatnonzero(np.concatenate(([True], group[1:] != group[:-1])))
        ends = np.concatenate((starts[1:], np.array([len(group)]))) - 1
        spec = self.specs[symbol]
        ps, ss = spec.price_scale, spec.size_scale
        step = minutes * MINUTE_MS
        out = [
            Kline(symbol, period, start, start + step, o / ps, h / ps, low / ps, c / ps, v / ss, t)
            for start, o, h, low, c, v, t in zip(
                (group[starts] * step).tolist(),
                bars.open[starts].tolist(),
                np.maximum.reduceat(bars.high, starts).tolist(),
                np.minimum.reduceat(bars.low, starts).tolist(),
                bars.close[ends].tolist(),
                np.add.reduceat(bars.volume, starts).tolist(),
                np.add.reduceat(bars.turnover, starts).tolist(),
            )
        ]
        return self._bars.remember((symbol, minutes, day), out) if complete else out

    def _period_bar(self, symbol: str, period: str, start: int, now_ms: int) -> Kline | None:
        # A day, week or month covers [start, following): it ends (is final) when its coverage does.
        following = grid.next_start(period, start, self.hours[symbol].rule)
        key = (symbol, period, start)
        if following <= now_ms:
            cached = self._bars.recall(key)
            if cached is not None:
                return cached or None
        values = self.aggregate(symbol, start, following, now_ms)
        bar = None
        if values is not None:
            ps, ss = self.specs[symbol].price_scale, self.specs[symbol].size_scale
            o, h, low, c, v, t = values
            bar = Kline(symbol, period, start, following, o / ps, h / ps, low / ps, c / ps, v / ss, t)
        if following <= now_ms:
            self._bars.remember(key, bar or ())
        return bar

    # -- snapshots ------------------------------------------------------------------------

    def depth(self, symbol: str, now_ms: int, levels: int | None = None) -> Depth | None:
        """The order book just after the last trade: the trade sits at the touch it hit."""
        last = self.last_trade(symbol, now_ms)
        if last is None:
            return None
        spec = self.specs[symbol]
        levels = spec.depth_levels if levels is None else max(1, min(levels, spec.depth_levels))
        ticks = round(last.price * spec.price_scale)
        bid = ticks - (2 if last.direction == 1 else 0 if last.direction == 2 else 1)
        ask = ticks + (0 if last.direction == 1 else 2 if last.direction == 2 else 1)
        lot = spec.lot * spec.size_high
        seq = last.seq or 0  # the simulator numbers every trade
        sizes = [(lot * ((seq * 7 + 3 * level) % 9 + 1)) / spec.size_scale for level in range(levels)]
        bids = tuple(((bid - level) / spec.price_scale, sizes[level]) for level in range(levels))
        asks = tuple(((ask + level) / spec.price_scale, sizes[-1 - level]) for level in range(levels))
        return Depth(symbol, last.time, bids, asks)

    def quote(self, symbol: str, now_ms: int) -> Quote | None:
        """Last price plus the trading day's open, high, low, volume and the previous close."""
        last = self.last_trade(symbol, now_ms)
        if last is None:
            return None
        rule = self.hours[symbol].rule
        day_start = grid.bar_start("1d", last.time, rule)
        today = self.aggregate(symbol, day_start, grid.next_start("1d", day_start, rule), now_ms)
        previous = self.last_trade(symbol, day_start)
        assert today is not None, "the day of the last trade has that trade"
        spec = self.specs[symbol]
        ps, ss = spec.price_scale, spec.size_scale
        o, h, low, _, v, t = today
        return Quote(
            symbol,
            last.time,
            last.price,
            o / ps,
            h / ps,
            low / ps,
            v / ss,
            t,
            previous.price if previous else None,
        )
