"""iTick's WebSocket frames: the connection per asset path, ``ac`` subscribe and ping frames, pushes, replies.

Pure: builds text frames and turns frame text into records and control events; no I/O,
no clock.  Section numbers refer to ``shared/protocol/itick.md``.  Both the flat
``kline@N`` push and the legacy nested ``k`` one are read.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ... import markets
from ...errors import ConfigError, ProtocolError
from ...symbols import Instrument, parse_symbol
from .. import Ack, AuthResult, Connected, Event, Pong, ServerError
from .._decode import clip, dumps, int_or_none, loads, shape_guard
from .codes import FAMILY_OF_ASSET, PERIOD_OF_KTYPE, check_family, symbol_and_market, ws_symbol
from .rows import read_depth, read_kline, read_quote, read_tick

DEFAULT_WS_URL = "wss://api.itick.org"


def ws_connect(ws_root: str, family: str, token: str) -> tuple[str, dict[str, str]]:
    """Return the URL and headers of the asset path's WebSocket; the token is a header (section 7.2)."""
    check_family(family)
    return f"{ws_root.rstrip('/')}/{family}", {"token": token}


def subscribe_messages(
    family: str, trades: Iterable[Instrument | str], depth: Iterable[Instrument | str], seq: int
) -> list[str]:
    """Return one ``subscribe`` for the merged list: ``tick`` for trades, plus ``quote,depth`` for books.

    iTick subscriptions add up (section 8.2), so resending the full set is harmless.
    Nothing to subscribe gives ``[]``: iTick's unsubscribe is unreliable (section 8.3).
    ``seq`` is unused: iTick frames carry no sequence number.
    """
    check_family(family)
    wanted = [parse_symbol(inst) for inst in trades] + [parse_symbol(inst) for inst in depth]
    strangers = [inst.symbol for inst in wanted if FAMILY_OF_ASSET[inst.asset] != family]
    if strangers:
        raise ConfigError(
            f"symbols {', '.join(strangers)} are not served on iTick's /{family} socket; "
            "subscribe them on their own connection"
        )
    params = list(dict.fromkeys(ws_symbol(inst) for inst in wanted))
    if not params:
        return []
    types = ["tick"] * bool(trades) + ["quote", "depth"] * bool(depth)
    return [dumps({"ac": "subscribe", "params": ",".join(params), "types": ",".join(types)})]


def heartbeat_message(now_ms: int, seq: int) -> str:
    """Return the JSON ``ping`` carrying ``now_ms`` as a string; the pong echoes it (section 8.5)."""
    return dumps({"ac": "ping", "params": str(int(now_ms))})


@shape_guard("iTick", "a frame")
def parse_frame(text: str | bytes) -> list[Event]:
    """Turn one text frame into events: Tick, Quote, Depth, Kline or a control event (``[]`` if unknown).

    Raises ProtocolError for invalid JSON or a push missing required fields; the
    stream counts and skips those.
    """
    try:
        frame = loads(text)
        reply = frame.get("resAc")
        data = frame.get("data")
        if reply is None and type(data) is dict:
            return _push(data)
    except (ValueError, AttributeError, TypeError, KeyError) as e:
        raise ProtocolError(
            f"iTick sent a malformed frame ({type(e).__name__}: {e}), was {clip(text)}; the frame is skipped"
        ) from None
    code, message = frame.get("code"), str(frame.get("msg") or "")
    if reply is None:
        if data is None and "msg" in frame:
            return [Connected(message) if code == 1 else ServerError(code, message)]
        return []
    if reply == "pong":
        echo = data.get("params") if isinstance(data, dict) else None
        return [Pong(None if echo is None else str(echo))]
    if reply == "auth":
        return [AuthResult(code == 1, message)]
    if reply in ("subscribe", "unsubscribe"):
        return [Ack(reply, code == 1, message)]
    return [] if code == 1 else [ServerError(code, message)]


def _resolve(data: dict[str, Any]) -> tuple[str, markets.Market]:
    return symbol_and_market(str(data["s"]), data.get("r"))


def _push(data: dict[str, Any]) -> list[Event]:
    kind = data.get("type")
    if kind == "tick":
        return [read_tick(data, _resolve(data)[0])]
    if kind == "quote":
        return [read_quote(data, _resolve(data)[0])]
    if kind == "depth":
        return [read_depth(data, _resolve(data)[0])]
    if kind is not None and kind.startswith("kline@"):
        ktype, bar = kind[6:], data
    elif kind is None and isinstance(data.get("k"), dict):
        ktype, bar = data.get("t"), data["k"]  # legacy: data.t is the kType, data.k the bar
    else:
        return []
    number = int_or_none(ktype)
    period = PERIOD_OF_KTYPE.get(number) if number is not None else None
    if period is None:
        return []  # kType 3 is ambiguous (see codes); we never subscribe to it
    symbol, market = _resolve(data)
    return [read_kline(bar, symbol, period, market, "kline push")]
