"""AllTick's REST requests and answers: ``query=`` JSON for /kline, /batch-kline, /trade-tick, /depth-tick.

Pure: builds :class:`~backtrader_alltick.wire.HttpRequest` values and turns decoded JSON
into :mod:`~backtrader_alltick.records`; no I/O, no clock.  Section numbers refer to
``shared/protocol/alltick.md``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
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
from ...records import Depth, Kline, Tick
from ...symbols import Instrument, parse_symbol
from .. import HttpRequest, subject_of
from .._decode import (
    MALFORMED,
    ErrorFields,
    checked_kline,
    clip,
    dumps,
    int_or_none,
    shape_guard,
    unique_bars,
)
from .codes import FATAL_RET, KLINE_TYPES, REST_BASE, can_page_back, family, native_periods, wire_code
from .ticks import read_depth, read_tick

DEFAULT_REST_URL = "https://quote.alltick.co"
KLINE_LIMIT = 500  # query_kline_num is cut to 500 (section 4.1)
BATCH_KLINE_LIMIT = 2  # bars per (code, kline_type) group on /batch-kline (section 4.2)
_KLINE_FIELDS = ("timestamp", "open_price", "high_price", "low_price", "close_price", "volume", "turnover")


def kline_request(
    inst: Instrument | str, period: str, count: int, end_ms: int | None = None, trace: str | None = None
) -> HttpRequest:
    """Build ``GET /kline`` for the newest ``count`` bars, or the ``count`` bars up to ``end_ms``."""
    inst = parse_symbol(inst)
    _check_count(count, KLINE_LIMIT)
    end = 0  # 0 means "from the latest bar backwards"
    if end_ms is not None:
        if not can_page_back(inst):
            raise ConfigError(
                f"end_ms cannot be used for {inst.symbol}: AllTick serves only the newest "
                f"{KLINE_LIMIT} bars of stock codes; pass end_ms=None, was {end_ms!r}"
            )
        end = int(end_ms) // 1000  # INFERRED seconds, the unit of the bar timestamps (section 4.1)
    data = _kline_item(inst, period, count, end)
    return HttpRequest(
        "GET",
        f"{REST_BASE[family(inst)]}/kline",
        "kline",
        params={"query": _envelope(trace or _trace("kline", data), data)},
        subject=inst.symbol,
    )


def batch_kline_request(
    items: Sequence[tuple[Instrument | str, str, int]], trace: str | None = None
) -> HttpRequest:
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
    return HttpRequest(
        "POST",
        f"{REST_BASE[fam]}/batch-kline",
        "batch-kline",
        headers={"Content-Type": "application/json"},
        body=body,
        subject=subject_of([inst.symbol for inst in insts]),
    )


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
def parse_batch_klines(
    status: int, payload: Any, wanted: Sequence[tuple[Instrument | str, str]]
) -> dict[tuple[str, str], list[Kline]]:
    """Return ``{(symbol, period): bars}`` for the ``(inst, period)`` groups of a ``/batch-kline`` answer."""
    insts = [(parse_symbol(inst), period) for inst, period in wanted]
    subject = ", ".join(inst.symbol for inst, _ in insts)
    data = _data_of(status, payload, subject, family(insts[0][0]) if insts else None)
    return {
        (inst.symbol, period): _to_klines(
            _kline_rows(data, wire_code(inst), KLINE_TYPES.get(period), inst.symbol), inst, period
        )
        for inst, period in insts
    }


@shape_guard("AllTick", "a trades answer")
def parse_trades(status: int, payload: Any, insts: Iterable[Instrument | str] = ()) -> list[Tick]:
    """Return the latest trade per code of a ``/trade-tick`` response (``insts`` only names the subject)."""
    rows = _tick_list(status, payload, insts, "trade-tick")
    return [read_tick(row, "trade-tick") for row in rows]


@shape_guard("AllTick", "a depth answer")
def parse_depth(status: int, payload: Any, insts: Iterable[Instrument | str] = ()) -> list[Depth]:
    """Return the latest book per code of a ``/depth-tick`` response, levels in the vendor's order."""
    rows = _tick_list(status, payload, insts, "depth-tick")
    return [read_depth(row, "depth-tick") for row in rows]


def error_for(
    status: int | None,
    code: int | None,
    message: str | None,
    symbol: str | None = None,
    family: str | None = None,
) -> APIError:
    """Map an HTTP status and a ``ret`` code (section 7) to the exception the caller should raise."""
    code = int_or_none(code) if code is not None else None  # some callers hold "605" as text
    subject = f" for {symbol}" if symbol else ""
    said = (
        f"ret {code} {message!r}"
        if code is not None
        else f"HTTP {status}" + (f" {message!r}" if message else "")
    )
    fields = ErrorFields(status=status, code=code, symbol=symbol)
    if code == 401 or (code is None and status in (401, 403)):
        return AuthError(
            f"AllTick rejected the token{subject} ({said}); set ALLTICK_TOKEN (or pass token=) "
            "to a valid, unexpired AllTick token",
            **fields,
        )
    if code in (429, 605, FATAL_RET) or (code is None and status == 429):
        return RateLimited(
            f"AllTick rate limit exceeded{subject} ({said}); wait before retrying and set "
            "plan= to your token's plan so requests are spaced to fit it",
            **fields,
        )
    if code == 600:
        where = f" on the {family} endpoints ({REST_BASE[family]})" if family in REST_BASE else ""
        return SymbolNotFound(
            f"AllTick does not know {symbol or 'the code'}{where} ({said}); check the code "
            "against AllTick's product list (case matters: 'AAPL.US', '700.HK', 'EURUSD', "
            "'GOLD')",
            **fields,
        )
    if code == 603:
        return PlanLimitError(
            f"AllTick refused the request{subject} as too large for the token's plan "
            f"({said}); request fewer codes, groups or bars, or upgrade the plan",
            **fields,
        )
    if code == 604:
        return PlanLimitError(
            f"the AllTick token is not authorized{subject} ({said}); add the code to your "
            "AllTick plan or use a code the plan includes",
            **fields,
        )
    if code in (201, 202, 400, 402, 601):
        return APIError(
            f"AllTick rejected the request{subject} as malformed ({said}); this is a bug in "
            "backtrader_alltick, please report it with this message",
            **fields,
        )
    if code is None and status is not None and status >= 500:
        return APIError(
            f"AllTick answered{subject} with {said}; the service is failing, retry later", **fields
        )
    return APIError(f"AllTick answered{subject} with {said}; see the error table in AllTick's docs", **fields)


def _check_count(count: int, limit: int) -> None:
    if not isinstance(count, int) or not 1 <= count <= limit:
        raise ConfigError(f"count must be an integer from 1 to {limit}, was {count!r}")


def _kline_item(inst: Instrument, period: str, count: int, end: int) -> dict[str, Any]:
    natives = native_periods(inst)
    if period not in natives:
        raise UnsupportedTimeframe(period, inst.symbol, natives, "not an AllTick kline_type")
    return {
        "code": wire_code(inst),
        "kline_type": KLINE_TYPES[period],
        "kline_timestamp_end": end,
        "query_kline_num": count,
        "adjust_type": 0,
    }  # only 0 (unadjusted) is served (section 4.1)


def _symbol_list_request(insts: Iterable[Instrument | str], endpoint: str, trace: str | None) -> HttpRequest:
    parsed = [parse_symbol(inst) for inst in insts]
    if not parsed:
        raise ConfigError(f"{endpoint} needs at least one symbol, was []")
    data = {"symbol_list": [{"code": wire_code(inst)} for inst in parsed]}
    return HttpRequest(
        "GET",
        f"{REST_BASE[_one_family(parsed)]}/{endpoint}",
        endpoint,
        params={"query": _envelope(trace or _trace(endpoint, data), data)},
        subject=subject_of([inst.symbol for inst in parsed]),
    )


def _one_family(insts: Sequence[Instrument]) -> str:
    families = {family(inst) for inst in insts}
    if len(families) != 1:
        raise ConfigError(
            "one AllTick request serves one endpoint family; split stocks from forex, metals, "
            f"crypto and CFDs (see request_groups), was {', '.join(i.symbol for i in insts)}"
        )
    return families.pop()


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


def _data_of(status: int, payload: Any, symbol: str | None, fam: str | None) -> Any:
    # Check both the HTTP status and ret: a rate limit may come as HTTP 200 + ret 605 (section 6.4).
    if isinstance(payload, dict) and "ret" in payload:
        ret = int_or_none(payload["ret"])
        if ret is None:
            raise ProtocolError(
                f"AllTick ret{' for ' + symbol if symbol else ''} must be an integer, was {payload['ret']!r}"
            )
        if ret != 200:
            raise error_for(status, ret, str(payload.get("msg") or ""), symbol, fam)
        if status >= 400:
            raise error_for(status, None, str(payload.get("msg") or ""), symbol, fam)
        return payload.get("data")
    if status >= 400:
        raise error_for(status, None, None, symbol, fam)
    shape = "a body that is not JSON" if payload is None else f"JSON without 'ret', was {clip(payload)}"
    raise ProtocolError(
        f"AllTick answered{' for ' + symbol if symbol else ''} with {shape} "
        f"(HTTP {status}); check the REST URL points at an AllTick service"
    )


def _kline_rows(data: Any, code: str, kline_type: int | None, symbol: str) -> list[Any]:
    if not data:
        return []
    if not isinstance(data, dict):
        raise ProtocolError(f"AllTick K-line data for {symbol} must be an object, was {clip(data)}")
    rows = data.get("kline_list") or []
    if rows and isinstance(rows[0], dict) and "kline_data" in rows[0]:
        # The batch shape: one group per (code, kline_type); pick ours (section 4.2).
        groups = [
            g
            for g in rows
            if g.get("code") == code and int_or_none(g.get("kline_type")) in (kline_type, None)
        ]
        rows = [row for group in groups for row in (group.get("kline_data") or [])]
    if not isinstance(rows, list):
        raise ProtocolError(f"AllTick kline_list for {symbol} must be a list, was {clip(rows)}")
    return rows


def _to_klines(rows: list[Any], inst: Instrument, period: str) -> list[Kline]:
    # A page may repeat a bar or list its bars out of order: sorted, one per start.
    return unique_bars(_kline(row, inst, period) for row in rows)


def _kline(row: dict[str, Any], inst: Instrument, period: str) -> Kline:
    try:  # timestamp: seconds in every example (section 4.1)
        return checked_kline(row, _KLINE_FIELDS, inst.symbol, period, inst.market)
    except MALFORMED as e:
        raise ProtocolError(
            f"AllTick sent a malformed K-line for {inst.symbol} ({type(e).__name__}: {e}), was {clip(row)}"
        ) from None


def _tick_list(status: int, payload: Any, insts: Iterable[Instrument | str], endpoint: str) -> list[Any]:
    parsed = [parse_symbol(inst) for inst in insts]
    subject = ", ".join(inst.symbol for inst in parsed) or None
    data = _data_of(status, payload, subject, family(parsed[0]) if parsed else None)
    rows = ((data or {}).get("tick_list") or []) if isinstance(data, (dict, type(None))) else data
    if not isinstance(rows, list):
        raise ProtocolError(f"AllTick {endpoint} tick_list must be a list, was {clip(rows)}")
    return rows
