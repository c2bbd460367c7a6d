"""iTick's wire format, the seed article's dialect: ``/stock/kline?region=&code=&kType=``, ``ac`` frames.

Pure: builds :class:`~backtrader_alltick.wire.HttpRequest` values and text frames, and
turns decoded JSON and frame text into :mod:`~backtrader_alltick.records`; no I/O, no
clock.  Section numbers below refer to ``shared/protocol/itick.md``.  Where the
reference is UNCERTAIN every documented variant is accepted: symbols as ``EURUSD``,
``EURUSD$GB``, ``AAPL.US`` or ``BA_BTC_USDT``; ``data`` as null, an object, a list or a
map keyed by code; the flat ``kline@N`` push and the legacy nested ``k`` one.

kType 3 is 15 minutes in the current docs but 10 minutes in the 2024 ones, and a
response cannot tell which the server meant, so ``15m`` is not native here: the caller
builds it from ``5m`` (section 5.1).

Example::

    inst = parse_symbol("AAPL.US")
    request = authorize(kline_request(inst, "1m", 500), token)
    bars = parse_klines(response.status_code, response.json(), inst, "1m")
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any

from .. import markets
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
from ..records import Depth, Kline, Quote, Tick
from ..symbols import NON_STOCK_REGIONS, STOCK_REGIONS, Instrument, parse_symbol
from . import Ack, AuthResult, Connected, HttpRequest, Pong, ServerError
from ._decode import (
    MALFORMED,
    amount,
    checked_kline,
    clip,
    dumps,
    float_or_none,
    int_or_none,
    loads,
    price,
    shape_guard,
    stamp,
    unique_bars,
)

NAME = "itick"
DEFAULT_REST_URL = "https://api.itick.org"
DEFAULT_WS_URL = "wss://api.itick.org"
KLINE_LIMIT = 500  # the SDK docs' maximum for limit= (section 5.2)

# kType codes (section 5.1) without the ambiguous 3; 2h and 4h are crypto only.
KTYPES = {"1m": 1, "5m": 2, "30m": 4, "1h": 5, "2h": 6, "4h": 7, "1d": 8, "1w": 9, "1M": 10}
_PERIOD_OF_KTYPE = {number: name for name, number in KTYPES.items()}
_CRYPTO_ONLY = ("2h", "4h")
FAMILIES = ("stock", "forex", "indices", "crypto")
# Asset path per asset class (sections 3, 7.1); energy sits with forex and metals (INFERRED).
_FAMILY_OF_ASSET = {"stock": "stock", "forex": "forex", "metal": "forex", "energy": "forex",
                    "cfd": "indices", "crypto": "crypto"}
_CODE_ALIASES = {"GOLD": "XAUUSD", "SILVER": "XAGUSD"}  # AllTick's names for iTick's spot metals
# iTick's SDK types say d: 1 sell, 2 buy (UNCERTAIN, section 4.1); records use AllTick's 1 buy, 2 sell.
_DIRECTION = {1: 2, 2: 1}


def native_periods(inst: Instrument | str) -> tuple[str, ...]:
    """Return the period names iTick serves as K-lines for this instrument (never ``15m``)."""
    crypto = parse_symbol(inst).asset == "crypto"
    return tuple(name for name in KTYPES if crypto or name not in _CRYPTO_ONLY)


def can_page_back(inst: Instrument | str) -> bool:
    """Return True: every iTick K-line request accepts an end time ``et`` (section 5.3)."""
    return True


def family(inst: Instrument | str) -> str:
    """Return the asset path that serves the instrument: ``stock``, ``forex``, ``indices`` or ``crypto``."""
    return _FAMILY_OF_ASSET[parse_symbol(inst).asset]


def wire_code(inst: Instrument | str) -> str:
    """Return the bare code as iTick spells it on REST: ``AAPL``, ``700``, ``EURUSD``, ``XAUUSD``."""
    inst = parse_symbol(inst)
    return inst.code if inst.is_stock else _CODE_ALIASES.get(inst.code.upper(), inst.code.upper())


def ws_symbol(inst: Instrument | str) -> str:
    """Return the WebSocket spelling ``CODE$REGION``: ``AAPL$US``, ``EURUSD$GB``, ``BTCUSDT$BA``."""
    inst = parse_symbol(inst)
    return f"{wire_code(inst)}${inst.region}"


def kline_request(inst: Instrument | str, period: str, count: int, end_ms: int | None = None,
                  trace: str | None = None) -> HttpRequest:
    """Build ``GET /{family}/kline`` for the newest ``count`` bars, or those up to ``end_ms`` (ms).

    ``trace`` exists for symmetry with the AllTick dialect; iTick has no such field.
    """
    inst = parse_symbol(inst)
    natives = native_periods(inst)
    if period not in natives:
        raise UnsupportedTimeframe(period, inst.symbol, natives, "not an unambiguous iTick kType")
    if not isinstance(count, int) or not 1 <= count <= KLINE_LIMIT:
        raise ConfigError(f"count must be an integer from 1 to {KLINE_LIMIT}, was {count!r}")
    params = {"region": inst.region, "code": wire_code(inst), "kType": str(KTYPES[period]),
              "limit": str(count)}
    if end_ms is not None:
        params["et"] = str(int(end_ms))
    return HttpRequest("GET", f"/{family(inst)}/kline", "kline", params=params)


def trades_request(insts: Iterable[Instrument | str]) -> HttpRequest:
    """Build ``GET /{family}/tick`` (one code) or ``/ticks`` (several; one family and region)."""
    return _latest_request(insts, "tick")


def quote_request(insts: Iterable[Instrument | str]) -> HttpRequest:
    """Build ``GET /{family}/quote`` (one code) or ``/quotes`` (several; one family and region)."""
    return _latest_request(insts, "quote")


def depth_request(insts: Iterable[Instrument | str]) -> HttpRequest:
    """Build ``GET /{family}/depth`` (one code) or ``/depths`` (several; one family and region)."""
    return _latest_request(insts, "depth")


def request_groups(insts: Iterable[Instrument | str]) -> list[tuple[Instrument, ...]]:
    """Split instruments into groups that can share one request (same asset path and region)."""
    groups: dict[tuple[str, str], list[Instrument]] = {}
    for inst in map(parse_symbol, insts):
        groups.setdefault((family(inst), inst.region), []).append(inst)
    return [tuple(group) for group in groups.values()]


def authorize(request: HttpRequest, token: str) -> HttpRequest:
    """Return the request with the token placed: iTick takes it as the ``token`` header (section 1)."""
    return request.with_headers(token=token, accept="application/json")


@shape_guard("iTick", "a K-line answer")
def parse_klines(status: int, payload: Any, inst: Instrument | str, period: str) -> list[Kline]:
    """Return the bars of a ``/kline`` or ``/klines`` response, oldest first, unique by start.

    ``data`` null, ``{}`` or ``[]`` is an empty list (iTick's answer for an unentitled
    code, section 9.2).  The newest bar may be forming: the caller filters it.
    """
    inst = parse_symbol(inst)
    data = _data_of(status, payload, inst.symbol)
    if isinstance(data, dict) and data:
        if "t" in data and ("c" in data or "o" in data):
            data = [data]
        else:  # a /klines map keyed by code; 2024 docs keyed by "700.HK" (section 2.3)
            keys = (wire_code(inst), inst.code, inst.symbol, ws_symbol(inst))
            found = next((data[key] for key in keys if key in data), None)
            data = found if found is not None or len(data) != 1 else next(iter(data.values()))
    if not data:
        return []
    if not isinstance(data, list):
        raise ProtocolError(f"iTick K-line data for {inst.symbol} must be a list, was {clip(data)}")
    return unique_bars(_kline(row, inst.symbol, period, inst.market, "K-line") for row in data)


@shape_guard("iTick", "a trades answer")
def parse_trades(status: int, payload: Any, insts: Iterable[Instrument | str] = ()) -> list[Tick]:
    """Return the latest trades of a ``/tick`` or ``/ticks`` response.

    REST answers carry bare codes (``700``) without a region: pass the requested
    ``insts`` so each record gets its canonical symbol (``700.HK``).
    """
    return [_tick(row, symbol) for row, symbol in _latest_rows(status, payload, insts, "tick")]


@shape_guard("iTick", "a quotes answer")
def parse_quotes(status: int, payload: Any, insts: Iterable[Instrument | str] = ()) -> list[Quote]:
    """Return the quotes of a ``/quote`` or ``/quotes`` response (pass ``insts`` as for parse_trades)."""
    return [_quote(row, symbol) for row, symbol in _latest_rows(status, payload, insts, "quote")]


@shape_guard("iTick", "a depth answer")
def parse_depth(status: int, payload: Any, insts: Iterable[Instrument | str] = ()) -> list[Depth]:
    """Return the books of a ``/depth`` or ``/depths`` response, best level first (``po`` 1)."""
    return [_depth(row, symbol) for row, symbol in _latest_rows(status, payload, insts, "depth")]


def error_for(status: int | None, code: int | str | None, message: str | None, symbol: str | None = None,
              family: str | None = None) -> APIError:
    """Map an HTTP status and an iTick ``code``/``msg`` (section 9.2) to the exception to raise."""
    subject = f" for {symbol}" if symbol else ""
    said = f"HTTP {status}, code {code!r}, msg {message!r}"
    text = f"{code} {message}".lower()
    fields = {"status": status, "code": code, "symbol": symbol}
    if status in (401, 403) or "e002" in text or "auth failed" in text:
        return AuthError(f"iTick rejected the token{subject} ({said}); set ALLTICK_TOKEN (or pass token=) "
                         "to your iTick API key", **fields)
    if status == 429 or str(code) == "429" or "rate limit" in text or "request limit exceeded" in text:
        return RateLimited(f"iTick rate limit exceeded{subject} ({said}); wait before retrying and set "
                           "plan= to your iTick plan so requests are spaced to fit it", **fields)
    if "e001" in text or "not found" in text:
        return SymbolNotFound(f"iTick does not know {symbol or 'the code'} ({said}); check the region and "
                              "code against iTick's /symbol/list (e.g. 'AAPL.US', '700.HK', 'EURUSD', "
                              "'BTCUSDT')", **fields)
    if "e003" in text or "maximum subscription limit" in text:
        return PlanLimitError(f"iTick refused the request{subject} as beyond the plan ({said}); subscribe "
                              "fewer symbols or upgrade the plan", **fields)
    if status is not None and status >= 500:
        return APIError(f"iTick answered{subject} with {said}; the service is failing, retry later", **fields)
    return APIError(f"iTick answered{subject} with an error ({said}); check the request against iTick's "
                    "docs", **fields)


def ws_connect(ws_root: str, family: str, token: str) -> tuple[str, dict[str, str]]:
    """Return the URL and headers of the asset path's WebSocket; the token is a header (section 7.2)."""
    _check_family(family)
    return f"{ws_root.rstrip('/')}/{family}", {"token": token}


def subscribe_messages(family: str, trades: Iterable[Instrument | str], depth: Iterable[Instrument | str],
                       seq: int) -> list[str]:
    """Return one ``subscribe`` for the merged list: ``tick`` for trades, plus ``quote,depth`` for books.

    iTick subscriptions add up (section 8.2), so resending the full set is harmless.
    Nothing to subscribe gives ``[]``: iTick's unsubscribe is unreliable (section 8.3).
    ``seq`` is unused: iTick frames carry no sequence number.
    """
    _check_family(family)
    trades, depth = list(map(parse_symbol, trades)), list(map(parse_symbol, depth))
    strangers = [inst.symbol for inst in trades + depth if _FAMILY_OF_ASSET[inst.asset] != family]
    if strangers:
        raise ConfigError(f"symbols {', '.join(strangers)} are not served on iTick's /{family} socket; "
                          "subscribe them on their own connection")
    params = list(dict.fromkeys(ws_symbol(inst) for inst in trades + depth))
    if not params:
        return []
    types = ["tick"] * bool(trades) + ["quote", "depth"] * bool(depth)
    return [dumps({"ac": "subscribe", "params": ",".join(params), "types": ",".join(types)})]


def heartbeat_message(now_ms: int, seq: int) -> str:
    """Return the JSON ``ping`` carrying ``now_ms`` as a string; the pong echoes it (section 8.5)."""
    return dumps({"ac": "ping", "params": str(int(now_ms))})


@shape_guard("iTick", "a frame")
def parse_frame(text: str | bytes) -> list:
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
        raise ProtocolError(f"iTick sent a malformed frame ({type(e).__name__}: {e}), was {clip(text)}; "
                            "the frame is skipped") from None
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


def _check_family(name: str) -> None:
    if name not in FAMILIES:
        raise ConfigError(f"family must be one of {', '.join(FAMILIES)}, was {name!r}")


def _latest_request(insts: Iterable[Instrument | str], endpoint: str) -> HttpRequest:
    insts = [parse_symbol(inst) for inst in insts]
    groups = request_groups(insts)
    if len(groups) != 1:
        raise ConfigError(f"one iTick {endpoint} request serves one asset path and region; split the symbols "
                          f"(see request_groups), was {', '.join(i.symbol for i in insts) or 'no symbol'}")
    first = insts[0]
    if len(insts) == 1:
        params = {"region": first.region, "code": wire_code(first)}
        return HttpRequest("GET", f"/{family(first)}/{endpoint}", endpoint, params=params)
    params = {"region": first.region, "codes": ",".join(dict.fromkeys(map(wire_code, insts)))}
    return HttpRequest("GET", f"/{family(first)}/{endpoint}s", endpoint, params=params)


def _data_of(status: int, payload: Any, subject: str | None) -> Any:
    # REST error = HTTP >= 400 or code != 0 (section 9.2); the body of an HTTP error is undocumented.
    envelope = payload if isinstance(payload, dict) else {}
    if status >= 400:
        raise error_for(status, envelope.get("code"), envelope.get("msg"), subject)
    if "code" not in envelope:
        shape = "a body that is not JSON" if payload is None else f"JSON without 'code', was {clip(payload)}"
        raise ProtocolError(f"iTick answered{' for ' + subject if subject else ''} with {shape} "
                            f"(HTTP {status}); check the REST URL points at an iTick service")
    if envelope["code"] not in (0, "0"):
        raise error_for(status, envelope["code"], envelope.get("msg"), subject)
    return envelope.get("data")


def _latest_rows(status: int, payload: Any, insts: Iterable[Instrument | str], kind: str
                 ) -> list[tuple[dict, str]]:
    insts = [parse_symbol(inst) for inst in insts]
    data = _data_of(status, payload, ", ".join(inst.symbol for inst in insts) or None)
    if not data:
        return []
    if isinstance(data, dict):
        # One object (/tick) or a map keyed by code (/ticks, section 4).
        items = [(None, data)] if not all(isinstance(v, dict) for v in data.values()) else list(data.items())
    elif isinstance(data, list):
        items = [(None, row) for row in data]
    else:
        raise ProtocolError(f"iTick {kind} data must be an object or a list, was {clip(data)}")
    requested = {wire_code(inst): inst.symbol for inst in insts}
    rows = []
    for key, row in items:
        raw = row.get("s", key) if isinstance(row, dict) else None
        if raw is None:
            raise ProtocolError(f"iTick sent a {kind} without a symbol 's', was {clip(row)}")
        symbol = requested.get(str(raw)) or _symbol_and_market(str(raw), row.get("r"))[0]
        rows.append((row, symbol))
    return rows


@lru_cache(maxsize=4096)
def _symbol_and_market(raw: str, region: str | None) -> tuple[str, markets.Market]:
    # Section 8.4: strip "$..." or ".XX" to get the code, region from "r" or the suffix.
    code, suffix = raw, None
    head, dot, tail = raw.rpartition(".")
    if "$" in raw:
        code, _, rest = raw.partition("$")
        suffix = rest.split("$")[-1]
    elif dot and tail.upper() in STOCK_REGIONS:
        code, suffix = head, tail  # the 2024 "AAPL.US" style
    else:
        head, underscore, tail = raw.partition("_")
        if underscore and head in NON_STOCK_REGIONS:
            code, suffix = tail.replace("_", ""), head  # 2024's "BA_BTC_USDT" (section 6)
    try:
        inst = parse_symbol(code, region or suffix or None)
    except InvalidSymbol:
        return code, markets.CRYPTO  # unknown to our classifier: keep the code, plain UTC calendar
    return inst.symbol, inst.market


def _resolve(data: dict) -> tuple[str, markets.Market]:
    return _symbol_and_market(str(data["s"]), data.get("r"))


def _push(data: dict) -> list:
    kind = data.get("type")
    if kind == "tick":
        return [_tick(data, _resolve(data)[0])]
    if kind == "quote":
        return [_quote(data, _resolve(data)[0])]
    if kind == "depth":
        return [_depth(data, _resolve(data)[0])]
    if kind is not None and kind.startswith("kline@"):
        ktype, bar = kind[6:], data
    elif kind is None and isinstance(data.get("k"), dict):
        ktype, bar = data.get("t"), data["k"]  # legacy: data.t is the kType, data.k the bar
    else:
        return []
    period = _PERIOD_OF_KTYPE.get(int_or_none(ktype))
    if period is None:
        return []  # kType 3 is ambiguous (see module docstring); we never subscribe to it
    symbol, market = _resolve(data)
    return [_kline(bar, symbol, period, market, "kline push")]


def _kline(row: dict, symbol: str, period: str, market: markets.Market, kind: str) -> Kline:
    try:
        return checked_kline(row, ("t", "o", "h", "l", "c", "v", "tu"), symbol, period, market)
    except MALFORMED as e:
        raise ProtocolError(f"iTick sent a malformed {kind} for {symbol} ({type(e).__name__}: {e}), "
                            f"was {clip(row)}") from None


def _tick(data: dict, symbol: str) -> Tick:
    try:
        return Tick(symbol, stamp(data["t"], "t"), price(data["ld"], "ld"), amount(data.get("v"), "v"),
                    amount(data.get("tu"), "tu"), None, _DIRECTION.get(data.get("d"), 0))
    except MALFORMED as e:
        raise ProtocolError(f"iTick sent a malformed tick for {symbol} ({type(e).__name__}: {e}), "
                            f"was {clip(data)}; it is skipped") from None


def _quote(data: dict, symbol: str) -> Quote:
    try:
        return Quote(symbol, stamp(data["t"], "t"), price(data["ld"], "ld"), float_or_none(data.get("o")),
                     float_or_none(data.get("h")), float_or_none(data.get("l")), float_or_none(data.get("v")),
                     float_or_none(data.get("tu")), float_or_none(data.get("p")))
    except MALFORMED as e:
        raise ProtocolError(f"iTick sent a malformed quote for {symbol} ({type(e).__name__}: {e}), "
                            f"was {clip(data)}; it is skipped") from None


def _depth(data: dict, symbol: str) -> Depth:
    # Depth carries no time in the docs' examples (section 8.4): 0 means "not given".
    try:
        time = stamp(data["t"], "t") if data.get("t") is not None else 0
        return Depth(symbol, time, _levels(data.get("b")), _levels(data.get("a")))
    except MALFORMED as e:
        raise ProtocolError(f"iTick sent a malformed book for {symbol} ({type(e).__name__}: {e}), "
                            f"was {clip(data)}; it is skipped") from None


def _levels(side: Sequence[dict] | None) -> tuple[tuple[float, float], ...]:
    ordered = sorted(side or (), key=lambda level: int(level.get("po") or 0))
    return tuple((price(level["p"], "p"), amount(level.get("v"), "v")) for level in ordered)
