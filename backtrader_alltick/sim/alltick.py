"""The ``alltick`` dialect on the server side, as ``shared/protocol/alltick.md`` describes it.

REST: ``/quote-stock-b-api/{kline,trade-tick,depth-tick,static_info,batch-kline}`` and
``/quote-b-api/{kline,trade-tick,depth-tick,batch-kline}``; token and ``query=`` JSON in
the query string; ``ret`` codes with HTTP 200.  WebSocket: ``/quote-stock-b-ws-api`` and
``/quote-b-ws-api`` with cmd_id 22000-22007 and pushes 22998/22999.

Choices where the reference is silent: codes a WebSocket subscription does not serve
(unknown, or of the other family) are ignored silently, like codes past the plan cap;
a bad token on the WebSocket upgrade is refused with HTTP 401 and a ``ret 401`` body;
a socket over the plan's connection cap gets a ``ret 606`` frame and is closed.
Its WebSocket sessions are in :mod:`.alltick_stream`, the text both sides write in
:mod:`.alltick_format`.  The simulator keeps its own codec on purpose: it must not share
code with ``wire.alltick``.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

from ..records import normalize_epoch_ms
from .alltick_format import HEADER_INVALID, MESSAGES, book_levels, decimal_text, json_bytes
from .alltick_stream import AllTickSession
from .kline_flaws import served_klines
from .limits import TOO_FREQUENT
from .server import Connection, Exchange, Reply

if TYPE_CHECKING:
    from .simulator import Simulator

STOCK_REST, OTHER_REST = "/quote-stock-b-api", "/quote-b-api"
WS_PATHS = {"/quote-stock-b-ws-api": "stock", "/quote-b-ws-api": "other"}
KLINE_TYPES = {1: "1m", 2: "5m", 3: "15m", 4: "30m", 5: "1h", 6: "2h", 7: "4h", 8: "1d", 9: "1w", 10: "1M"}
KLINE_LIMIT = 500
BATCH_KLINE_LIMIT = 2


class _Refused(Exception):
    def __init__(self, ret: int, message: str | None = None) -> None:
        super().__init__(message or MESSAGES[ret])
        self.ret = ret
        self.message = message or MESSAGES[ret]


def _envelope(ret: int, trace: str, data, message: str | None = None) -> bytes:
    return json_bytes({"ret": ret, "msg": message or MESSAGES[ret], "trace": trace, "data": data})


class AllTickService:
    """Answers AllTick REST requests and opens AllTick WebSocket sessions for a Simulator.

    Example::

        service = AllTickService(sim)
        reply = service.handle_rest(exchange)    # after the simulator's token and limit checks
    """

    name = "alltick"

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim

    # -- routing and shared errors ------------------------------------------------------

    def token_of(self, exchange: Exchange) -> str | None:
        return exchange.query.get("token") or None

    def endpoint_of(self, exchange: Exchange) -> str | None:
        """The rate-limit bucket of a REST path, or None when the path is not served."""
        for prefix in (STOCK_REST, OTHER_REST):
            if exchange.path.startswith(prefix + "/"):
                endpoint = exchange.path[len(prefix) + 1 :]
                allowed = {"kline", "trade-tick", "depth-tick", "batch-kline"}
                if prefix == STOCK_REST:
                    allowed.add("static_info")
                return endpoint if endpoint in allowed else None
        return None

    def auth_reply(self, missing: bool) -> Reply:
        message = "token is required" if missing else MESSAGES[401]
        return Reply(200, json_bytes({"ret": 401, "msg": message, "trace": "", "data": {}}))

    def rate_limited_reply(self, wait: float) -> Reply:
        headers = {"Retry-After": str(max(1, math.ceil(wait)))}
        if self.sim.faults.rate_limit_reply == "http429":
            return Reply(
                429, json_bytes({"ret": 429, "msg": MESSAGES[429], "trace": "", "data": {}}), headers
            )
        return Reply(200, json_bytes({"ret": 605, "msg": MESSAGES[605], "trace": "", "data": {}}), headers)

    def rate_limit_code(self) -> int:
        return 429 if self.sim.faults.rate_limit_reply == "http429" else 605

    def not_found_reply(self) -> Reply:
        return Reply(404, json_bytes({"ret": 404, "msg": "not found", "trace": "", "data": {}}))

    def method_reply(self, exchange: Exchange, endpoint: str) -> Reply | None:
        """The refusal of a request sent with the wrong method (batch-kline takes POST, the rest GET)."""
        allowed = "POST" if endpoint == "batch-kline" else "GET"
        if exchange.method == allowed:
            return None
        body = {"ret": 400, "msg": f"{endpoint} takes {allowed}", "trace": "", "data": {}}
        return Reply(405, json_bytes(body), {"Allow": allowed})

    # -- REST ----------------------------------------------------------------------------

    def handle_rest(self, exchange: Exchange) -> Reply:
        endpoint = self.endpoint_of(exchange)
        family = "stock" if exchange.path.startswith(STOCK_REST + "/") else "other"
        trace = ""
        try:
            if endpoint == "batch-kline":  # the method was checked before the rate limiter
                if not exchange.body.strip():
                    raise _Refused(601)
                request = self._parse(exchange.body.decode("utf-8", "replace"), 400, HEADER_INVALID)
            else:
                if "query" not in exchange.query:
                    raise _Refused(402)
                request = self._parse(exchange.query["query"], 402)
            trace = request["trace"]
            data = request["data"]
            if endpoint == "kline":
                body = self._kline(family, data)
            elif endpoint == "batch-kline":
                body = self._batch_kline(family, data)
            else:
                body = self._snapshots(family, endpoint, data)
        except _Refused as refused:
            self.sim.counters_store.error(refused.ret)
            return Reply(200, _envelope(refused.ret, trace, {}, refused.message))
        return Reply(200, _envelope(200, trace, body))

    def _parse(self, text: str, ret: int, message: str | None = None) -> dict:
        try:
            request = json.loads(text)
        except ValueError:
            raise _Refused(ret, message) from None
        if (
            not isinstance(request, dict)
            or not isinstance(request.get("trace"), str)
            or len(request["trace"]) > 64
            or not isinstance(request.get("data"), dict)
        ):
            raise _Refused(400, HEADER_INVALID)
        return request

    def _symbol(self, family: str, code) -> str:
        if not isinstance(code, str):
            raise _Refused(400)
        inst = self.sim.model.instrument(code)
        # Codes are case-sensitive (alltick.md 4.1): "aapl.US" is not served.
        if inst is None or inst.symbol != code or (family == "stock") != inst.is_stock:
            raise _Refused(600)
        if code in self.sim.denied_symbols:
            raise _Refused(604)
        return code

    def _kline_list(self, family: str, item, limit: int) -> tuple[str, int, list[dict]]:
        fields = ("code", "kline_type", "kline_timestamp_end", "query_kline_num", "adjust_type")
        if not isinstance(item, dict) or any(name not in item for name in fields):
            raise _Refused(400)
        kline_type, count, end = item["kline_type"], item["query_kline_num"], item["kline_timestamp_end"]
        if not all(type(value) is int for value in (kline_type, count, end)):  # bool is not a number here
            raise _Refused(400)
        if kline_type not in KLINE_TYPES or count < 1 or end < 0 or item["adjust_type"] != 0:
            raise _Refused(400)
        symbol = self._symbol(family, item["code"])
        inst = self.sim.model.instruments[symbol]
        if inst.is_stock and kline_type in (6, 7):
            raise _Refused(400, "request data param invalid: kline_type 6 and 7 are not served for stocks")
        now = self.sim.clock.now_ms()
        # Only non-stock codes page backwards; stocks always get the newest bars (alltick.md 4.1).
        end_ms = now if end == 0 or inst.is_stock else normalize_epoch_ms(end)
        bars = served_klines(
            self.sim,
            self.sim.model.latest_klines(symbol, KLINE_TYPES[kline_type], min(count, limit), end_ms, now),
        )
        return symbol, kline_type, [self._kline_row(symbol, bar) for bar in bars]

    def _kline_row(self, symbol: str, bar) -> dict:
        spec = self.sim.model.specs[symbol]
        return {
            "timestamp": str(bar.start // 1000),
            "open_price": repr(bar.open),
            "close_price": repr(bar.close),
            "high_price": repr(bar.high),
            "low_price": repr(bar.low),
            "volume": decimal_text(bar.volume, spec.size_decimals),
            "turnover": decimal_text(bar.turnover, spec.price_decimals + spec.size_decimals),
        }

    def _kline(self, family: str, data: dict) -> dict:
        symbol, kline_type, rows = self._kline_list(family, data, KLINE_LIMIT)
        return {"code": symbol, "kline_type": kline_type, "kline_list": rows}

    def _batch_kline(self, family: str, data: dict) -> dict:
        items = data.get("data_list")
        if not isinstance(items, list) or not items:
            raise _Refused(400)
        if len(items) > self.sim.plan.batch_groups:
            raise _Refused(603)
        out = []
        for item in items:
            symbol, kline_type, rows = self._kline_list(family, item, BATCH_KLINE_LIMIT)
            out.append({"code": symbol, "kline_type": kline_type, "kline_data": rows})
        return {"kline_list": out}

    def _snapshots(self, family: str, endpoint: str | None, data: dict[str, Any]) -> dict[str, Any]:
        items = data.get("symbol_list")
        if not isinstance(items, list) or not items or not all(isinstance(i, dict) for i in items):
            raise _Refused(400)
        # Codes past the plan's per-request cap are dropped silently (alltick.md 4.3).
        codes = [self._symbol(family, item.get("code")) for item in items[: self.sim.plan.codes_per_request]]
        model, now = self.sim.model, self.sim.clock.now_ms()
        if endpoint == "static_info":
            return {"static_info_list": [_static_info(model.instrument(code)) for code in codes]}
        rows = []
        for code in codes:
            if endpoint == "trade-tick":
                tick, spec = model.last_trade(code, now), model.specs[code]
                if tick is not None:
                    places = spec.price_decimals + spec.size_decimals
                    rows.append(
                        {
                            "code": code,
                            "seq": str(tick.seq),
                            "tick_time": str(tick.time),
                            "price": repr(tick.price),
                            "volume": decimal_text(tick.volume, spec.size_decimals),
                            "turnover": decimal_text(tick.turnover, places),
                            "trade_direction": tick.direction,
                        }
                    )
            else:
                depth = model.depth(code, now)
                last = None if depth is None else model.last_trade(code, now)
                if depth is not None and last is not None:
                    decimals = model.specs[code].size_decimals
                    rows.append(
                        {
                            "code": code,
                            "seq": str(last.seq),
                            "tick_time": str(depth.time),
                            "bids": book_levels(depth.bids, decimals),
                            "asks": book_levels(depth.asks, decimals),
                        }
                    )
        return {"tick_list": rows}

    # -- WebSocket -----------------------------------------------------------------------

    def ws_group(self, exchange: Exchange) -> str | None:
        return WS_PATHS.get(exchange.path)

    def ws_token(self, exchange: Exchange) -> str | None:
        return exchange.query.get("token") or None

    def admit_upgrade(self, token: str | None, group: str) -> str | None:
        # A bad token is refused at the upgrade; a socket over the cap is accepted, then cut with 606
        # (its session's budget), and so is an attempt sooner than the plan's reconnect interval after
        # the previous one of the token and family.  The attempt is timed here, before the upgrade is
        # answered, so a client that waits from the answer is never early.  Per family: a stock and a
        # non-stock socket form one allowance (the DOCS reading of alltick.md 6.3).
        if not self.sim.is_valid_token(token):
            return "auth"
        if self.sim.connection_budget.has_room(token, group) and not self.sim.socket_pacing.admit_connection(
            token, group
        ):
            return TOO_FREQUENT
        return None

    def refuse_upgrade(self, reason: str) -> Reply:
        if reason == "auth":
            return Reply(401, json_bytes({"ret": 401, "msg": MESSAGES[401], "trace": "", "data": {}}))
        return Reply(429, json_bytes({"ret": 606, "msg": MESSAGES[606], "trace": "", "data": {}}))

    def new_session(self, connection: Connection, exchange: Exchange, token: str | None) -> AllTickSession:
        """The session of a socket just upgraded on one of the WebSocket paths."""
        return AllTickSession(self.sim, connection, token, WS_PATHS[exchange.path])


def _static_info(inst) -> dict:
    exchange = {"US": "NASDAQ", "HK": "HKEX", "SH": "SSE", "SZ": "SZSE"}[inst.region]
    currency = {"US": "USD", "HK": "HKD", "SH": "CNY", "SZ": "CNY"}[inst.region]
    return {
        "board": "MAIN",
        "bps": "10.0",
        "circulating_shares": "1000000000",
        "currency": currency,
        "dividend_yield": "0.5",
        "eps": "1.0",
        "eps_ttm": "1.0",
        "exchange": exchange,
        "hk_shares": "1000000000" if inst.region == "HK" else "",
        "lot_size": "1" if inst.region == "US" else "100",
        "name_cn": inst.code,
        "name_en": inst.code,
        "name_hk": inst.code,
        "symbol": inst.symbol,
        "total_shares": "1000000000",
    }
