"""The ``alltick`` dialect's WebSocket sessions on the simulated server (``shared/protocol/alltick.md`` 5-6).

One session per socket: cmd_id 22000-22007 requests and their answers, and the
22998/22999 pushes rendered from each pusher step.  The REST side and the upgrade are
in :mod:`.alltick`.
"""

from __future__ import annotations

import functools
import json
import math
import time
from typing import TYPE_CHECKING

from .alltick_format import HEADER_INVALID, MESSAGES, book_levels, decimal_text, json_bytes
from .pusher import Session, Step

if TYPE_CHECKING:
    from .server import Connection
    from .simulator import Simulator


class AllTickSession(Session):
    """One AllTick socket: trade and depth lists (each replaced by its own subscribe)."""

    default_heartbeat_timeout: float = 30.0  # alltick.md 5.3

    def __init__(self, sim: Simulator, connection: Connection, token: str | None, family: str) -> None:
        super().__init__(sim, connection, token)
        self.family = family
        self.trade_codes: list[str] = []
        self.depth_codes: dict[str, int] = {}
        self._last_request = -math.inf

    @property
    def budget_group(self) -> str:
        # A stock socket and a non-stock socket together use one connection allowance (alltick.md 6.3).
        return self.family

    def on_open(self) -> None:
        self.acquire_budget()

    def cut_at_open(self, reason: str) -> None:
        # Too soon after the previous attempt: 606, then the close (alltick.md 6.3, 6.4).
        self.sim.counters_store.add("ws_connections_rejected")
        self._answer(0, 0, "", 606)
        self.connection.close(1008, f"connection attempts {reason}")

    def over_budget(self) -> None:
        self._answer(0, 0, "", 606)
        self.connection.close(1008, "connection limit")

    def wanted(self) -> set[str]:
        return set(self.trade_codes) | set(self.depth_codes)

    def on_text(self, text: str) -> None:
        try:
            message = json.loads(text)
            cmd_id = message["cmd_id"]
        except (ValueError, KeyError, TypeError):
            self._answer(0, 0, "", 400, HEADER_INVALID)
            return
        seq_id, trace = message.get("seq_id"), message.get("trace", "")
        data = message.get("data")
        if cmd_id == 22000:
            self.heard()
            if self.sim.faults.ignore_heartbeats:
                self.sim.counters_store.fault("ignore_heartbeats")
            else:
                self._answer(22001, seq_id, trace)
            return
        now = time.monotonic()
        # At least 1 s between requests on one socket (alltick.md 6.3); heartbeats are exempt.
        if now - self._last_request < self.sim.plan.ws_request_spacing:
            self._answer(cmd_id + 1 if isinstance(cmd_id, int) else 0, seq_id, trace, 606)
            self.connection.close(1008, "too many requests")
            return
        self._last_request = now
        # And 3 s after a request on another socket of the family (6.3).
        if not self.sim.socket_pacing.admit_request(self.token, self.family, self.connection.id):
            self._answer(cmd_id + 1 if isinstance(cmd_id, int) else 0, seq_id, trace, 606)
            self.connection.close(1008, "too many requests")
            return
        if not isinstance(data, dict):
            self._answer(cmd_id + 1 if isinstance(cmd_id, int) else 0, seq_id, trace, 400)
        elif cmd_id in (22002, 22004):
            self._subscribe(cmd_id, seq_id, trace, data)
        elif cmd_id == 22006:
            kind = data.get("cancel_type")
            if kind not in (0, 1, 2, 3):
                self._answer(22007, seq_id, trace, 400)
                return
            if kind in (0, 1):
                self.depth_codes = {}
            if kind in (0, 2):
                self.trade_codes = []
            self._answer(22007, seq_id, trace)
        else:
            self._answer(cmd_id + 1 if isinstance(cmd_id, int) else 0, seq_id, trace, 400)

    def _subscribe(self, cmd_id: int, seq_id, trace, data: dict) -> None:
        items = data.get("symbol_list")
        if not isinstance(items, list) or not all(_valid_subscription(item) for item in items):
            self._answer(cmd_id + 1, seq_id, trace, 400)
            return
        model, stock = self.sim.model, self.family == "stock"
        served = [
            item
            for item in items
            if (inst := model.instrument(item["code"])) is not None
            and inst.symbol == item["code"]
            and inst.is_stock == stock
            and item["code"] not in self.sim.denied_symbols
        ]
        served = served[: self.sim.plan.ws_symbols]
        if cmd_id == 22004:
            self.trade_codes = list(dict.fromkeys(item["code"] for item in served))
        else:
            self.depth_codes = {item["code"]: int(item.get("depth_level") or 1) for item in served}
        self._answer(cmd_id + 1, seq_id, trace)

    def _answer(self, cmd_id: int, seq_id, trace, ret: int = 200, message: str | None = None) -> None:
        # The docs' answers always carry a numeric seq_id: 0 when the request had none (or no number).
        if not isinstance(seq_id, int) or isinstance(seq_id, bool):
            seq_id = 0
        payload = {
            "ret": ret,
            "msg": message or MESSAGES[ret],
            "cmd_id": cmd_id,
            "seq_id": seq_id,
            "trace": trace if isinstance(trace, str) else "",
            "data": {},
        }
        self.reply(json_bytes(payload).decode(), None if ret == 200 else ret)

    def render(self, step: Step) -> tuple[list[bytes], list[bytes]]:
        ticks: list[bytes] = []
        for code in self.trade_codes:
            ticks.extend(step.memo(("alltick-trades", code), functools.partial(_trade_frames, step, code)))
        others: list[bytes] = []
        for code, level in self.depth_codes.items():
            if len(step.trades(code)[0]):
                frame = step.memo(
                    ("alltick-depth", code, level), functools.partial(_depth_frame, step, code, level)
                )
                if frame:
                    others.append(frame)
        return ticks, others


def _trade_frames(step: Step, code: str) -> list[bytes]:
    from .websocket import text_frame

    time_, price, size, direction, seq = step.pushed(code)
    spec = step.model.specs[code]
    ps, ss, decimals = spec.price_scale, spec.size_scale, spec.size_decimals
    scale, places = ps * ss, spec.price_decimals + decimals
    frames = []
    for t, p, s, d, q in zip(time_.tolist(), price.tolist(), size.tolist(), direction.tolist(), seq.tolist()):
        volume = str(s) if decimals == 0 else decimal_text(s / ss, decimals)
        frames.append(
            text_frame(
                f'{{"cmd_id":22998,"data":{{"code":"{code}","seq":{q},"tick_time":{t},"price":"{p / ps!r}",'
                f'"volume":"{volume}","turnover":"{decimal_text(p * s / scale, places)}",'
                f'"trade_direction":{d}}}}}'
            )
        )
    return frames


def _depth_frame(step: Step, code: str, levels: int) -> bytes | None:
    from .websocket import text_frame

    depth = step.model.depth(code, step.end, levels)
    if depth is None:
        return None
    seq = int(step.trades(code)[4][-1])
    decimals = step.model.specs[code].size_decimals
    body = {
        "cmd_id": 22999,
        "data": {
            "code": code,
            "seq": seq,
            "tick_time": depth.time,
            "bids": book_levels(depth.bids, decimals),
            "asks": book_levels(depth.asks, decimals),
        },
    }
    return text_frame(json_bytes(body).decode())


def _valid_subscription(item) -> bool:
    # alltick.md 5.3: each entry is {"code": str} and, for depth, an optional uint depth_level.
    if not isinstance(item, dict) or not isinstance(item.get("code"), str):
        return False
    level = item.get("depth_level", 1)
    return isinstance(level, int) and not isinstance(level, bool) and level >= 0
