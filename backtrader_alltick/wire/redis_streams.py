"""How records are laid out in Redis: key names, stream entry fields and the latest-values hash.

Pure: no I/O.  Every value is a string that round-trips exactly (floats by ``repr``),
so a consumer in any language can read the relay::

    alltick:tick:AAPL.US       stream  time price volume turnover direction [seq]
    alltick:quote:AAPL.US      stream  time last [open high low volume turnover prev_close]
    alltick:depth:AAPL.US      stream  time bids asks   (JSON lists of [price, volume])
    alltick:bar:1m:AAPL.US     stream  start end open high low close volume turnover; id <end_ms>-0
    alltick:last:AAPL.US       hash    tick quote depth bar:1m ...   (each a JSON object of the fields)
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager

from ..errors import ProtocolError
from ..records import Depth, Kline, Quote, Record, Tick, kind_of

Fields = dict[str, str]

_QUOTE_OPTIONAL = ("open", "high", "low", "volume", "turnover", "prev_close")


def stream_key(prefix: str, kind: str, symbol: str, period: str | None = None) -> str:
    """Name of the stream holding ``kind`` records of ``symbol`` (bars also need ``period``)."""
    if kind == "bar":
        return f"{prefix}:bar:{period}:{symbol}"
    return f"{prefix}:{kind}:{symbol}"


def last_key(prefix: str, symbol: str) -> str:
    """Name of the hash holding the latest record of each kind for ``symbol``."""
    return f"{prefix}:last:{symbol}"


def bar_id(end_ms: int) -> str:
    """Stream ID of the bar that closes at ``end_ms``: a rewrite of the same bar is refused by Redis."""
    return f"{end_ms}-0"


def hash_field(record: Record) -> str:
    """Field of the latest-values hash that ``record`` updates."""
    return f"bar:{record.period}" if type(record) is Kline else kind_of(record)


def encode_tick(tick: Tick) -> Fields:
    fields = {
        "time": str(tick.time),
        "price": repr(tick.price),
        "volume": repr(tick.volume),
        "turnover": repr(tick.turnover),
        "direction": str(tick.direction),
    }
    if tick.seq is not None:
        fields["seq"] = str(tick.seq)
    return fields


def encode_quote(quote: Quote) -> Fields:
    fields = {"time": str(quote.time), "last": repr(quote.last)}
    for name in _QUOTE_OPTIONAL:
        value = getattr(quote, name)
        if value is not None:
            fields[name] = repr(value)
    return fields


def encode_depth(depth: Depth) -> Fields:
    return {"time": str(depth.time), "bids": json.dumps(depth.bids), "asks": json.dumps(depth.asks)}


def encode_kline(bar: Kline) -> Fields:
    return {
        "start": str(bar.start),
        "end": str(bar.end),
        "open": repr(bar.open),
        "high": repr(bar.high),
        "low": repr(bar.low),
        "close": repr(bar.close),
        "volume": repr(bar.volume),
        "turnover": repr(bar.turnover),
    }


ENCODERS: dict[type, Callable[..., Fields]] = {
    Tick: encode_tick,
    Quote: encode_quote,
    Depth: encode_depth,
    Kline: encode_kline,
}


def decode_tick(symbol: str, fields: Mapping[str, str]) -> Tick:
    """Rebuild a Tick from its stream fields."""
    with _malformed("tick", symbol, fields):
        seq = fields.get("seq")
        return Tick(
            symbol,
            int(fields["time"]),
            float(fields["price"]),
            float(fields["volume"]),
            float(fields["turnover"]),
            None if seq is None else int(seq),
            int(fields["direction"]),
        )


def decode_quote(symbol: str, fields: Mapping[str, str]) -> Quote:
    """Rebuild a Quote from its stream fields."""
    with _malformed("quote", symbol, fields):
        optional = {name: float(fields[name]) for name in _QUOTE_OPTIONAL if name in fields}
        return Quote(symbol, int(fields["time"]), float(fields["last"]), **optional)


def decode_depth(symbol: str, fields: Mapping[str, str]) -> Depth:
    """Rebuild a Depth from its stream fields."""
    with _malformed("depth", symbol, fields):
        return Depth(symbol, int(fields["time"]), _levels(fields["bids"]), _levels(fields["asks"]))


def decode_kline(symbol: str, period: str, fields: Mapping[str, str]) -> Kline:
    """Rebuild a Kline from its stream fields."""
    with _malformed("bar", symbol, fields):
        return Kline(
            symbol,
            period,
            int(fields["start"]),
            int(fields["end"]),
            float(fields["open"]),
            float(fields["high"]),
            float(fields["low"]),
            float(fields["close"]),
            float(fields["volume"]),
            float(fields["turnover"]),
        )


def decode_last(symbol: str, entries: Mapping[str, str]) -> dict[str, Record]:
    """Rebuild the latest records from the hash: ``{"tick": Tick, "bar:1m": Kline, ...}``."""
    out: dict[str, Record] = {}
    for field, text in entries.items():
        try:
            fields = json.loads(text)
        except ValueError:
            raise ProtocolError(
                f"latest-values hash of {symbol} holds non-JSON in field {field!r}, "
                f"was {text[:80]!r}; was it written by another program?"
            ) from None
        if field.startswith("bar:"):
            out[field] = decode_kline(symbol, field[4:], fields)
        elif field in _DECODERS:
            out[field] = _DECODERS[field](symbol, fields)
    return out


_DECODERS: dict[str, Callable[[str, Mapping[str, str]], Record]] = {
    "tick": decode_tick,
    "quote": decode_quote,
    "depth": decode_depth,
}


def _levels(text: str) -> tuple[tuple[float, float], ...]:
    return tuple((float(price), float(volume)) for price, volume in json.loads(text))


@contextmanager
def _malformed(kind: str, symbol: str, fields: Mapping[str, str]) -> Iterator[None]:
    # A missing or unparsable field means someone else wrote to our keys; say which entry.
    try:
        yield
    except (KeyError, ValueError, TypeError) as e:
        raise ProtocolError(
            f"{kind} entry of {symbol} is malformed ({type(e).__name__}: {e}), "
            f"was {dict(fields)!r}; was it written by another program?"
        ) from None
