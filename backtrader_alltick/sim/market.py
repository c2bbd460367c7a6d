"""The simulator's deterministic market: trades, K-lines, quotes and depth for any time.

Pure (no I/O, no clock): every method takes ``now_ms`` where the answer depends on what
has happened yet.  K-lines of every period are aggregations of exactly the trades
:meth:`MarketModel.trade_arrays` returns, which are exactly the trades the WebSocket
pushes, so REST history and the live stream agree bar for bar.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from .. import timeframes
from ..markets import DAY_MS, MINUTE_MS
from ..records import Depth, Kline, Quote, Tick
from ..symbols import Instrument, parse_symbol
from . import prices


@dataclass(frozen=True)
class MinuteBars:
    """One-minute OHLCV of the open minutes of one UTC day (arrays of equal length)."""

    minute: np.ndarray  # epoch minutes
    open: np.ndarray  # int ticks
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray  # int size units
    turnover: np.ndarray  # float, price * size


class _Lru(OrderedDict):
    def __init__(self, capacity: int) -> None:
        super().__init__()
        self.capacity = capacity

    def remember(self, key, value):
        self[key] = value
        if len(self) > self.capacity:
            self.popitem(last=False)
        return value

    def recall(self, key):
        value = self.get(key)
        if value is not None:
            self.move_to_end(key)
        return value


class MarketModel:
    """Seeded trades per instrument, and everything derived from them.

    Example::

        model = MarketModel(seed=1, symbols=["AAPL.US", "BTCUSDT"], history_start_ms=0)
        bars = model.klines_between("BTCUSDT", "1m", start_ms, end_ms, now_ms=end_ms)
    """

    def __init__(self, seed: int, symbols, history_start_ms: int) -> None:
        self.seed = seed
        self.instruments: dict[str, Instrument] = {}
        for name in symbols:
            instrument = parse_symbol(name)
            self.instruments[instrument.symbol] = instrument
        self.specs = {name: prices.asset_spec(inst) for name, inst in self.instruments.items()}
        self._keys = {name: prices.symbol_key(seed, name) for name in self.instruments}
        self.history_start_ms = history_start_ms
        self._trades = _Lru(256)
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
        inst = self.instruments[symbol]
        minutes = prices.open_minutes(inst.market, day)
        minutes = minutes[minutes * MINUTE_MS >= self.history_start_ms]
        trades = prices.generate_day(self._keys[symbol], self.specs[symbol], minutes)
        return self._trades.remember((symbol, day), trades)

    def trade_arrays(self, symbol: str, start_ms: int, end_ms: int):
        """Trades with ``start_ms <= time < end_ms`` as (time, price, size, direction, seq) arrays."""
        parts = []
        for day in range(start_ms // DAY_MS, (end_ms - 1) // DAY_MS + 1):
            trades = self.day_trades(symbol, day)
            lo, hi = np.searchsorted(trades.time, (start_ms, end_ms), side="left")
            if hi > lo:
                parts.append((trades.time[lo:hi], trades.price[lo:hi], trades.size[lo:hi],
                              trades.direction[lo:hi], trades.seq[lo:hi]))
        if not parts:
            empty = np.empty(0, dtype=np.int64)
            return empty, empty, empty, empty, empty
        if len(parts) == 1:
            return parts[0]
        return tuple(np.concatenate(column) for column in zip(*parts))

    def trades(self, symbol: str, start_ms: int, end_ms: int) -> list[Tick]:
        """Trades of ``symbol`` in ``[start_ms, end_ms)`` as records."""
        spec = self.specs[symbol]
        time, price, size, direction, seq = self.trade_arrays(symbol, start_ms, end_ms)
        ps, ss = spec.price_scale, spec.size_scale
        return [Tick(symbol, t, p / ps, s / ss, (p / ps) * (s / ss), q, d)
                for t, p, s, d, q in zip(time.tolist(), price.tolist(), size.tolist(),
                                         direction.tolist(), seq.tolist())]

    def last_trade(self, symbol: str, now_ms: int) -> Tick | None:
        """The latest trade before ``now_ms`` (searching back to the start of history)."""
        day = (now_ms - 1) // DAY_MS
        while day * DAY_MS + DAY_MS > self.history_start_ms:
            trades = self.day_trades(symbol, day)
            hi = int(np.searchsorted(trades.time, now_ms, side="left"))
            if hi:
                spec = self.specs[symbol]
                price = int(trades.price[hi - 1]) / spec.price_scale
                size = int(trades.size[hi - 1]) / spec.size_scale
                return Tick(symbol, int(trades.time[hi - 1]), price, size, price * size,
                            int(trades.seq[hi - 1]), int(trades.direction[hi - 1]))
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
                extra = (np.array([current]), price[:1], price.max(keepdims=True),
                         price.min(keepdims=True), price[-1:], size.sum(keepdims=True),
                         np.array([float((price * size).sum()) / scale]))
                bars = MinuteBars(*(np.concatenate((old, new)) for old, new in zip(
                    (getattr(bars, name) for name in MinuteBars.__dataclass_fields__), extra)))
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
        return MinuteBars(trades.minute, trades.price[starts], np.maximum.reduceat(trades.price, starts),
                          np.minimum.reduceat(trades.price, starts), trades.price[ends],
                          np.add.reduceat(trades.size, starts), np.add.reduceat(value, starts) / scale)

    # -- K-lines --------------------------------------------------------------------------

    def aggregate(self, symbol: str, start_ms: int, end_ms: int, now_ms: int) -> tuple | None:
        """(open, high, low, close, volume, turnover) in ticks/units of ``[start, end)`` by ``now``."""
        end = min(end_ms, now_ms)
        opens, highs, lows, closes, volume, turnover = [], [], [], [], 0, 0.0
        for day in range(start_ms // DAY_MS, (end - 1) // DAY_MS + 1):
            bars = self.minute_bars(symbol, day, now_ms)
            lo, hi = np.searchsorted(bars.minute, (start_ms // MINUTE_MS, -(-end // MINUTE_MS)))
            if hi > lo:
                opens.append(int(bars.open[lo]))
                closes.append(int(bars.close[hi - 1]))
                highs.append(int(bars.high[lo:hi].max()))
                lows.append(int(bars.low[lo:hi].min()))
                volume += int(bars.volume[lo:hi].sum())
                turnover += float(bars.turnover[lo:hi].sum())
        if not opens:
            return None
        return opens[0], max(highs), min(lows), closes[-1], volume, turnover

    def latest_klines(self, symbol: str, period: str, count: int, end_ms: int, now_ms: int) -> list[Kline]:
        """The newest ``count`` bars starting at or before ``end_ms`` (forming bar included), ascending."""
        inst = self.instruments[symbol]
        end_ms = min(end_ms, now_ms - 1)
        spec = timeframes.get_period(period)
        found: list[Kline] = []
        if spec.is_intraday:
            day = end_ms // DAY_MS
            while len(found) < count and (day + 1) * DAY_MS > self.history_start_ms:
                bars = [bar for bar in self._intraday(symbol, spec.count, day, now_ms) if bar.start <= end_ms]
                found[:0] = bars[-(count - len(found)):]
                day -= 1
            return found
        start = timeframes.bar_start(spec, end_ms, inst.market)
        while len(found) < count and timeframes.next_start(spec, start, inst.market) > self.history_start_ms:
            bar = self._period_bar(symbol, spec, start, now_ms)
            if bar is not None:
                found.insert(0, bar)
            start = timeframes.bar_start(spec, start - 1, inst.market)
        return found

    def klines_between(self, symbol: str, period: str, start_ms: int, end_ms: int, now_ms: int,
                       closed_only: bool = True) -> list[Kline]:
        """Bars whose start is in ``[start_ms, end_ms)``; only bars ended by ``now_ms`` if ``closed_only``."""
        inst = self.instruments[symbol]
        spec = timeframes.get_period(period)
        out: list[Kline] = []
        if spec.is_intraday:
            for day in range(start_ms // DAY_MS, (min(end_ms, now_ms) - 1) // DAY_MS + 1):
                out.extend(bar for bar in self._intraday(symbol, spec.count, day, now_ms)
                           if start_ms <= bar.start < end_ms)
        else:
            start = timeframes.bar_start(spec, start_ms, inst.market)
            if start < start_ms:
                start = timeframes.next_start(spec, start, inst.market)
            while start < min(end_ms, now_ms):
                bar = self._period_bar(symbol, spec, start, now_ms)
                if bar is not None:
                    out.append(bar)
                start = timeframes.next_start(spec, start, inst.market)
        if closed_only:  # a day closes with its session (an early close included), not at midnight
            out = [bar for bar in out if bar.end <= now_ms]
        return out

    def _intraday(self, symbol: str, minutes: int, day: int, now_ms: int) -> list[Kline]:
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
        ends = np.concatenate((starts[1:], [len(group)])) - 1
        spec = self.specs[symbol]
        ps, ss = spec.price_scale, spec.size_scale
        market = self.instruments[symbol].market
        name = timeframes.period_name("minute", minutes)
        out = [
            Kline(symbol, name, start, timeframes.bar_end(name, start, market), o / ps, h / ps, low / ps,
                  c / ps, v / ss, t)
            for start, o, h, low, c, v, t in zip(
                (group[starts] * minutes * MINUTE_MS).tolist(), bars.open[starts].tolist(),
                np.maximum.reduceat(bars.high, starts).tolist(),
                np.minimum.reduceat(bars.low, starts).tolist(),
                bars.close[ends].tolist(), np.add.reduceat(bars.volume, starts).tolist(),
                np.add.reduceat(bars.turnover, starts).tolist())
        ]
        return self._bars.remember((symbol, minutes, day), out) if complete else out

    def _period_bar(self, symbol: str, spec, start: int, now_ms: int) -> Kline | None:
        market = self.instruments[symbol].market
        following = timeframes.next_start(spec, start, market)
        key = (symbol, spec.name, start)
        if following <= now_ms:
            cached = self._bars.recall(key)
            if cached is not None:
                return cached or None
        values = self.aggregate(symbol, start, following, now_ms)
        bar = None
        if values is not None:
            ps, ss = self.specs[symbol].price_scale, self.specs[symbol].size_scale
            o, h, low, c, v, t = values
            bar = Kline(symbol, spec.name, start, timeframes.bar_end(spec, start, market),
                        o / ps, h / ps, low / ps, c / ps, v / ss, t)
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
        sizes = [(lot * ((last.seq * 7 + 3 * level) % 9 + 1)) / spec.size_scale for level in range(levels)]
        bids = tuple(((bid - level) / spec.price_scale, sizes[level]) for level in range(levels))
        asks = tuple(((ask + level) / spec.price_scale, sizes[-1 - level]) for level in range(levels))
        return Depth(symbol, last.time, bids, asks)

    def quote(self, symbol: str, now_ms: int) -> Quote | None:
        """Last price plus the trading day's open, high, low, volume and the previous close."""
        last = self.last_trade(symbol, now_ms)
        if last is None:
            return None
        market = self.instruments[symbol].market
        day_start = timeframes.bar_start("1d", last.time, market)
        today = self.aggregate(symbol, day_start, timeframes.next_start("1d", day_start, market), now_ms)
        previous = self.last_trade(symbol, day_start)
        spec = self.specs[symbol]
        ps, ss = spec.price_scale, spec.size_scale
        o, h, low, _, v, t = today
        return Quote(symbol, last.time, last.price, o / ps, h / ps, low / ps, v / ss, t,
                     previous.price if previous else None)
