"""iTick's REST requests and answers: ``/{path}/kline?region=&code=&kType=``, latest ticks, quotes, books.

Pure: builds :class:`~backtrader_alltick.wire.HttpRequest` values and turns decoded JSON
into :mod:`~backtrader_alltick.records`; no I/O, no clock.  Section numbers refer to
``shared/protocol/itick.md``.  ``data`` may be null, an object, a list or a map keyed by
code, and symbols come as ``EURUSD``, ``EURUSD$GB``, ``AAPL.US`` or ``BA_BTC_USDT``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ...errors import (
    APIError,
    AuthError,
    ConfigError,
    PlanLimitError,
    ProtocolError,
    RateLimited,
    SymbolNotFound,
    UnsupportedTimeframe,
)
from ...records import Depth, Kline, Quote, Tick
from ...symbols import Instrument, parse_symbol
from .. import HttpRequest, subject_of
from .._decode import ErrorFields, clip, shape_guard, unique_bars
from .codes import KTYPES, family, native_periods, symbol_and_market, wire_code, ws_symbol
from .rows import read_depth, read_kline, read_quote, read_tick

DEFAULT_REST_URL = "https://api.itick.org"
KLINE_LIMIT = 500  # the SDK docs' maximum for limit= (section 5.2)


def kline_request(
    inst: Instrument | str, period: str, count: int, end_ms: int | None = None, trace: str | None = None
) -> HttpRequest:
    """Build ``GET /{family}/kline`` for the newest ``count`` bars, or those up to ``end_ms`` (ms).

    ``trace`` exists for symmetry with the AllTick dialect; iTick has no such field.
    """
    inst = parse_symbol(inst)
    natives = native_periods(inst)
    if period not in natives:
        raise UnsupportedTimeframe(period, inst.symbol, natives, "not an unambiguous iTick kType")
    if not isinstance(count, int) or not 1 <= count <= KLINE_LIMIT:
        raise ConfigError(f"count must be an integer from 1 to {KLINE_LIMIT}, was {count!r}")
    params = {
        "region": inst.region,
        "code": wire_code(inst),
        "kType": str(KTYPES[period]),
        "limit": str(count),
    }
    if end_ms is not None:
        params["et"] = str(int(end_ms))
    return HttpRequest("GET", f"/{family(inst)}/kline", "kline", params=params, subject=inst.symbol)


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
    return unique_bars(read_kline(row, inst.symbol, period, inst.market, "K-line") for row in data)


@shape_guard("iTick", "a trades answer")
def parse_trades(status: int, payload: Any, insts: Iterable[Instrument | str] = ()) -> list[Tick]:
    """Return the latest trades of a ``/tick`` or ``/ticks`` response.

    REST answers carry bare codes (``700``) without a region: pass the requested
    ``insts`` so each record gets its canonical symbol (``700.HK``).
    """
    return [read_tick(row, symbol) for row, symbol in _latest_rows(status, payload, insts, "tick")]


@shape_guard("iTick", "a quotes answer")
def parse_quotes(status: int, payload: Any, insts: Iterable[Instrument | str] = ()) -> list[Quote]:
    """Return the quotes of a ``/quote`` or ``/quotes`` response (pass ``insts`` as for parse_trades)."""
    return [read_quote(row, symbol) for row, symbol in _latest_rows(status, payload, insts, "quote")]


@shape_guard("iTick", "a depth answer")
def parse_depth(status: int, payload: Any, insts: Iterable[Instrument | str] = ()) -> list[Depth]:
    """Return the books of a ``/depth`` or ``/depths`` response, best level first (``po`` 1)."""
    return [read_depth(row, symbol) for row, symbol in _latest_rows(status, payload, insts, "depth")]


def error_for(
    status: int | None,
    code: int | str | None,
    message: str | None,
    symbol: str | None = None,
    family: str | None = None,
) -> APIError:
    """Map an HTTP status and an iTick ``code``/``msg`` (section 9.2) to the exception to raise."""
    subject = f" for {symbol}" if symbol else ""
    said = f"HTTP {status}, code {code!r}, msg {message!r}"
    text = f"{code} {message}".lower()
    fields = ErrorFields(status=status, code=code, symbol=symbol)
    if status in (401, 403) or "e002" in text or "auth failed" in text:
        return AuthError(
            f"iTick rejected the token{subject} ({said}); set ALLTICK_TOKEN (or pass token=) "
            "to your iTick API key",
            **fields,
        )
    if status == 429 or str(code) == "429" or "rate limit" in text or "request limit exceeded" in text:
        return RateLimited(
            f"iTick rate limit exceeded{subject} ({said}); wait before retrying and set "
            "plan= to your iTick plan so requests are spaced to fit it",
            **fields,
        )
    if "e001" in text or "not found" in text:
        return SymbolNotFound(
            f"iTick does not know {symbol or 'the code'} ({said}); check the region and "
            "code against iTick's /symbol/list (e.g. 'AAPL.US', '700.HK', 'EURUSD', "
            "'BTCUSDT')",
            **fields,
        )
    if "e003" in text or "maximum subscription limit" in text:
        return PlanLimitError(
            f"iTick refused the request{subject} as beyond the plan ({said}); subscribe "
            "fewer symbols or upgrade the plan",
            **fields,
        )
    if status is not None and status >= 500:
        return APIError(f"iTick answered{subject} with {said}; the service is failing, retry later", **fields)
    return APIError(
        f"iTick answered{subject} with an error ({said}); check the request against iTick's docs", **fields
    )


def _latest_request(insts: Iterable[Instrument | str], endpoint: str) -> HttpRequest:
    parsed = [parse_symbol(inst) for inst in insts]
    groups = request_groups(parsed)
    if len(groups) != 1:
        raise ConfigError(
            f"one iTick {endpoint} request serves one asset path and region; split the symbols "
            f"(see request_groups), was {', '.join(i.symbol for i in parsed) or 'no symbol'}"
        )
    first, subject = parsed[0], subject_of([inst.symbol for inst in parsed])
    if len(parsed) == 1:
        params = {"region": first.region, "code": wire_code(first)}
        return HttpRequest("GET", f"/{family(first)}/{endpoint}", endpoint, params=params, subject=subject)
    params = {"region": first.region, "codes": ",".join(dict.fromkeys(map(wire_code, parsed)))}
    return HttpRequest("GET", f"/{family(first)}/{endpoint}s", endpoint, params=params, subject=subject)


def _data_of(status: int, payload: Any, subject: str | None) -> Any:
    # REST error = HTTP >= 400 or code != 0 (section 9.2); the body of an HTTP error is undocumented.
    envelope = payload if isinstance(payload, dict) else {}
    if status >= 400:
        raise error_for(status, envelope.get("code"), envelope.get("msg"), subject)
    if "code" not in envelope:
        shape = "a body that is not JSON" if payload is None else f"JSON without 'code', was {clip(payload)}"
        raise ProtocolError(
            f"iTick answered{' for ' + subject if subject else ''} with {shape} "
            f"(HTTP {status}); check the REST URL points at an iTick service"
        )
    if envelope["code"] not in (0, "0"):
        raise error_for(status, envelope["code"], envelope.get("msg"), subject)
    return envelope.get("data")


def _latest_rows(
    status: int, payload: Any, insts: Iterable[Instrument | str], kind: str
) -> list[tuple[dict[str, Any], str]]:
    parsed = [parse_symbol(inst) for inst in insts]
    data = _data_of(status, payload, ", ".join(inst.symbol for inst in parsed) or None)
    if not data:
        return []
    if isinstance(data, dict):
        # One object (/tick) or a map keyed by code (/ticks, section 4).
        items = [(None, data)] if not all(isinstance(v, dict) for v in data.values()) else list(data.items())
    elif isinstance(data, list):
        items = [(None, row) for row in data]
    else:
        raise ProtocolError(f"iTick {kind} data must be an object or a list, was {clip(data)}")
    requested = {wire_code(inst): inst.symbol for inst in parsed}
    rows = []
    for key, row in items:
        raw = row.get("s", key) if isinstance(row, dict) else None
        if raw is None:
            raise ProtocolError(f"iTick sent a {kind} without a symbol 's', was {clip(row)}")
        symbol = requested.get(str(raw)) or symbol_and_market(str(raw), row.get("r"))[0]
        rows.append((row, symbol))
    return rows
