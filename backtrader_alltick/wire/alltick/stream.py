"""AllTick's WebSocket frames: the connection URL, ``cmd_id`` subscribes and heartbeats, pushes, replies.

Pure: builds text frames and turns frame text into records and control events; no I/O,
no clock.  Section numbers refer to ``shared/protocol/alltick.md``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

from ...errors import ConfigError, ProtocolError
from ...symbols import Instrument, parse_symbol
from .. import Ack, Event, Pong, ServerError
from .._decode import clip, dumps, int_or_none, loads, shape_guard
from .codes import FATAL_RET, WS_PATH, family, wire_code
from .ticks import read_depth, read_tick

DEFAULT_WS_URL = "wss://quote.alltick.co"
_ACK_ACTIONS = {22003: "subscribe_depth", 22005: "subscribe_trades", 22007: "cancel"}


def ws_connect(ws_root: str, family: str, token: str) -> tuple[str, dict[str, str]]:
    """Return the URL and headers of the family's WebSocket; the token rides in the URL (section 5.1)."""
    if family not in WS_PATH:
        raise ConfigError(f"family must be one of {', '.join(WS_PATH)}, was {family!r}")
    return f"{ws_root.rstrip('/')}{WS_PATH[family]}?token={quote(token, safe='')}", {}


def subscribe_messages(
    family: str, trades: Iterable[Instrument | str], depth: Iterable[Instrument | str], seq: int
) -> list[str]:
    """Return ``[22004 trades, 22002 depth]`` with the full lists; an empty list becomes its cancel.

    Each subscribe replaces the previous list of its kind (section 5.4), so always pass
    the merged set, and send the two messages at least 1 s apart (section 6.3).
    """
    trades = _of_family(trades, family)
    depth = _of_family(depth, family)
    if trades:
        first = _frame(22004, seq, {"symbol_list": [{"code": wire_code(i)} for i in trades]})
    else:
        first = _frame(22006, seq, {"cancel_type": 2}, "cancel-trades")
    if depth:
        second = _frame(
            22002,
            seq,
            {"symbol_list": [{"code": wire_code(i), "depth_level": _depth_level(i)} for i in depth]},
        )
    else:
        second = _frame(22006, seq, {"cancel_type": 1}, "cancel-depth")
    return [first, second]


def heartbeat_message(now_ms: int, seq: int) -> str:
    """Return the 22000 heartbeat; send one every 10 s (section 5.3).  ``now_ms`` is not on the wire."""
    return _frame(22000, seq, {})


@shape_guard("AllTick", "a frame")
def parse_frame(text: str | bytes) -> list[Event]:
    """Turn one text frame into events: Tick, Depth, Pong, Ack or ServerError (``[]`` if unknown).

    Raises ProtocolError for invalid JSON or a push missing required fields; the
    stream counts and skips those.
    """
    try:
        frame = loads(text)
        cmd_id = frame.get("cmd_id")
        if cmd_id == 22998:
            return [read_tick(frame["data"], "22998")]
        if cmd_id == 22999:
            return [read_depth(frame["data"], "22999")]
        ret = frame.get("ret")
    except (ValueError, AttributeError, TypeError, KeyError) as e:
        raise ProtocolError(
            f"AllTick sent a malformed frame ({type(e).__name__}: {e}), was "
            f"{clip(text)}; the frame is skipped"
        ) from None
    if ret is not None and not isinstance(ret, int):
        ret = int_or_none(ret)
    message = str(frame.get("msg") or "")
    if ret == FATAL_RET:
        return [ServerError(ret, message, fatal=True)]
    if cmd_id in _ACK_ACTIONS:
        ok = ret == 200
        return [
            Ack(
                _ACK_ACTIONS[cmd_id],
                ok,
                message if ok else f"{message} (ret {ret})",
                int_or_none(frame.get("seq_id")),
            )
        ]
    if cmd_id == 22001 and ret in (200, None):
        return [Pong(frame.get("trace"))]
    if ret is not None and ret != 200:
        return [ServerError(ret, message, fatal=False)]
    return []


def _of_family(insts: Iterable[Instrument | str], fam: str) -> list[Instrument]:
    if fam not in WS_PATH:
        raise ConfigError(f"family must be one of {', '.join(WS_PATH)}, was {fam!r}")
    parsed = [parse_symbol(inst) for inst in insts]
    strangers = [inst.symbol for inst in parsed if family(inst) != fam]
    if strangers:
        raise ConfigError(
            f"symbols {', '.join(strangers)} belong to another AllTick family than {fam!r}; "
            "subscribe them on their own connection"
        )
    return parsed


def _depth_level(inst: Instrument) -> int:
    # Deepest book each market serves (section 4.4); asking for more returns what exists.
    if inst.region == "HK":
        return 10
    return 5 if inst.region in ("SH", "SZ") or inst.asset == "crypto" else 1


def _frame(cmd_id: int, seq: int, data: dict[str, Any], kind: str | None = None) -> str:
    # The trace must never repeat (section 3.3): command plus our own sequence number.
    return dumps({"cmd_id": cmd_id, "seq_id": seq, "trace": f"bt-{kind or cmd_id}-{seq}", "data": data})
