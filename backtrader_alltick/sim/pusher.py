"""The pusher: one thread that follows the market clock and feeds every WebSocket session.

Each step it takes the trades of ``[cursor, now)`` once per subscribed symbol, lets each
session render its frames (renderings are shared between sessions of one dialect
through :class:`Step`), applies the push faults and queues the frames on the
connection's writer.  It also enforces heartbeat timeouts and the drop-every fault.
"""

from __future__ import annotations

import bisect
import logging
import threading
import time
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from . import websocket as ws
from .grid import DAY_MS, MINUTE_MS
from .prices import TradeArrays

if TYPE_CHECKING:
    from .market import MarketModel
    from .server import Connection
    from .simulator import Simulator

logger: logging.Logger = logging.getLogger(__name__)
STEP_SECONDS = 0.02
MALFORMED = '{"cmd_id":22998,"data":{"code":'  # cut JSON: a parser must reject it, not crash
_T = TypeVar("_T")


class Step:
    """The trades of one pusher step and a memo for renderings shared by sessions.

    With ``resend_ms`` > 0 the trade stream (:meth:`pushed`) also repeats a closed market's last
    trade, unchanged, at every multiple of ``resend_ms`` of market time, as some services do.
    """

    def __init__(self, model: MarketModel, start_ms: int, end_ms: int, resend_ms: int = 0) -> None:
        self.model: MarketModel = model
        self.start = start_ms
        self.end = end_ms
        self.resend_ms = resend_ms
        self._trades: dict[str, TradeArrays] = {}
        self._pushed: dict[str, TradeArrays] = {}
        self._memo: dict[Hashable, Any] = {}

    def trades(self, symbol: str) -> TradeArrays:
        """The trades of ``[start, end)`` as (time, price, size, direction, seq) arrays."""
        found = self._trades.get(symbol)
        if found is None:
            found = self._trades[symbol] = self.model.trade_arrays(symbol, self.start, self.end)
        return found

    def pushed(self, symbol: str) -> TradeArrays:
        """The trade frames' rows, in push order: :meth:`trades` plus the re-sends of a closed market."""
        found = self._pushed.get(symbol)
        if found is None:
            found = self._pushed[symbol] = self._with_resends(symbol)
        return found

    def _with_resends(self, symbol: str) -> TradeArrays:
        trades = self.trades(symbol)
        if not self.resend_ms:
            return trades
        instants = self.model.closed_instants(symbol, self.start, self.end, self.resend_ms)
        if not instants:
            return trades
        times = trades[0].tolist()
        rows: list[tuple[int, ...]] = [
            tuple(int(column[index]) for column in trades) for index in range(len(times))
        ]
        events: list[tuple[int, int, tuple[int, ...]]] = [(time, 0, row) for time, row in zip(times, rows)]
        for instant in instants:
            index = bisect.bisect_right(times, instant) - 1
            row = rows[index] if index >= 0 else self.model.last_row(symbol, self.start)
            if row is not None:
                events.append((instant, 1, row))
        events.sort(key=lambda event: event[:2])
        time, price, size, direction, seq = (
            np.array([event[2][column] for event in events], dtype=np.int64) for column in range(5)
        )
        return time, price, size, direction, seq

    def memo(self, key: Hashable, build: Callable[[], _T]) -> _T:
        """The value ``build`` returns, built once per step for every session that asks for ``key``."""
        if key not in self._memo:
            self._memo[key] = build()
        found: _T = self._memo[key]
        return found


class Session:
    """What both dialects' WebSocket sessions share: state the pusher reads and fault handling."""

    default_heartbeat_timeout: float = 30.0

    def __init__(self, sim: Simulator, connection: Connection, token: str | None) -> None:
        self.sim: Simulator = sim
        self.connection: Connection = connection
        self.token = token
        self.last_heartbeat: float = time.monotonic()
        self.tick_index: int = 0
        self._held_back: bytes | None = None  # a trade frame waiting for the next one to pass it
        self._held_steps = 0  # steps without a trade it has waited
        self.malformed_sent: int = 0

    @property
    def heartbeat_timeout(self) -> float:
        """Wall seconds without a heartbeat after which the server closes the socket."""
        return self.sim.heartbeat_timeout or self.default_heartbeat_timeout

    def heard(self) -> None:
        """The client's heartbeat arrived: the heartbeat timeout starts again."""
        self.last_heartbeat = time.monotonic()

    def wanted(self) -> set[str]:
        """Symbols this session needs trades for."""
        raise NotImplementedError

    def render(self, step: Step) -> tuple[list[bytes], list[bytes]]:
        """(tick frames, other frames) for this step."""
        raise NotImplementedError

    def on_text(self, text: str) -> None:
        raise NotImplementedError

    @property
    def budget_group(self) -> str:
        """The connection allowance this socket counts against."""
        return "all"

    _holds_budget = False

    def acquire_budget(self) -> bool:
        """Take a slot of the plan's connection cap; on refusal tell the client and close."""
        if self.sim.connection_budget.acquire(self.token, self.budget_group):
            self._holds_budget = True
            return True
        self.sim.counters_store.add("ws_connections_rejected")
        self.over_budget()
        return False

    def over_budget(self) -> None:
        self.connection.close(ws.CLOSE_POLICY, "connection limit")

    def on_open(self) -> None:
        """Called once the upgrade is done, before the first client message is read."""

    def cut_at_open(self, reason: str) -> None:
        """The upgrade was answered only to cut the socket at once (``reason``: the verdict)."""
        self.sim.counters_store.add("ws_connections_rejected")
        self.connection.close(ws.CLOSE_POLICY, reason)

    def on_close(self) -> None:
        """Release what the session holds (connection budget)."""
        if self._holds_budget:
            self._holds_budget = False
            self.sim.connection_budget.release(self.token, self.budget_group)

    def reply(self, payload: str, code: int | str | None = None) -> None:
        if code is not None:
            self.sim.counters_store.error(code)
        self.connection.send_text(payload)
        self.sim.counters_store.add("frames_sent")

    def deliver(self, ticks: list[bytes], others: list[bytes]) -> None:
        """Queue this step's pushes on the connection, with the push faults applied."""
        faults, counters, connection = self.sim.faults, self.sim.counters_store, self.connection
        if faults.duplicate_every or faults.reorder_every or self._held_back is not None:
            ticks = self._disturb(ticks)
        else:
            self.tick_index += len(ticks)
        frames = ticks + others if others else ticks
        if not frames:
            return
        if faults.malformed_frames:
            frames = list(frames)
            for index in range(len(frames)):
                if not faults.take("malformed_frames"):
                    break
                frames[index] = ws.text_frame(MALFORMED)
                counters.fault("malformed_frames")
                self.malformed_sent += 1
        if faults.truncated_frames and faults.take("truncated_frames"):
            counters.fault("truncated_frames")
            connection.send_raw_then_abort(frames[0][: max(1, len(frames[0]) // 2)])
            return
        limit = faults.drop_after_frames
        if limit is not None and connection.pushed + len(frames) >= limit:
            frames = frames[: max(0, limit - connection.pushed)]
            connection.send_frames(frames, pushes=len(frames))
            counters.fault("drop_after_frames")
            self._count(frames, ticks)
            connection.cut_after_flush()
            return
        connection.send_frames(frames, pushes=len(frames))
        self._count(frames, ticks)

    def _count(self, frames: list[bytes], ticks: list[bytes]) -> None:
        counters = self.sim.counters_store
        counters.add("frames_sent", len(frames))
        counters.add("ticks_pushed", min(len(ticks), len(frames)))

    def _disturb(self, ticks: list[bytes]) -> list[bytes]:
        faults = self.sim.faults
        reorder = faults.reorder_every
        out: list[bytes] = []
        held, self._held_back = self._held_back, None
        if held is not None and not (reorder and (self.tick_index + 1) % reorder == 0):
            out.append(held)  # the fault was turned off meanwhile: nothing to swap with
            held = None
        for frame in ticks:
            self.tick_index += 1
            if reorder and self.tick_index % reorder == 0 and (out or held is not None):
                if held is not None:
                    out += [frame, held]
                    held = None
                else:
                    out.insert(len(out) - 1, frame)
                self.sim.counters_store.fault("reorder_every")
            else:
                out.append(frame)
            if faults.duplicate_every and self.tick_index % faults.duplicate_every == 0:
                out.append(frame)
                self.sim.counters_store.fault("duplicate_every")
        if held is not None:
            if not ticks and self._held_steps < HOLD_BACK_STEPS:
                self._held_back, self._held_steps = held, self._held_steps + 1  # no trade this step
                return out
            out.append(held)  # no trade came for a while: the swap waits no longer
        elif reorder and (self.tick_index + 1) % reorder == 0 and out:
            # The next trade swaps places with this step's last: it may come only in a later step.
            self._held_back, self._held_steps = out.pop(), 0
        return out


# Steps without a trade that a frame held back for ``reorder_every`` waits for the trade to pass it.
HOLD_BACK_STEPS = 5


class StaleTrades:
    """The ``resend_stale_trade`` fault: per token and endpoint, the last trade frame of recent minutes.

    A frame counts for the minute its step ended in, so a frame of a step that ended by a
    minute boundary is surely older than that boundary.

    Example::

        stale.note(session, step, ticks); ticks = stale.resend(session, step) + ticks
    """

    def __init__(self) -> None:
        self._last: dict[tuple[str | None, str], dict[int, bytes]] = {}
        self._malformed_seen: dict[int, int] = {}
        self._connections: set[int] = set()

    def around(self, session: Session, step: Step, ticks: list[bytes]) -> list[bytes]:
        """``ticks`` with a stale frame in front if the session reconnected or saw a malformed frame."""
        if not ticks:
            return ticks
        key = (session.token, session.connection.path)
        connection = session.connection.id
        last = self._last.setdefault(key, {})
        reconnected = connection not in self._connections and bool(last)
        self._connections.add(connection)
        broken = session.malformed_sent > self._malformed_seen.get(connection, 0)
        self._malformed_seen[connection] = session.malformed_sent
        # After a drop: the last trade pushed at all; after a malformed frame: the last of an earlier minute.
        minutes = list(last) if reconnected else [m for m in last if m < step.start // MINUTE_MS]
        out = ticks
        if (reconnected or broken) and minutes:
            out = [last[max(minutes)], *ticks]
            session.sim.counters_store.fault("resend_stale_trade")
        last[(step.end - 1) // MINUTE_MS] = ticks[-1]
        for old in sorted(last)[:-3]:
            del last[old]
        return out


class Pusher:
    """Follows ``sim.clock`` and pushes every trade exactly once to each subscribed session.

    Example::

        pusher = Pusher(sim); pusher.start(); ...; pusher.stop()
    """

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.cursor: int = sim.clock.now_ms()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sim-pusher", daemon=True)
        self._last_drop = time.monotonic()
        self._stale = StaleTrades()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5.0)

    def _run(self) -> None:
        while not self._stop.wait(STEP_SECONDS):
            try:
                self.step()
            except Exception:  # a bug here must not silently end every stream
                logger.exception("simulator pusher step failed")

    def step(self) -> None:
        sim = self.sim
        sessions = sim.sessions()
        self._enforce(sessions)
        # Bound one step to a day of market time so a huge speed cannot stall the loop.
        now = min(sim.clock.now_ms() - sim.faults.push_lag_ms, self.cursor + DAY_MS)
        if now <= self.cursor:
            return
        step = Step(sim.model, self.cursor, now, int(sim.resend_when_closed_s * 1000))
        self.cursor = now
        for session in sessions:
            if session.connection.closed.is_set():
                continue
            try:
                ticks, others = session.render(step)
                if sim.faults.resend_stale_trade:
                    ticks = self._stale.around(session, step, ticks)
                session.deliver(ticks, others)
            except Exception:  # one broken session must not cost the others this step's trades
                logger.exception("connection %d: push failed; closing it", session.connection.id)
                session.connection.abort()

    def _enforce(self, sessions: list[Session]) -> None:
        wall = time.monotonic()
        faults = self.sim.faults
        if faults.drop_every and wall - self._last_drop >= faults.drop_every:
            self._last_drop = wall
            if sessions:
                self.sim.counters_store.fault("drop_every")
            for session in sessions:
                session.connection.abort()
        for session in sessions:
            if wall - session.last_heartbeat > session.heartbeat_timeout:
                logger.info(
                    "connection %d: no heartbeat for %.0f s; closing",
                    session.connection.id,
                    session.heartbeat_timeout,
                )
                session.last_heartbeat = float("inf")  # close once
                session.connection.close(ws.CLOSE_NORMAL, "heartbeat timeout")
