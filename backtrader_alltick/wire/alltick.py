"""AllTick's own wire format, the default dialect: ``query=`` JSON on REST, ``cmd_id`` frames on WebSocket.

Pure: builds :class:`~backtrader_alltick.wire.HttpRequest` values and text frames, and
turns decoded JSON and frame text into :mod:`~backtrader_alltick.records`; no I/O, no
clock.  Section numbers below refer to ``shared/protocol/alltick.md``.  Where the
reference is UNCERTAIN every documented variant is accepted: numbers as strings or
numbers, seconds or milliseconds, bars in any order or repeated, the batch-kline
``kline_data`` shape.

Example::

    inst = parse_symbol("AAPL.US")
    request = authorize(kline_request(inst, "1m", 500), token)
    bars = parse_klines(response.status_code, response.json(), inst, "1m")
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any
from urllib.parse import quote

from ..errors import (
    APIError,
    AuthError,
    ConfigError,
    InvalidSymbol,
    PlanLimitError,
    ProtocolError,
    RateLimited,
    SymbolNotFound,
    UnsupportedTimeframe,
)
from ..records import Depth, Kline, Tick
from ..symbols import STOCK_REGIONS, Instrument, parse_symbol
from . import Ack, HttpRequest, Pong, ServerError
from ._decode import (
    MALFORMED,
    amount,
    checked_kline,
    clip,
    dumps,
    int_or_none,
    loads,
    price,
    shape_guard,
    stamp,
    unique_bars,
)

NAME = "alltick"
DEFAULT_REST_URL = "https://quote.alltick.co"
DEFAULT_WS_URL = "wss://quote.alltick.co"
KLINE_LIMIT = 500  # query_kline_num is cut to 500 (section 4.1)
BATCH_KLINE_LIMIT = 2  # bars per (code, kline_type) group on /batch-kline (section 4.2)

# kline_type codes (section 4.1); 2h and 4h are not served for stocks.
KLINE_TYPES = {"1m": 1, "5m": 2, "15m": 3, "30m": 4, "1h": 5, "2h": 6, "4h": 7, "1d": 8, "1w": 9, "1M": 10}
_STOCK_PERIODS = tuple(name for name in KLINE_TYPES if name not in ("2h", "4h"))
_REST_BASE = {"stock": "/quote-stock-b-api", "other": "/quote-b-api"}
_WS_PATH = {"stock": "/quote-stock-b-ws-api", "other": "/quote-b-ws-api"}
# iTick's spot-metal spellings; AllTick only knows GOLD and Silver (section 8).
_CODE_ALIASES = {"XAUUSD": "GOLD", "XAGUSD": "Silver"}
_ACK_ACTIONS = {22003: "subscribe_depth", 22005: "subscribe_trades", 22007: "cancel"}
_FATAL_RET = 606  # "connection will be closed" (section 7)
_KLINE_FIELDS = ("timestamp", "open_price", "high_price", "low_price", "close_price", "volume", "turnover")


def native_periods(inst: Instrument | str) -> tuple[str, ...]:
    """Return the period names AllTick serves as K-lines for this instrument."""
    return _STOCK_PERIODS if parse_symbol(inst).is_stock else tuple(KLINE_TYPES)


def can_page_back(inst: Instrument | str) -> bool:
    """Return True when K-line requests accept an end time (non-stock codes only, section 4.1)."""
    return not parse_symbol(inst).is_stock


def family(inst: Instrument | str) -> str:
    """Return ``"stock"`` (stocks and exchange indices) or ``"other"`` (forex, metals, crypto, CFDs)."""
    return "stock" if parse_symbol(inst).is_stock else "other"


def wire_code(inst: Instrument | str) -> str:
    """Return the code as AllTick spells it: ``AAPL.US``, ``700.HK``, ``EURUSD``, ``GOLD``."""
    inst = parse_symbol(inst)
    return inst.symbol if inst.is_stock else _CODE_ALIASES.get(inst.code.upper(), inst.code)


def kline_request(inst: Instrument | str, period: str, count: int, end_ms: int | None = None,
                  trace: str | None = None) -> HttpRequest:
    """Build ``GET /kline`` for the newest ``count`` bars, or the ``count`` bars up to ``end_ms``."""
    inst = parse_symbol(inst)
    _check_count(count, KLINE_LIMIT)
    end = 0  # 0 means "from the latest bar backwards"
    if end_ms is not None:
        if not can_page_back(inst):
            raise ConfigError(f"end_ms cannot be used for {inst.symbol}: AllTick serves only the newest "
                              f"{KLINE_LIMIT} bars of stock codes; pass end_ms=None, was {end_ms!r}")
        end = int(end_ms) // 1000  # INFERRED seconds, the unit of the bar timestamps (section 4.1)
    data = _kline_item(inst, period, count, end)
    return HttpRequest("GET", f"{_REST_BASE[family(inst)]}/kline", "kline",
                       params={"query": _envelope(trace or _trace("kline", data), data)})


def batch_kline_request(items: Sequence[tuple[Instrument | str, str, int]],
                        trace: str | None = None) -> HttpRequest:
    """Build ``POST /batch-kline`` for the newest 1-2 bars of several ``(inst, period, count)`` groups."""
    if not items:
        raise ConfigError("batch_kline_request needs at least one (symbol, period, count) item, was []")
    insts = [parse_symbol(inst) for inst, _, _ in items]
    fam = _one_family(insts)
    data_list = []
    for inst, (_, period, count) in zip(insts, items):
        _check_count(count, BATCH_KLINE_LIMIT)
        data_list.append(_kline_item(inst, period, count, 0))
    data = {"data_list": data_list}
    body = _envelope(trace or _trace("batch-kline", data), data).encode()
    return HttpRequest("POST", f"{_REST_BASE[fam]}/batch-kline", "batch-kline",
                       headers={"Content-Type": "application/json"}, body=body)


def trades_request(insts: Iterable[Instrument | str], trace: str | None = None) -> HttpRequest:
    """Build ``GET /trade-tick``: the latest trade of each code (one endpoint family per request)."""
    return _symbol_list_request(insts, "trade-tick", trace)


def depth_request(insts: Iterable[Instrument | str], trace: str | None = None) -> HttpRequest:
    """Build ``GET /depth-tick``: the latest order book of each code (one endpoint family per request)."""
    return _symbol_list_request(insts, "depth-tick", trace)


def request_groups(insts: Iterable[Instrument | str]) -> list[tuple[Instrument, ...]]:
    """Split instruments into groups that can share one trades/depth request (one per family)."""
    groups: dict[str, list[Instrument]] = {}
    for inst in map(parse_symbol, insts):
        groups.setdefault(family(inst), []).append(inst)
    return [tuple(group) for group in groups.values()]


def authorize(request: HttpRequest, token: str) -> HttpRequest:
    """Return the request with the token placed: AllTick takes it as the ``token`` query parameter."""
    return request.with_params(token=token)


@shape_guard("AllTick", "a K-line answer")
def parse_klines(status: int, payload: Any, inst: Instrument | str, period: str) -> list[Kline]:
    """Return the bars of a ``/kline`` (or one-group ``/batch-kline``) response, oldest first, unique.

    Bars keep their vendor start time and gain their close stamp (``end``); the newest bar
    may still be forming: the caller filters it with its clock.
    """
    inst = parse_symbol(inst)
    data = _data_of(status, payload, inst.symbol, family(inst))
    rows = _kline_rows(data, wire_code(inst), KLINE_TYPES.get(period), inst.symbol)
    return _to_klines(rows, inst, period)


@shape_guard("AllTick", "a batch K-line answer")
def parse_batch_klines(status: int, payload: Any, wanted: Sequence[tuple[Instrument | str, str]]
                       ) -> dict[tuple[str, str], list[Kline]]:
    """Return ``{(symbol, period): bars}`` for the ``(inst, period)`` groups of a ``/batch-kline`` answer."""
    insts = [(parse_symbol(inst), period) for inst, period in wanted]
    subject = ", ".join(inst.symbol for inst, _ in insts)
    data = _data_of(status, payload, subject, family(insts[0][0]) if insts else None)
    return {(inst.symbol, period): _to_klines(_kline_rows(data, wire_code(inst), KLINE_TYPES.get(period),
                                                          inst.symbol), inst, period)
            for inst, period in insts}


@shape_guard("AllTick", "a trades answer")
def parse_trades(status: int, payload: Any, insts: Iterable[Instrument | str] = ()) -> list[Tick]:
    """Return the latest trade per code of a ``/trade-tick`` response (``insts`` only names the subject)."""
    rows = _tick_list(status, payload, insts, "trade-tick")
    return [_tick(row, "trade-tick") for row in rows]


@shape_guard("AllTick", "a depth answer")
def parse_depth(status: int, payload: Any, insts: Iterable[Instrument | str] = ()) -> list[Depth]:
    """Return the latest book per code of a ``/depth-tick`` response, levels in the vendor's order."""
    rows = _tick_list(status, payload, insts, "depth-tick")
    return [_depth(row, "depth-tick") for row in rows]


def error_for(status: int | None, code: int | None, message: str | None, symbol: str | None = None,
              family: str | None = None) -> APIError:
    """Map an HTTP status and a ``ret`` code (section 7) to the exception the caller should raise."""
    code = int_or_none(code) if code is not None else None  # some callers hold "605" as text
    subject = f" for {symbol}" if symbol else ""
    said = (f"ret {code} {message!r}" if code is not None
            else f"HTTP {status}" + (f" {message!r}" if message else ""))
    fields = {"status": status, "code": code, "symbol": symbol}
    if code == 401 or (code is None and status in (401, 403)):
        return AuthError(f"AllTick rejected the token{subject} ({said}); set ALLTICK_TOKEN (or pass token=) "
                         "to a valid, unexpired AllTick token", **fields)
    if code in (429, 605, _FATAL_RET) or (code is None and status == 429):
        return RateLimited(f"AllTick rate limit exceeded{subject} ({said}); wait before retrying and set "
                           "plan= to your token's plan so requests are spaced to fit it", **fields)
    if code == 600:
        where = f" on the {family} endpoints ({_REST_BASE[family]})" if family in _REST_BASE else ""
        return SymbolNotFound(f"AllTick does not know {symbol or 'the code'}{where} ({said}); check the code "
                              "against AllTick's product list (case matters: 'AAPL.US', '700.HK', 'EURUSD', "
                              "'GOLD')", **fields)
    if code == 603:
        return PlanLimitError(f"AllTick refused the request{subject} as too large for the token's plan "
                              f"({said}); request fewer codes, groups or bars, or upgrade the plan", **fields)
    if code == 604:
        return PlanLimitError(f"the AllTick token is not authorized{subject} ({said}); add the code to your "
                              "AllTick plan or use a code the plan includes", **fields)
    if code in (201, 202, 400, 402, 601):
        return APIError(f"AllTick rejected the request{subject} as malformed ({said}); this is a bug in "
                        "backtrader_alltick, please report it with this message", **fields)
    if code is None and status is not None and status >= 500:
        return APIError(f"AllTick answered{subject} with {said}; the service is failing, retry later",
                        **fields)
    return APIError(f"AllTick answered{subject} with {said}; see the error table in AllTick's docs",
                    **fields)


def ws_connect(ws_root: str, family: str, token: str) -> tuple[str, dict[str, str]]:
    """Return the URL and headers of the family's WebSocket; the token rides in the URL (section 5.1)."""
    if family not in _WS_PATH:
        raise ConfigError(f"family must be one of {', '.join(_WS_PATH)}, was {family!r}")
    return f"{ws_root.rstrip('/')}{_WS_PATH[family]}?token={quote(token, safe='')}", {}


def subscribe_messages(family: str, trades: Iterable[Instrument | str], depth: Iterable[Instrument | str],
                       seq: int) -> list[str]:
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
        second = _frame(22002, seq, {"symbol_list": [{"code": wire_code(i), "depth_level": _depth_level(i)}
                                                     for i in depth]})
    else:
        second = _frame(22006, seq, {"cancel_type": 1}, "cancel-depth")
    return [first, second]


def heartbeat_message(now_ms: int, seq: int) -> str:
    """Return the 22000 heartbeat; send one every 10 s (section 5.3).  ``now_ms`` is not on the wire."""
    return _frame(22000, seq, {})


@shape_guard("AllTick", "a frame")
def parse_frame(text: str | bytes) -> list:
    """Turn one text frame into events: Tick, Depth, Pong, Ack or ServerError (``[]`` if unknown).

    Raises ProtocolError for invalid JSON or a push missing required fields; the
    stream counts and skips those.
    """
    try:
        frame = loads(text)
        cmd_id = frame.get("cmd_id")
        if cmd_id == 22998:
            return [_tick(frame["data"], "22998")]
        if cmd_id == 22999:
            return [_depth(frame["data"], "22999")]
        ret = frame.get("ret")
    except (ValueError, AttributeError, TypeError, KeyError) as e:
        raise ProtocolError(f"AllTick sent a malformed frame ({type(e).__name__}: {e}), was "
                            f"{clip(text)}; the frame is skipped") from None
    if ret is not None and not isinstance(ret, int):
        ret = int_or_none(ret)
    message = str(frame.get("msg") or "")
    if ret == _FATAL_RET:
        return [ServerError(ret, message, fatal=True)]
    if cmd_id in _ACK_ACTIONS:
        ok = ret == 200
        return [Ack(_ACK_ACTIONS[cmd_id], ok, message if ok else f"{message} (ret {ret})",
                    int_or_none(frame.get("seq_id")))]
    if cmd_id == 22001 and ret in (200, None):
        return [Pong(frame.get("trace"))]
    if ret is not None and ret != 200:
        return [ServerError(ret, message, fatal=False)]
    return []


def _check_count(count: int, limit: int) -> None:
    if not isinstance(count, int) or not 1 <= count <= limit:
        raise ConfigError(f"count must be an integer from 1 to {limit}, was {count!r}")


def _kline_item(inst: Instrument, period: str, count: int, end: int) -> dict[str, Any]:
    natives = native_periods(inst)
    if period not in natives:
        raise UnsupportedTimeframe(period, inst.symbol, natives, "not an AllTick kline_type")
    return {"code": wire_code(inst), "kline_type": KLINE_TYPES[period], "kline_timestamp_end": end,
            "query_kline_num": count, "adjust_type": 0}  # only 0 (unadjusted) is served (section 4.1)


def _symbol_list_request(insts: Iterable[Instrument | str], endpoint: str, trace: str | None) -> HttpRequest:
    insts = [parse_symbol(inst) for inst in insts]
    if not insts:
        raise ConfigError(f"{endpoint} needs at least one symbol, was []")
    data = {"symbol_list": [{"code": wire_code(inst)} for inst in insts]}
    return HttpRequest("GET", f"{_REST_BASE[_one_family(insts)]}/{endpoint}", endpoint,
                       params={"query": _envelope(trace or _trace(endpoint, data), data)})


def _one_family(insts: Sequence[Instrument]) -> str:
    families = {family(inst) for inst in insts}
    if len(families) != 1:
        raise ConfigError("one AllTick request serves one endpoint family; split stocks from forex, metals, "
                          f"crypto and CFDs (see request_groups), was {', '.join(i.symbol for i in insts)}")
    return families.pop()


def _of_family(insts: Iterable[Instrument | str], fam: str) -> list[Instrument]:
    if fam not in _WS_PATH:
        raise ConfigError(f"family must be one of {', '.join(_WS_PATH)}, was {fam!r}")
    insts = [parse_symbol(inst) for inst in insts]
    strangers = [inst.symbol for inst in insts if family(inst) != fam]
    if strangers:
        raise ConfigError(f"symbols {', '.join(strangers)} belong to another AllTick family than {fam!r}; "
                          "subscribe them on their own connection")
    return insts


def _depth_level(inst: Instrument) -> int:
    # Deepest book each market serves (section 4.4); asking for more returns what exists.
    if inst.region == "HK":
        return 10
    return 5 if inst.region in ("SH", "SZ") or inst.asset == "crypto" else 1


def _trace(endpoint: str, data: dict[str, Any]) -> str:
    # Deterministic (no uuid or clock in pure code) and at most 64 characters (section 3.1).
    values = list(data.values())
    readable = f"bt-{endpoint}-" + "-".join(map(str, values))
    if len(readable) <= 64 and all(isinstance(value, (str, int)) for value in values):
        return readable
    return f"bt-{endpoint}-{hashlib.sha1(dumps(data).encode()).hexdigest()[:24]}"


def _envelope(trace: str, data: dict[str, Any]) -> str:
    if len(trace) > 64:
        raise ConfigError(f"trace must be at most 64 characters, was {len(trace)} ({trace[:20]!r}...)")
    return dumps({"trace": trace, "data": data})


def _frame(cmd_id: int, seq: int, data: dict[str, Any], kind: str | None = None) -> str:
    # The trace must never repeat (section 3.3): command plus our own sequence number.
    return dumps({"cmd_id": cmd_id, "seq_id": seq, "trace": f"bt-{kind or cmd_id}-{seq}", "data": data})


def _data_of(status: int, payload: Any, symbol: str | None, fam: str | None) -> Any:
    # Check both the HTTP status and ret: a rate limit may come as HTTP 200 + ret 605 (section 6.4).
    if isinstance(payload, dict) and "ret" in payload:
        ret = int_or_none(payload["ret"])
        if ret is None:
            raise ProtocolError(f"AllTick ret{' for ' + symbol if symbol else ''} must be an integer, "
                                f"was {payload['ret']!r}")
        if ret != 200:
            raise error_for(status, ret, str(payload.get("msg") or ""), symbol, fam)
        if status >= 400:
            raise error_for(status, None, str(payload.get("msg") or ""), symbol, fam)
        return payload.get("data")
    if status >= 400:
        raise error_for(status, None, None, symbol, fam)
    shape = "a body that is not JSON" if payload is None else f"JSON without 'ret', was {clip(payload)}"
    raise ProtocolError(f"AllTick answered{' for ' + symbol if symbol else ''} with {shape} "
                        f"(HTTP {status}); check the REST URL points at an AllTick service")


def _kline_rows(data: Any, code: str, kline_type: int | None, symbol: str) -> list:
    if not data:
        return []
    if not isinstance(data, dict):
        raise ProtocolError(f"AllTick K-line data for {symbol} must be an object, was {clip(data)}")
    rows = data.get("kline_list") or []
    if rows and isinstance(rows[0], dict) and "kline_data" in rows[0]:
        # The batch shape: one group per (code, kline_type); pick ours (section 4.2).
        groups = [g for g in rows if g.get("code") == code and
                  int_or_none(g.get("kline_type")) in (kline_type, None)]
        rows = [row for group in groups for row in (group.get("kline_data") or [])]
    if not isinstance(rows, list):
        raise ProtocolError(f"AllTick kline_list for {symbol} must be a list, was {clip(rows)}")
    return rows


def _to_klines(rows: list, inst: Instrument, period: str) -> list[Kline]:
    return unique_bars(_kline(row, inst, period) for row in rows)  # ISSUE #12: repeats, any order


def _kline(row: dict, inst: Instrument, period: str) -> Kline:
    try:  # timestamp: seconds in every example (section 4.1)
        return checked_kline(row, _KLINE_FIELDS, inst.symbol, period, inst.market)
    except MALFORMED as e:
        raise ProtocolError(f"AllTick sent a malformed K-line for {inst.symbol} ({type(e).__name__}: {e}), "
                            f"was {clip(row)}") from None


def _tick_list(status: int, payload: Any, insts: Iterable[Instrument | str], endpoint: str) -> list:
    insts = [parse_symbol(inst) for inst in insts]
    subject = ", ".join(inst.symbol for inst in insts) or None
    data = _data_of(status, payload, subject, family(insts[0]) if insts else None)
    rows = ((data or {}).get("tick_list") or []) if isinstance(data, (dict, type(None))) else data
    if not isinstance(rows, list):
        raise ProtocolError(f"AllTick {endpoint} tick_list must be a list, was {clip(rows)}")
    return rows


def _tick(data: dict, kind: str) -> Tick:
    try:
        seq = data.get("seq")
        return Tick(_symbol_of(data["code"]), stamp(data["tick_time"], "tick_time"),
                    price(data["price"], "price"), amount(data.get("volume"), "volume"),
                    amount(data.get("turnover"), "turnover"), None if seq is None else int(seq),
                    int(data.get("trade_direction") or 0))
    except MALFORMED as e:
        raise ProtocolError(f"AllTick sent a malformed {kind} trade ({type(e).__name__}: {e}), "
                            f"was {clip(data)}; it is skipped") from None


def _depth(data: dict, kind: str) -> Depth:
    try:
        return Depth(_symbol_of(data["code"]), stamp(data["tick_time"], "tick_time"),
                     tuple((price(level["price"], "price"), amount(level.get("volume"), "volume"))
                           for level in data.get("bids") or ()),
                     tuple((price(level["price"], "price"), amount(level.get("volume"), "volume"))
                           for level in data.get("asks") or ()))
    except MALFORMED as e:
        raise ProtocolError(f"AllTick sent a malformed {kind} book ({type(e).__name__}: {e}), "
                            f"was {clip(data)}; it is skipped") from None


@lru_cache(maxsize=4096)
def _symbol_of(code: str) -> str:
    region, dash, number = code.partition("-")
    if dash and region in STOCK_REGIONS:
        code = f"{number}.{region}"  # the old "HK-1288" style of a doc example (section 9.6)
    try:
        return parse_symbol(code).symbol
    except InvalidSymbol:
        return code  # a code our classifier does not know still reaches the caller as sent

