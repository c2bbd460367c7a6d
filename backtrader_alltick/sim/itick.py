"""The ``itick`` dialect on the server side, as ``shared/protocol/itick.md`` describes it.

REST: ``GET /{stock,forex,indices,crypto}/{tick,quote,depth,kline}`` and the batch forms
``/ticks,/quotes,/depths,/klines``; ``token`` header; ``{"code":0,"msg":null,"data":...}``;
millisecond timestamps; numbers as JSON numbers.  WebSocket: ``/stock``, ``/forex``,
``/indices``, ``/crypto`` (and the legacy ``/sws``, ``/fws``, ``/iws``, ``/cws``), token
in the ``token`` header or ``?token=`` or, legacy, an ``{"ac":"auth"}`` message.

Choices where the reference is silent: an unknown symbol is HTTP 200 with
``{"code":"E001","msg":"not found this produce","data":null}`` (batch forms leave it out
of the map); a bad token is HTTP 401 with ``E002``; rate limits are HTTP 429 with
``Retry-After``; a WebSocket over the plan's connection cap is refused with HTTP 429.
Metals are served under ``/forex`` and CFD indices under ``/indices`` with their AllTick
codes (``GOLD``, ``US500``); ``XAUUSD``/``XAGUSD`` are accepted as aliases.

Stock ticks carry ``te`` (itick.md 4.1: 0 regular, 1 pre-market, 2 after-hours) from the
simulator's own hours.  The reference has no value for the others, so: an auction's match is
0 (it sets the session's opening or closing price), an overnight trade is 2 (like after-hours,
a trade outside the day's regular and pre-market sessions), and a print stamped after a close
takes the value of the session that closed.
"""

from __future__ import annotations

import functools
import json
import math
from typing import TYPE_CHECKING, Any

from ..errors import InvalidSymbol
from ..records import normalize_epoch_ms
from ..symbols import parse_symbol
from .hours import CLOSE_AUCTION, OPEN_AUCTION, OVERNIGHT, POST, PRE, REGULAR
from .kline_flaws import served_klines
from .plan_table import ITICK_SYMBOLS_PER_CONNECTION
from .pusher import Session, Step
from .server import Exchange, Reply
from .websocket import text_frame

if TYPE_CHECKING:
    from ..records import Depth, Kline, Quote, Tick
    from .market import MarketModel
    from .server import Connection
    from .simulator import Simulator

ASSET_PATHS: dict[str, tuple[str, ...]] = {
    "stock": ("stock",),
    "forex": ("forex", "metal", "energy"),
    "indices": ("cfd",),
    "crypto": ("crypto",),
}
WS_PATHS = {
    "/stock": "stock",
    "/forex": "forex",
    "/indices": "indices",
    "/crypto": "crypto",
    "/sws": "stock",
    "/fws": "forex",
    "/iws": "indices",
    "/cws": "crypto",
}
REGIONS = {"forex": {"GB"}, "indices": {"GB", "US"}, "crypto": {"BA", "BT", "PB"}}
ALIASES = {"XAUUSD": "GOLD", "XAGUSD": "Silver"}
KTYPES = {1: "1m", 2: "5m", 3: "15m", 4: "30m", 5: "1h", 6: "2h", 7: "4h", 8: "1d", 9: "1w", 10: "1M"}
KLINE_LIMIT = 1000
SESSION_CODES: dict[str | None, int] = {
    REGULAR: 0,
    PRE: 1,
    POST: 2,
    OVERNIGHT: 2,
    OPEN_AUCTION: 0,
    CLOSE_AUCTION: 0,
    None: 0,
}
SINGLE = {"tick", "quote", "depth", "kline"}
BATCH = {"ticks": "tick", "quotes": "quote", "depths": "depth", "klines": "kline"}


def _json(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def _ok(data) -> Reply:
    return Reply(200, _json({"code": 0, "msg": None, "data": data}))


class _BadRequest(Exception):
    pass


class ITickService:
    """Answers iTick-shaped REST requests and opens iTick WebSocket sessions for a Simulator.

    Example::

        service = ITickService(sim)
        reply = service.handle_rest(exchange)
    """

    name = "itick"

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim

    def token_of(self, exchange: Exchange) -> str | None:
        return exchange.headers.get("token") or exchange.query.get("token") or None

    ws_token = token_of

    def endpoint_of(self, exchange: Exchange) -> str | None:
        parts = exchange.path.strip("/").split("/")
        if len(parts) == 2 and parts[0] in ASSET_PATHS and (parts[1] in SINGLE or parts[1] in BATCH):
            return parts[1]
        return None

    def auth_reply(self, missing: bool) -> Reply:
        return Reply(401, _json({"code": "E002", "msg": "auth failed", "data": None}))

    def rate_limited_reply(self, wait: float) -> Reply:
        return Reply(
            429,
            _json({"code": 429, "msg": "request limit exceeded", "data": None}),
            {"Retry-After": str(max(1, math.ceil(wait)))},
        )

    def rate_limit_code(self) -> int:
        return 429

    def not_found_reply(self) -> Reply:
        return Reply(404, _json({"code": 404, "msg": "not found", "data": None}))

    def method_reply(self, exchange: Exchange, endpoint: str) -> Reply | None:
        """The refusal of a request that is not a GET (every iTick REST endpoint is one)."""
        if exchange.method == "GET":
            return None
        return Reply(
            405, _json({"code": 405, "msg": f"{endpoint} takes GET", "data": None}), {"Allow": "GET"}
        )

    # -- REST ----------------------------------------------------------------------------

    def handle_rest(self, exchange: Exchange) -> Reply:
        asset, endpoint = exchange.path.strip("/").split("/")
        query = exchange.query
        try:
            region = self._required(query, "region")
            if endpoint in BATCH:
                codes = [code for code in self._required(query, "codes").split(",") if code]
                kind = BATCH[endpoint]
                data = {}
                for code in codes:
                    symbol = self.resolve(asset, region, code)
                    if symbol is not None:
                        data[code] = self._payload(kind, symbol, code, query)
                return _ok(data)
            code = self._required(query, "code")
            symbol = self.resolve(asset, region, code)
            if symbol is None:
                self.sim.counters_store.error("E001")
                return Reply(200, _json({"code": "E001", "msg": "not found this produce", "data": None}))
            return _ok(self._payload(endpoint, symbol, code, query))
        except _BadRequest as refused:
            self.sim.counters_store.error(400)
            return Reply(400, _json({"code": 400, "msg": str(refused), "data": None}))

    def _required(self, query: dict, name: str) -> str:
        value = query.get(name, "").strip()
        if not value:
            raise _BadRequest(f"parameter {name} is required")
        return value

    def resolve(self, asset: str, region: str, code: str) -> str | None:
        """The served symbol for an iTick (asset path, region, code), or None."""
        region = region.upper()
        code = ALIASES.get(code.upper(), code)
        try:
            if asset == "stock":
                inst = parse_symbol(code, region)
            else:
                if region not in REGIONS[asset]:
                    return None
                inst = parse_symbol(code)
        except InvalidSymbol:
            return None
        served = self.sim.model.instrument(inst.symbol)
        if served is None or served.asset not in ASSET_PATHS[asset] or inst.symbol in self.sim.denied_symbols:
            return None
        return served.symbol

    def _payload(self, kind: str, symbol: str, code: str, query: dict):
        model, now = self.sim.model, self.sim.clock.now_ms()
        wire_code = code.split(".")[0] if model.instruments[symbol].is_stock else code
        if kind == "kline":
            try:
                ktype = int(self._required(query, "kType"))
                limit = int(self._required(query, "limit"))
                end = normalize_epoch_ms(query["et"]) if query.get("et") else now
            except ValueError:
                raise _BadRequest("kType, limit and et must be integers") from None
            if ktype not in KTYPES or limit < 1:
                raise _BadRequest(f"kType must be one of 1..10 and limit positive, was {ktype}, {limit}")
            bars = served_klines(
                self.sim, model.latest_klines(symbol, KTYPES[ktype], min(limit, KLINE_LIMIT), end, now)
            )
            return [kline_fields(bar) for bar in bars]
        if kind == "tick":
            tick = model.last_trade(symbol, now)
            return None if tick is None else tick_fields(model, symbol, wire_code, tick)
        if kind == "quote":
            quote = model.quote(symbol, now)
            return None if quote is None else quote_fields(model, symbol, wire_code, quote)
        depth = model.depth(symbol, now)
        return None if depth is None else depth_fields(wire_code, depth)

    # -- WebSocket -----------------------------------------------------------------------

    def ws_group(self, exchange: Exchange) -> str | None:
        return WS_PATHS.get(exchange.path)

    def admit_upgrade(self, token: str | None, group: str) -> str | None:
        # Bad tokens are told after the upgrade (auth message); a full plan is refused before it.
        if self.sim.is_valid_token(token) and not self.sim.connection_budget.has_room(token, "all"):
            return "limit"
        return None

    def refuse_upgrade(self, reason: str) -> Reply:
        return Reply(429, _json({"code": 429, "msg": "exceeding the maximum connection limit", "data": None}))

    def new_session(self, connection: Connection, exchange: Exchange, token: str | None) -> ITickSession:
        """The session of a socket just upgraded on one of the asset paths."""
        return ITickSession(self, connection, token, WS_PATHS[exchange.path])


def _num(value: float) -> int | float:
    # Whole sizes go out as JSON integers, as in the reference's examples ("v": 1134500).
    return int(value) if float(value).is_integer() else value


def kline_fields(bar: Kline) -> dict[str, Any]:
    """A K-line as iTick's ``{"o", "h", "l", "c", "v", "tu", "t"}`` object."""
    return {
        "tu": round(bar.turnover, 6),
        "c": bar.close,
        "t": bar.start,
        "v": _num(bar.volume),
        "h": bar.high,
        "l": bar.low,
        "o": bar.open,
    }


def tick_fields(model: MarketModel, symbol: str, code: str, tick: Tick) -> dict[str, Any]:
    """A trade as iTick's tick object (``te`` for stocks, ``tu`` for crypto)."""
    out: dict[str, Any] = {"s": code, "ld": tick.price, "t": tick.time, "v": _num(tick.volume)}
    asset = model.instruments[symbol].asset
    if asset == "stock":
        out["te"] = SESSION_CODES[model.session_kinds(symbol, [tick.time])[0]]
    elif asset == "crypto":
        out.update(tu=round(tick.turnover, 6), ts=0)
    return out


def quote_fields(model: MarketModel, symbol: str, code: str, quote: Quote) -> dict[str, Any]:
    """A quote as iTick's quote object (change fields where the previous close is known)."""
    volume, turnover = quote.volume, quote.turnover
    assert volume is not None and turnover is not None, "the model's quotes carry both"
    out: dict[str, Any] = {
        "s": code,
        "ld": quote.last,
        "o": quote.open,
        "h": quote.high,
        "l": quote.low,
        "t": quote.time,
        "v": _num(volume),
        "tu": round(turnover, 6),
        "ts": 0,
    }
    asset = model.instruments[symbol].asset
    if quote.prev_close and asset != "crypto":
        decimals = model.specs[symbol].price_decimals
        change = round(quote.last - quote.prev_close, decimals)
        out.update(ch=change, chp=round(100 * change / quote.prev_close, 2))
        if asset in ("stock", "cfd"):
            out["p"] = quote.prev_close
    return out


def depth_fields(code: str, depth: Depth) -> dict[str, Any]:
    """A book as iTick's depth object, best level first (``po`` 1)."""

    def side(levels: tuple[tuple[float, float], ...]) -> list[dict[str, Any]]:
        return [
            {"po": index + 1, "p": price, "v": _num(volume), "o": 1 + index % 5}
            for index, (price, volume) in enumerate(levels)
        ]

    return {"s": code, "a": side(depth.asks), "b": side(depth.bids)}


class ITickSession(Session):
    """One iTick socket: cumulative subscriptions of (symbol, types) on one asset path."""

    default_heartbeat_timeout: float = 60.0  # "no heartbeat for more than 1 minute" (itick.md 8.5)

    def __init__(self, service: ITickService, connection: Connection, token: str | None, asset: str) -> None:
        super().__init__(service.sim, connection, token or "")
        self.service = service
        self.asset = asset
        self.authenticated: bool = False
        self.subscriptions: dict[str, set[str]] = {}  # symbol -> {"tick", "quote", "depth", "kline@N"}
        self.wire_codes: dict[str, tuple[str, str]] = {}  # symbol -> (code, region) as subscribed

    def on_open(self) -> None:
        self.reply('{"code":1,"msg":"Connected Successfully"}')
        if self.token:
            self._authenticate(self.token)

    def _authenticate(self, token: str) -> None:
        self.token = token
        if not self.sim.is_valid_token(token):
            self.reply('{"code":0,"resAc":"auth","msg":"auth failed"}', "E002")
            self.connection.close(1008, "auth failed")
            return
        if not self._holds_budget and not self.acquire_budget():
            return
        self.authenticated = True
        self.reply('{"code":1,"resAc":"auth","msg":"authenticated"}')

    def over_budget(self) -> None:
        self.reply('{"code":0,"resAc":"auth","msg":"exceeding the maximum connection limit"}', 429)
        self.connection.close(1008, "connection limit")

    def wanted(self) -> set[str]:
        return set(self.subscriptions)

    def on_text(self, text: str) -> None:
        try:
            message = json.loads(text)
            action = message["ac"]
        except (ValueError, KeyError, TypeError):
            self.reply('{"code":0,"resAc":"subscribe","msg":"cannot be resolved action"}', "action")
            return
        if action == "ping":
            self.heard()
            if self.sim.faults.ignore_heartbeats:
                self.sim.counters_store.fault("ignore_heartbeats")
            else:
                self.reply(
                    json.dumps(
                        {"resAc": "pong", "data": {"params": message.get("params")}}, separators=(",", ":")
                    )
                )
        elif action == "auth" and not self.authenticated:
            self._authenticate(str(message.get("params") or ""))
        elif action in ("subscribe", "unsubscribe") and self.authenticated:
            self._subscribe(action, message)
        else:
            self.reply(
                json.dumps({"code": 0, "resAc": str(action), "msg": "cannot be resolved action"}), "action"
            )

    def _subscribe(self, action: str, message: dict) -> None:
        params, types = message.get("params"), message.get("types")
        if not isinstance(params, str) or not isinstance(types, str) or not types.strip():
            self.reply(f'{{"code":0,"resAc":"{action}","msg":"cannot be resolved action"}}', "action")
            return
        kinds = {kind.strip() for kind in types.split(",") if kind.strip()}
        valid = {"tick", "quote", "depth"} | {f"kline@{n}" for n in KTYPES}
        if not kinds <= valid:
            self.reply(f'{{"code":0,"resAc":"{action}","msg":"cannot be resolved action"}}', "action")
            return
        wanted = {}
        for item in (part.strip() for part in params.split(",") if part.strip()):
            code, _, region = item.partition("$")
            symbol = self.service.resolve(self.asset, region.split("$")[-1] or _region_of(self.asset), code)
            if symbol is not None:  # other asset classes and unknown codes are ignored silently
                wanted[symbol] = (code, region.split("$")[-1] or _region_of(self.asset))
        if action == "unsubscribe":
            for symbol in wanted:
                left = self.subscriptions.get(symbol, set()) - kinds
                if left:
                    self.subscriptions[symbol] = left
                else:
                    self.subscriptions.pop(symbol, None)
            self.reply('{"code":1,"resAc":"unsubscribe","msg":"unsubscribe Successfully"}')
            return
        merged = set(self.subscriptions) | set(wanted)
        account = sum(
            len(s.subscriptions)
            for s in self.sim.sessions()
            if isinstance(s, ITickSession) and s.token == self.token and s is not self
        )
        cap = min(ITICK_SYMBOLS_PER_CONNECTION, self.sim.plan.ws_symbols - account)
        if len(merged) > cap:
            self.reply(
                '{"code":0,"resAc":"subscribe","msg":"exceeding the maximum subscription limit"}', "E003"
            )
            return
        for symbol, wire in wanted.items():
            self.wire_codes[symbol] = wire  # before the subscription: the pusher reads both
            self.subscriptions.setdefault(symbol, set()).update(kinds)
        self.reply('{"code":1,"resAc":"subscribe","msg":"subscribe Successfully"}')

    def render(self, step: Step) -> tuple[list[bytes], list[bytes]]:
        ticks: list[bytes] = []
        others: list[bytes] = []
        for symbol, kinds in list(self.subscriptions.items()):
            code, region = self.wire_codes[symbol]
            if "tick" in kinds:
                ticks.extend(
                    step.memo(
                        ("itick-trades", symbol, code, region),
                        functools.partial(_tick_frames, step, symbol, code, region),
                    )
                )
            if not len(step.trades(symbol)[0]):
                continue
            for kind in sorted(kinds - {"tick"}):
                frame = step.memo(
                    ("itick", kind, symbol, code, region),
                    functools.partial(_snapshot_frame, step, kind, symbol, code, region),
                )
                if frame:
                    others.append(frame)
        return ticks, others


def _region_of(asset: str) -> str:
    return {"forex": "GB", "indices": "GB", "crypto": "BA"}.get(asset, "")


def _tick_frames(step: Step, symbol: str, code: str, region: str) -> list[bytes]:
    time_, price, size, _, _ = step.pushed(symbol)
    model = step.model
    spec = model.specs[symbol]
    ps, ss = spec.price_scale, spec.size_scale
    integral = spec.size_decimals == 0
    times = time_.tolist()
    if model.instruments[symbol].is_stock:
        tails = [f',"te":{SESSION_CODES[kind]}' for kind in model.session_kinds(symbol, times)]
    else:
        tails = [""] * len(times)
    head = f'{{"code":1,"data":{{"s":"{code}","r":"{region}","ld":'
    return [
        text_frame(f'{head}{p / ps!r},"v":{s if integral else s / ss!r},"t":{t}{tail},"type":"tick"}}}}')
        for t, p, s, tail in zip(times, price.tolist(), size.tolist(), tails)
    ]


def _snapshot_frame(step: Step, kind: str, symbol: str, code: str, region: str) -> bytes | None:
    model = step.model
    if kind == "quote":
        quote = model.quote(symbol, step.end)
        data = quote_fields(model, symbol, code, quote) if quote else None
    elif kind == "depth":
        depth = model.depth(symbol, step.end)
        data = depth_fields(f"{code}${region}", depth) if depth else None
    else:
        bars = model.latest_klines(symbol, KTYPES[int(kind.split("@")[1])], 1, step.end, step.end)
        data = kline_fields(bars[-1]) if bars else None
    if data is None:
        return None
    data.update(s=data.get("s", code), r=region, type=kind)
    return text_frame(json.dumps({"code": 1, "data": data}, separators=(",", ":")))
