"""Seeded trade generation: the simulator's market, one UTC day of one instrument at a time.

Pure (no I/O, no clock).  Every number comes from a counter-based hash of
``(seed, symbol, minute, trade index)``, so the trades of any minute can be computed
without the history before it, and generating a whole day at once gives exactly the
trades of generating its minutes one by one.  Prices follow a smooth path through
hashed anchors (week, day, 4 h, 1 h, 15 min scales) plus per-trade noise; they are
kept as integer ticks so that decimal strings are exact.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ..symbols import Instrument
from .grid import MINUTE_MS

# The simulator's columns: epoch ms, integer ticks and size units, counters.
Int64Array = npt.NDArray[np.int64]
# Trades as columns: (time, price ticks, size units, direction, seq).
TradeArrays = tuple[Int64Array, Int64Array, Int64Array, Int64Array, Int64Array]

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_STREAM = np.uint64(0xC2B2AE3D27D4EB4F)
_S30, _S27, _S31, _S11 = (np.uint64(n) for n in (30, 27, 31, 11))
# Anchor spacing (minutes) and log-price amplitude (fraction of the asset's volatility).
_PATH_LEVELS = ((10_080, 1.0), (1_440, 0.6), (240, 0.3), (60, 0.15), (15, 0.08))
TRADES_MIN, TRADES_SPREAD = 5, 16  # 5..20 trades in each open minute
SEQ_PER_MINUTE = 100
# Counter slots inside a minute: continuous trades use 0..TRADES_MIN+TRADES_SPREAD-1, an auction's
# prints AUCTION_SLOT.., a late print LATE_SLOT, so no two streams ever share a hash input.
AUCTION_SLOT, LATE_SLOT = 40, 63
AUCTION_MIN, AUCTION_SPREAD = 2, 4  # 2..5 prints at an auction's match

# Known instruments get realistic price levels; anything else is hashed into a range.
_BASES = {
    "AAPL.US": 175.0,
    "TSLA.US": 190.0,
    "MSFT.US": 410.0,
    "GOOGL.US": 133.0,
    "UNH.US": 490.0,
    "700.HK": 290.0,
    "9988.HK": 72.0,
    "857.HK": 6.1,
    "1288.HK": 3.3,
    "5.HK": 61.0,
    "600519.SH": 1700.0,
    "601318.SH": 42.0,
    "000001.SZ": 10.5,
    "000858.SZ": 145.0,
    "EURUSD": 1.085,
    "USDJPY": 150.0,
    "GBPUSD": 1.265,
    "USDCNH": 7.2,
    "USDHKD": 7.82,
    "GOLD": 2120.0,
    "Silver": 23.8,
    "BTCUSDT": 66000.0,
    "ETHUSDT": 3500.0,
    "SOLUSDT": 130.0,
    "US500": 5100.0,
    "NAS100": 18000.0,
    "US30": 38900.0,
    "HK50": 16400.0,
    "USOIL": 78.0,
}


@dataclass(frozen=True)
class AssetSpec:
    """How one instrument trades: price level, tick and lot sizes, volatility, book depth.

    Example::

        spec = asset_spec(parse_symbol("BTCUSDT"))
        spec.price_decimals, spec.depth_levels     # (2, 5)
    """

    base_price: float
    price_decimals: int  # tick = 10 ** -price_decimals
    size_decimals: int
    size_low: int  # trade size range in units of 10 ** -size_decimals, times lot
    size_high: int
    lot: int
    volatility: float  # rough daily log-price amplitude
    noise: float  # per-trade log-price noise
    depth_levels: int  # order-book levels the vendor serves for this market
    always_buy: bool  # AllTick reports direction 1 for FX, metals and energy

    @property
    def price_scale(self) -> int:
        return 10**self.price_decimals

    @property
    def size_scale(self) -> int:
        return 10**self.size_decimals


def asset_spec(instrument: Instrument) -> AssetSpec:
    """Return the trading parameters the simulator uses for ``instrument``."""
    symbol = instrument.symbol
    fraction = _unit_hash(symbol)
    asset, region = instrument.asset, instrument.region
    if asset == "stock":
        base = _BASES.get(symbol, 10.0 + 390.0 * fraction)
        lot = 1 if region == "US" else 100
        levels = {"US": 1, "HK": 10}.get(region, 5)
        return AssetSpec(base, 2, 0, 1, 20 if lot == 100 else 500, lot, 0.02, 0.0004, levels, False)
    if asset == "crypto":
        base = _BASES.get(symbol, 1.0 + 500.0 * fraction)
        return AssetSpec(base, 2 if base > 100 else 4, 4, 1, 5_000, 1, 0.04, 0.0003, 5, False)
    if asset == "forex":
        base = _BASES.get(symbol, 0.5 + 1.5 * fraction)
        decimals = 3 if base > 20 else 5
        return AssetSpec(base, decimals, 0, 1, 50, 1, 0.005, 0.00005, 1, True)
    if asset == "cfd":
        base = _BASES.get(symbol, 1_000.0 + 20_000.0 * fraction)
        return AssetSpec(base, 1, 0, 1, 20, 1, 0.01, 0.0001, 1, True)
    base = _BASES.get(symbol, 10.0 + 100.0 * fraction)  # metals and energy
    return AssetSpec(base, 2 if base > 50 else 3, 0, 1, 30, 1, 0.01, 0.0001, 1, True)


@dataclass(frozen=True)
class DayTrades:
    """All trades of one instrument in one UTC day, sorted by time (arrays of equal length)."""

    time: Int64Array  # epoch ms, non-decreasing
    price: Int64Array  # ticks
    size: Int64Array  # size units
    direction: Int64Array  # 0 neutral, 1 buy, 2 sell
    seq: Int64Array  # strictly increasing
    minute: Int64Array  # open minutes of the day (epoch minutes), ascending
    count: Int64Array  # trades per open minute


def symbol_key(seed: int, symbol: str) -> int:
    """A 64-bit key that makes one symbol's random streams independent of every other's."""
    digest = hashlib.blake2b(f"{seed}:{symbol}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def generate_day(key: int, spec: AssetSpec, open_minutes: npt.ArrayLike) -> DayTrades:
    """Generate the trades of the given open minutes (epoch minutes, ascending)."""
    minutes = np.asarray(open_minutes, dtype=np.int64)
    spread = _hash(key, minutes.astype(np.uint64), 1) % np.uint64(TRADES_SPREAD)
    count = TRADES_MIN + spread.astype(np.int64)
    total = int(count.sum())
    minute_of = np.repeat(minutes, count)
    first = np.repeat(np.cumsum(count) - count, count)
    index = np.arange(total, dtype=np.int64) - first
    counter = (minute_of.astype(np.uint64) << np.uint64(6)) | index.astype(np.uint64)
    raw_time = minute_of * MINUTE_MS + (_hash(key, counter, 2) % np.uint64(MINUTE_MS)).astype(np.int64)
    order = np.argsort(raw_time, kind="stable")
    time = raw_time[order]
    counter = counter[order]
    # About one trade in eight prints in the same millisecond as the one before it (never
    # across a minute boundary: ``index`` is the rank inside the minute, positions match).
    same_ms = (_hash(key, counter, 3) % np.uint64(8) == 0) & (index > 0)
    if same_ms.any():
        time = np.where(same_ms, np.concatenate(([0], time[:-1])), time)
    price = _prices(key, spec, time, counter)
    size = spec.lot * (
        spec.size_low
        + (_hash(key, counter, 5) % np.uint64(spec.size_high - spec.size_low + 1)).astype(np.int64)
    )
    if spec.always_buy:
        direction = np.ones(total, dtype=np.int64)
    else:
        direction = (_hash(key, counter, 6) % np.uint64(3)).astype(np.int64)
    seq = minute_of * SEQ_PER_MINUTE + index  # minute_of is sorted already; index restarts per minute
    return DayTrades(time, price, size, direction, seq, minutes, count)


def generate_prints(key: int, spec: AssetSpec, auctions: npt.ArrayLike, lates: npt.ArrayLike) -> DayTrades:
    """Trades at single instants: each auction match (a few prints at one price, the auction's
    uniform price) at its instant, and one late print at each instant of ``lates``."""
    auctions = np.asarray(auctions, dtype=np.int64)
    lates = np.asarray(lates, dtype=np.int64)
    spread = _hash(key, auctions.astype(np.uint64), 7) % np.uint64(AUCTION_SPREAD)
    count = AUCTION_MIN + spread.astype(np.int64)
    auction_time = np.repeat(auctions, count)
    slot = np.arange(len(auction_time), dtype=np.int64) - np.repeat(np.cumsum(count) - count, count)
    auction_counter = ((auction_time // MINUTE_MS).astype(np.uint64) << np.uint64(6)) | (
        AUCTION_SLOT + slot
    ).astype(np.uint64)
    match_counter = ((auctions // MINUTE_MS).astype(np.uint64) << np.uint64(6)) | np.uint64(AUCTION_SLOT)
    auction_price = np.repeat(_prices(key, spec, auctions, match_counter), count)
    late_counter = ((lates // MINUTE_MS).astype(np.uint64) << np.uint64(6)) | np.uint64(LATE_SLOT)
    time = np.concatenate((auction_time, lates))
    counter = np.concatenate((auction_counter, late_counter))
    price = np.concatenate((auction_price, _prices(key, spec, lates, late_counter)))
    size = spec.lot * (
        spec.size_low
        + (_hash(key, counter, 5) % np.uint64(spec.size_high - spec.size_low + 1)).astype(np.int64)
    )
    direction = np.full(len(time), 1 if spec.always_buy else 0, dtype=np.int64)  # no aggressor at a match
    order = np.argsort(time, kind="stable")
    empty = np.empty(0, dtype=np.int64)
    return DayTrades(time[order], price[order], size[order], direction[order], empty, empty, empty)


def merge(trades: DayTrades, prints: DayTrades) -> DayTrades:
    """``trades`` with ``prints`` added, in time order; ``seq`` counts through each minute again
    (unchanged for minutes without prints), minutes and counts follow the trades."""
    if not len(prints.time):
        return trades
    time = np.concatenate((trades.time, prints.time))
    order = np.argsort(time, kind="stable")  # a continuous trade before a print of the same ms
    time = time[order]
    price, size, direction = (
        np.concatenate((getattr(trades, name), getattr(prints, name)))[order]
        for name in ("price", "size", "direction")
    )
    minute, first, count = np.unique(time // MINUTE_MS, return_index=True, return_counts=True)
    rank = np.arange(len(time), dtype=np.int64) - np.repeat(first, count)
    seq = np.repeat(minute, count) * SEQ_PER_MINUTE + rank
    return DayTrades(time, price, size, direction, seq, minute.astype(np.int64), count.astype(np.int64))


def seeded_int(key: int, value: int, stream: int, modulo: int) -> int:
    """A seeded number in ``[0, modulo)`` for one input ``value`` of one purpose ``stream``."""
    return int(_hash(key, np.array([value], dtype=np.uint64), stream)[0] % np.uint64(modulo))


def _prices(key: int, spec: AssetSpec, time: np.ndarray, counter: np.ndarray) -> np.ndarray:
    minutes = time / MINUTE_MS
    log_move = np.zeros(len(time))
    for level, (spacing, weight) in enumerate(_PATH_LEVELS):
        position = minutes / spacing
        anchor = np.floor(position).astype(np.int64)
        low = int(np.min(anchor)) if len(anchor) else 0
        knots = np.arange(low, (int(np.max(anchor)) if len(anchor) else 0) + 2, dtype=np.int64)
        values = _uniform(key, knots.astype(np.uint64), 10 + level) * 2.0 - 1.0
        frac = position - anchor
        smooth = frac * frac * (3.0 - 2.0 * frac)
        left = values[anchor - low]
        log_move += weight * (left + (values[anchor - low + 1] - left) * smooth)
    noise = (_uniform(key, counter, 4) - 0.5) * 2.0 * spec.noise
    raw = spec.base_price * np.exp(spec.volatility * log_move + noise)
    return np.maximum(np.rint(raw * spec.price_scale).astype(np.int64), 1)


def _hash(key: int, counter: np.ndarray, stream: int) -> np.ndarray:
    # splitmix64 finaliser over (key, stream, counter): independent streams per purpose.
    z = counter * _GOLDEN + np.uint64((key ^ (stream * int(_STREAM))) & 0xFFFFFFFFFFFFFFFF)
    z = (z ^ (z >> _S30)) * _MIX1
    z = (z ^ (z >> _S27)) * _MIX2
    return z ^ (z >> _S31)


def _uniform(key: int, counter: np.ndarray, stream: int) -> np.ndarray:
    return (_hash(key, counter, stream) >> _S11).astype(np.float64) * (1.0 / (1 << 53))


def _unit_hash(text: str) -> float:
    digest = hashlib.blake2b(text.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") / 2.0**64
