"""The Simulator: a local AllTick (or iTick-shaped) service on one loopback port."""

from __future__ import annotations

import logging
import os
import secrets
import threading
import time
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..clock import ScaledClock
from ..errors import ConfigError
from ..records import Depth, Kline, Quote, Tick
from ..symbols import parse_symbol
from . import websocket as ws
from .control import Counters, Faults, Journal, JournalEntry
from .grid import DAY_MS
from .hours import MODES
from .limits import TOO_FREQUENT, ConnectionBudget, RestLimiter, SocketPacing
from .market import MarketModel
from .plan_table import ServicePlan, service_plan
from .pusher import Pusher, Session
from .server import Connection, Exchange, Reply, SimServer

if TYPE_CHECKING:
    from ..recording import Recording
    from .alltick import AllTickService
    from .itick import ITickService
    from .server import RequestHandler

logger: logging.Logger = logging.getLogger(__name__)

# The codes of alltick.md section 8 and of AllTick's own examples (UNH.US, GOOGL.US, 857.HK, 1288.HK), so
# the official sample programs run against the simulator unchanged.
DEFAULT_SYMBOLS = (
    "AAPL.US",
    "TSLA.US",
    "GOOGL.US",
    "UNH.US",
    "700.HK",
    "9988.HK",
    "857.HK",
    "1288.HK",
    "5.HK",
    "600519.SH",
    "601318.SH",
    "000001.SZ",
    "000858.SZ",
    "EURUSD",
    "USDJPY",
    "GBPUSD",
    "USDCNH",
    "USDHKD",
    "GOLD",
    "Silver",
    "USOIL",
    "BTCUSDT",
    "ETHUSDT",
    "SOLUSDT",
    "US500",
    "NAS100",
)
# Tuesday 2024-03-05 15:00 UTC: US stocks (10:00 New York), forex, metals, CFDs and crypto
# are open; Hong Kong and the A-share markets are closed at that hour, as in reality.
DEFAULT_START_MS = 1_709_650_800_000
DIALECTS = ("alltick", "itick")


class Simulator:
    """A protocol-faithful AllTick service on loopback: REST and WebSocket on one port.

    Example::

        with Simulator(dialect="alltick", speed=60, seed=1) as sim:
            requests.get(sim.rest_url + "/quote-stock-b-api/kline", params={"token": sim.token, ...})
            sim.klines("AAPL.US", "1m", start_ms, end_ms)     # the ground truth

    With ``replay=PATH`` it serves a recording (``alltick-bt record --file PATH``) instead of
    the seeded market: the clock starts at ``start`` (default: the first recorded trade),
    trades before it are history, trades at or after ``end`` are left out, and ``symbols``
    may pick some of the recorded ones (see :mod:`.replay`)::

        with Simulator(replay="session.rec", speed=60) as sim: ...

    The market's hours are the simulator's own (:mod:`.hours`).  ``hours`` picks the sessions
    that trade: ``"regular"`` (the continuous sessions), ``"extended"`` (plus US pre-market and
    after-hours, the Hong Kong closing-auction prints and the A-share call-auction prints) or
    ``"overnight"`` (plus the US overnight session).  ``late_print_ms`` > 0 adds one trade that
    many ms after each session close; ``resend_when_closed_s`` > 0 makes the WebSocket repeat a
    closed market's last trade (same seq, same time) every that many market seconds::

        with Simulator(hours="extended", late_print_ms=250, resend_when_closed_s=30) as sim: ...

    ``paused=True`` holds the clock at ``start`` until ``sim.clock.resume()``, so what a client
    does before (a backtest, connecting a feed) happens at the same market time in every run::

        with Simulator(paused=True) as sim:
            ...                   # the market stands still at 2024-03-05 15:00
            sim.clock.resume()
    """

    def __init__(
        self,
        dialect: str = "alltick",
        plan: str = "unlimited",
        speed: float = 60,
        seed: int = 1,
        symbols: Iterable[str] | None = None,
        start: int | datetime | None = None,
        port: int = 0,
        host: str = "127.0.0.1",
        token: str | None = None,
        faults: Faults | dict[str, Any] | None = None,
        history_days: int = 800,
        heartbeat_timeout: float | None = None,
        replay: str | os.PathLike[str] | Recording | None = None,
        end: int | datetime | None = None,
        hours: str = "regular",
        late_print_ms: int = 0,
        resend_when_closed_s: float = 0,
        paused: bool = False,
    ) -> None:
        if dialect not in DIALECTS:
            raise ConfigError(f"dialect must be one of {', '.join(DIALECTS)}, was {dialect!r}")
        if hours not in MODES:
            raise ConfigError(f"hours must be one of {', '.join(MODES)}, was {hours!r}")
        if (
            isinstance(resend_when_closed_s, bool)
            or not isinstance(resend_when_closed_s, (int, float))
            or not 0 <= resend_when_closed_s < 86_400
            or resend_when_closed_s * 1000 % 1
        ):
            raise ConfigError(
                "resend_when_closed_s must be market seconds from 0 (off) to under a day, "
                f"in whole ms, was {resend_when_closed_s!r}"
            )
        self.dialect = dialect
        # A ServicePlan of one's own (e.g. a tiny per-connection cap for a test) is served as given.
        self._plan = plan if isinstance(plan, ServicePlan) else service_plan(dialect, plan)
        self.model: MarketModel
        self.start_ms: int
        self.resend_when_closed_s = resend_when_closed_s
        if replay is not None:
            from .replay import replayed_market

            if late_print_ms:
                raise ConfigError(
                    "late_print_ms adds trades to the seeded market; a replay serves the "
                    "recorded trades as they are, "
                    f"was late_print_ms={late_print_ms!r} with replay"
                )
            start_ms, end_ms = (None if moment is None else _to_ms(moment) for moment in (start, end))
            self.model, self.start_ms = replayed_market(replay, symbols, start_ms, end_ms, hours)
        elif end is not None:
            raise ConfigError(f"end only limits a replay (pass replay=PATH too), was end={end!r} without one")
        else:
            self.start_ms = _to_ms(start)
            names = [parse_symbol(name).symbol for name in (symbols or DEFAULT_SYMBOLS)]
            self.model = MarketModel(seed, names, self.start_ms - history_days * DAY_MS, hours, late_print_ms)
        self.clock: ScaledClock = ScaledClock(self.start_ms, speed, paused=paused)
        self.seed = seed
        self.token: str = token or secrets.token_hex(16)
        self._tokens = {self.token}
        self.faults: Faults = faults if isinstance(faults, Faults) else Faults(**(faults or {}))
        self.heartbeat_timeout = heartbeat_timeout  # None: the dialect's documented timeout
        self.denied_symbols: set[str] = set()  # codes the token may not read (AllTick ret 604)
        self.counters_store: Counters = Counters()
        self.journal: Journal = Journal()
        self.limiter: RestLimiter = RestLimiter(lambda: self._plan)
        self.connection_budget: ConnectionBudget = ConnectionBudget(lambda: self._plan.ws_connections)
        self.socket_pacing: SocketPacing = SocketPacing(lambda: self._plan)
        self.service: AllTickService | ITickService
        if dialect == "alltick":
            from .alltick import AllTickService

            self.service = AllTickService(self)
        else:
            from .itick import ITickService

            self.service = ITickService(self)
        self._sessions: dict[int, Session] = {}
        self._sessions_lock = threading.Lock()
        self._next_connection = 0
        self._stopping = threading.Event()
        self._server = SimServer((host, port), self)
        address = self._server.server_address
        self.host: str = str(address[0])
        self.port: int = int(address[1])
        self._serve_thread = threading.Thread(
            target=self._server.serve_forever, name="sim-http", kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._pusher = Pusher(self)
        self._serve_thread.start()
        self._pusher.start()
        logger.info("simulator (%s, plan %s) serving on %s", dialect, self._plan.name, self.rest_url)

    # -- public surface --------------------------------------------------------------------

    @property
    def rest_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    @property
    def plan(self) -> ServicePlan:
        return self._plan

    @property
    def hours(self) -> str:
        """The hours mode: ``"regular"``, ``"extended"`` or ``"overnight"``."""
        return self.model.hours_mode

    @property
    def symbols(self) -> list[str]:
        return list(self.model.instruments)

    @property
    def counters(self) -> dict[str, Any]:
        """A snapshot of what the simulator served (see :class:`~.control.Counters`)."""
        with self._sessions_lock:
            open_now = len(self._sessions)
        return self.counters_store.snapshot(ws_connections_open=open_now)

    def set_plan(self, plan: str | ServicePlan) -> None:
        """Switch the plan (a name or a ``ServicePlan``); limits apply from the next request."""
        self._plan = plan if isinstance(plan, ServicePlan) else service_plan(self.dialect, plan)

    def add_token(self, token: str) -> None:
        self._tokens.add(token)

    def revoke_token(self, token: str) -> None:
        """Refuse ``token`` from now on (open sockets stay until dropped)."""
        self._tokens.discard(token)

    def is_valid_token(self, token: str | None) -> bool:
        return bool(token) and token in self._tokens and not self.faults.reject_token

    def klines(self, symbol: str, period: str, start_ms: int, end_ms: int) -> list[Kline]:
        """Ground truth: closed bars of ``period`` whose start is in ``[start_ms, end_ms)``."""
        return self.model.klines_between(self._served(symbol), period, start_ms, end_ms, self.clock.now_ms())

    def trades(self, symbol: str, start_ms: int, end_ms: int) -> list[Tick]:
        """Ground truth: the trades in ``[start_ms, end_ms)`` that have happened by the clock."""
        return self.model.trades(self._served(symbol), start_ms, min(end_ms, self.clock.now_ms()))

    def depth(self, symbol: str) -> Depth | None:
        return self.model.depth(self._served(symbol), self.clock.now_ms())

    def quote(self, symbol: str) -> Quote | None:
        return self.model.quote(self._served(symbol), self.clock.now_ms())

    def sessions(self) -> list[Session]:
        with self._sessions_lock:
            return list(self._sessions.values())

    def drop_connections(self) -> int:
        """Cut every WebSocket now, without a close frame; return how many were cut."""
        sessions = self.sessions()
        for session in sessions:
            session.connection.abort()
        return len(sessions)

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._stopping.is_set()

    def close(self) -> None:
        """Stop serving, close every socket and join every thread the simulator started."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        self._pusher.stop()
        self._server.shutdown()
        for session in self.sessions():
            session.connection.abort()
        self._server.cut_all()
        self._server.server_close()
        self._serve_thread.join(5.0)
        for session in self.sessions():
            session.connection.join()

    def __enter__(self) -> Simulator:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Simulator(dialect={self.dialect!r}, plan={self._plan.name!r}, url={self.rest_url!r})"

    # -- requests (called from the server's handler threads) ---------------------------------

    def handle_rest(self, exchange: Exchange) -> Reply:
        reply = self._answer_rest(exchange)
        self.counters_store.add("rest_replies")  # made: whatever clock it read may move on now
        return reply

    def _answer_rest(self, exchange: Exchange) -> Reply:
        service, counters, faults = self.service, self.counters_store, self.faults
        counters.request(exchange.path)
        token = service.token_of(exchange)
        self.journal.record(
            JournalEntry(
                "rest",
                exchange.path,
                time.monotonic(),
                None,
                _public(exchange.query),
                _decode(exchange.body),
                token,
            )
        )
        self._maybe_slow()
        if faults.take("server_error_burst"):
            counters.fault("server_error_burst")
            counters.error(faults.server_error_status)
            return Reply(faults.server_error_status, b'{"error":"service unavailable"}')
        endpoint = service.endpoint_of(exchange)
        if endpoint is None:
            counters.error(404)
            return service.not_found_reply()
        # Routing comes first: a wrong method is refused before the token and the rate limit count it.
        refusal = service.method_reply(exchange, endpoint)
        if refusal is not None:
            counters.error(refusal.status)
            return refusal
        if token is None or not self.is_valid_token(token):
            counters.error(401)
            return service.auth_reply(missing=not token)
        if faults.take("rate_limit_burst"):
            counters.fault("rate_limit_burst")
            counters.error(service.rate_limit_code())
            return service.rate_limited_reply(1.0)
        wait = self.limiter.admit(token, endpoint)
        if wait is not None:
            counters.error(service.rate_limit_code())
            return service.rate_limited_reply(wait)
        return service.handle_rest(exchange)

    def handle_websocket(self, exchange: Exchange, handler: RequestHandler) -> None:
        """Serve one WebSocket on the handler's socket until it closes."""
        service, counters = self.service, self.counters_store
        token = service.ws_token(exchange)
        self.journal.record(
            JournalEntry(
                "ws_open", exchange.path, time.monotonic(), None, _public(exchange.query), None, token
            )
        )
        self._maybe_slow()
        group = service.ws_group(exchange)
        if group is None:
            counters.error(404)
            handler.write_reply(service.not_found_reply())
            return
        verdict = service.admit_upgrade(token, group)
        if verdict is not None and verdict != TOO_FREQUENT:
            counters.add("ws_connections_rejected")
            counters.error(401 if verdict == "auth" else 429)
            handler.write_reply(service.refuse_upgrade(verdict))
            return
        handler.accept_websocket()
        with self._sessions_lock:
            self._next_connection += 1
            connection_id = self._next_connection
        connection = Connection(handler.connection, handler.rfile, connection_id, exchange.path, counters)
        session = service.new_session(connection, exchange, token)
        with self._sessions_lock:
            self._sessions[connection_id] = session
        counters.add("ws_connections_opened")
        try:
            if verdict is None:
                session.on_open()
            else:
                session.cut_at_open(verdict)
            self._read_loop(session, connection, exchange.path)
        finally:
            with self._sessions_lock:
                self._sessions.pop(connection_id, None)
            session.on_close()
            connection.join(1.0)
            connection.abort()
            self.journal.record(JournalEntry("ws_close", exchange.path, time.monotonic(), connection_id))

    def _read_loop(self, session: Session, connection: Connection, path: str) -> None:
        while not connection.closed.is_set():
            try:
                kind, payload = connection.reader.next()
            except ws.FrameError as e:
                connection.close(e.code, str(e))
                return
            except (EOFError, OSError, ValueError):
                return
            if kind == "ping":
                connection.send_frames([ws.encode_frame(payload, ws.OP_PONG)])
            elif kind == "close":
                connection.close(ws.CLOSE_NORMAL)
                return
            elif kind == "text":
                text = payload.decode("utf-8", "replace")
                self.counters_store.add("ws_messages_received")
                self.journal.record(
                    JournalEntry(
                        "ws_message",
                        path,
                        time.monotonic(),
                        connection.id,
                        message=_decode(payload),
                        token=session.token,
                    )
                )
                try:
                    session.on_text(text)
                except Exception:  # a message the dialect code did not foresee: say so, keep serving
                    logger.exception("connection %d: could not handle %.200r", connection.id, text)
                    connection.close(1011, "internal error")
                    return

    def _maybe_slow(self) -> None:
        if self.faults.slow_ms > 0:
            self.counters_store.fault("slow_ms")
            self._stopping.wait(self.faults.slow_ms / 1000)

    def _served(self, symbol: str) -> str:
        name = parse_symbol(symbol).symbol
        if self.model.instrument(name) is None:
            raise ConfigError(
                f"symbol {symbol!r} is not served by this simulator; "
                f"use one of {', '.join(self.symbols)} or pass symbols=[...]"
            )
        return name


def _to_ms(start: int | datetime | None) -> int:
    if start is None:
        return DEFAULT_START_MS
    if isinstance(start, datetime):
        if start.tzinfo is None:
            raise ConfigError(f"start must be an aware datetime or epoch ms, was naive {start.isoformat()}")
        return int(start.timestamp() * 1000)
    return int(start)


def _public(query: dict[str, str]) -> dict[str, str]:
    # The journal is read by tests and may be logged: keep the token out of it.
    return {name: value for name, value in query.items() if name != "token"}


def _decode(body: bytes) -> Any:
    import json

    if not body:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return body.decode("utf-8", "replace")
