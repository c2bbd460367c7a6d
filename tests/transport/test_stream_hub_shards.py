"""StreamHub over the plan's connections, against the simulator's own plan table and caps."""

import logging
import threading

import pytest

from backtrader_alltick import plans, wire
from backtrader_alltick.errors import ConfigError
from backtrader_alltick.records import Tick
from backtrader_alltick.transport.stream_hub import StreamHub

SPACING = 0.5  # between connection attempts, and requests, of different connections
FAST = {
    "heartbeat_interval": 2.0,
    "stale_after": 10.0,
    "backoff_initial": 0.01,
    "backoff_cap": 0.05,
    "min_reconnect_interval": SPACING,
}  # requests on one connection: the plan's 1 s


def _stocks(count: int) -> list[str]:
    return [f"S{index:04d}.US" for index in range(count)]


class Seen:
    """Which codes sent a tick, and each connected status; tests wait on it, never sleep."""

    def __init__(self) -> None:
        self.symbols: set[str] = set()
        self.connected = 0
        self._changed = threading.Condition()

    def on_event(self, event) -> None:
        if type(event) is Tick and event.symbol not in self.symbols:
            with self._changed:
                self.symbols.add(event.symbol)
                self._changed.notify_all()

    def on_status(self, status) -> None:
        with self._changed:
            self.connected += status.kind == "connected"
            self._changed.notify_all()

    def wait_for(self, predicate, timeout: float = 60.0) -> None:
        with self._changed:
            assert self._changed.wait_for(predicate, timeout), f"{len(self.symbols)} codes seen"


def _hub(sim, seen: Seen, plan: str, **settings) -> StreamHub:
    return StreamHub(
        wire.get_dialect(sim.dialect),
        sim.ws_url,
        sim.token,
        plans.get_plan(sim.dialect, plan),
        clock=sim.clock,
        on_event=seen.on_event,
        on_status=seen.on_status,
        **{**FAST, **settings},
    )


def _served(sim) -> list[list[str]]:
    # What the simulator serves on each open socket: its own cap applied, whatever the client sent.
    return sorted((sorted(session.trade_codes) for session in sim.sessions()), key=len, reverse=True)


def test_premium_spreads_450_codes_over_3_connections_and_every_code_ticks(make_sim):
    # The plan's own spacing (3 s between attempts, and requests, of different connections), which
    # the simulator enforces as the service does: no attempt or request of the client is refused.
    symbols = _stocks(450)
    sim = make_sim(plan="premium", symbols=symbols, speed=60)
    seen = Seen()
    hub = _hub(sim, seen, "premium", min_reconnect_interval=None)
    try:
        for symbol in symbols:
            hub.subscribe(symbol)
        hub.start()
        seen.wait_for(lambda: len(seen.symbols) == 450)
        served = _served(sim)
    finally:
        hub.stop()

    assert hub.placement("stock") == [200, 200, 50]
    assert [len(codes) for codes in served] == [200, 200, 50]
    assert sorted(code for codes in served for code in codes) == symbols
    opens = [entry.wall_time for entry in sim.journal.entries if entry.kind == "ws_open"]
    subscribes = [
        entry.wall_time
        for entry in sim.journal.entries
        if entry.kind == "ws_message"
        and isinstance(entry.message, dict)
        and entry.message.get("cmd_id") == 22004
    ]
    assert len(opens) >= 3 and len(subscribes) >= 3  # a busy machine may see a connection go stale
    assert all(b - a >= 3.0 for times in (opens, subscribes) for a, b in zip(times, times[1:]))
    assert sim.counters["ws_connections_rejected"] == 0 and "606" not in sim.counters["errors_sent"]


def test_past_the_plans_total_is_a_config_error_before_any_connection(make_sim):
    sim = make_sim(plan="premium", symbols=_stocks(601))
    hub = _hub(sim, Seen(), "premium")
    try:
        with pytest.raises(ConfigError, match="601 stock codes are wanted; plan 'premium' serves at most"):
            hub.check(_stocks(601))
        hub.start()
        for symbol in _stocks(600):
            hub.subscribe(symbol)
        with pytest.raises(ConfigError):
            hub.subscribe("S0600.US")
    finally:
        hub.stop()

    assert hub.placement("stock") == [200, 200, 200]


def test_a_dropped_connection_resubscribes_its_codes_and_none_is_silently_dead(make_sim):
    symbols = _stocks(30)
    sim = make_sim(plan="unlimited", symbols=symbols, speed=60)
    seen = Seen()
    hub = StreamHub(
        "alltick",
        sim.ws_url,
        sim.token,
        plans.get_plan("alltick", "premium"),
        clock=sim.clock,
        on_event=seen.on_event,
        on_status=seen.on_status,
        **FAST,
    )
    hub.capacity = hub.capacity.__class__("tiny", 10, 3, 30, False)  # 3 connections of 10 codes
    try:
        for symbol in symbols[:25]:
            hub.subscribe(symbol)
        hub.start()
        seen.wait_for(lambda: len(seen.symbols) == 25 and seen.connected == 3)
        for symbol in symbols[:5]:
            hub.unsubscribe(symbol)  # room on the first connection
        victim = next(session for session in sim.sessions() if "S0012.US" in session.trade_codes)
        victim.connection.abort()
        for symbol in symbols[25:]:
            hub.subscribe(symbol)  # while the second connection is down
        seen.symbols.clear()
        seen.wait_for(lambda: seen.connected == 4 and set(symbols[5:]) <= seen.symbols)
        served = _served(sim)
    finally:
        hub.stop()

    assert sorted(code for codes in served for code in codes) == symbols[5:]
    assert all(len(codes) <= 10 for codes in served)
    assert hub.stats["stock"]["reconnects"] == 1


def _tiny_hub(sim, seen: Seen, links: int) -> StreamHub:
    hub = StreamHub(
        "alltick",
        sim.ws_url,
        sim.token,
        plans.get_plan("alltick", "premium"),
        clock=sim.clock,
        on_event=seen.on_event,
        on_status=seen.on_status,
        **FAST,
    )
    hub.capacity = hub.capacity.__class__("tiny", 10, links, 10 * links, False)  # connections of 10 codes
    return hub


def _opens(sim) -> int:
    return sum(entry.kind == "ws_open" for entry in sim.journal.entries)


def test_a_connection_whose_codes_are_all_unsubscribed_is_closed_and_reopened_when_needed(make_sim):
    symbols = _stocks(15)
    sim = make_sim(plan="unlimited", symbols=symbols, speed=60)
    seen = Seen()
    hub = _tiny_hub(sim, seen, links=2)
    try:
        for symbol in symbols:
            hub.subscribe(symbol)
        hub.start()
        seen.wait_for(lambda: len(seen.symbols) == 15 and seen.connected == 2)
        second = next(session for session in sim.sessions() if "S0012.US" in session.trade_codes)
        for symbol in symbols[10:]:
            hub.unsubscribe(symbol)
        sim.journal.wait_for(lambda entry: entry.kind == "ws_close", timeout=30)
        open_after_unsubscribe = sim.counters["ws_connections_open"]
        opens_after_unsubscribe = _opens(sim)
        assert second not in sim.sessions()

        for symbol in symbols[10:]:
            hub.subscribe(symbol)
        seen.symbols.clear()
        seen.wait_for(lambda: seen.symbols >= set(symbols[10:]) and seen.connected == 3)
        served = _served(sim)
    finally:
        hub.stop()

    assert open_after_unsubscribe == 1 and opens_after_unsubscribe == 2
    assert hub.placement("stock") == [10, 5]
    assert [len(codes) for codes in served] == [10, 5]
    assert hub.stats["stock"]["links"] == 2


def test_a_dropped_connection_whose_codes_all_moved_is_not_reopened(make_sim):
    symbols = _stocks(25)
    sim = make_sim(plan="unlimited", symbols=symbols, speed=60)
    seen = Seen()
    hub = _tiny_hub(sim, seen, links=3)
    try:
        for symbol in symbols:
            hub.subscribe(symbol)
        hub.start()
        seen.wait_for(lambda: len(seen.symbols) == 25 and seen.connected == 3)
        for symbol in symbols[:5]:
            hub.unsubscribe(symbol)  # room on the first connection for the third one's 5 codes
        dropped = hub._links[("stock", 2)]
        victim = next(session for session in sim.sessions() if "S0022.US" in session.trade_codes)
        victim.connection.abort()
        seen.symbols.clear()
        seen.wait_for(lambda: seen.symbols >= set(symbols[20:]))
        dropped.thread.join(30)  # its reader thread ends instead of reconnecting an empty connection
        served = _served(sim)
        open_now, opens = sim.counters["ws_connections_open"], _opens(sim)
    finally:
        hub.stop()

    assert not dropped.thread.is_alive()
    assert hub.placement("stock") == [10, 10, 0]
    assert [len(codes) for codes in served] == [10, 10]
    assert open_now == 2 and opens == 3


def test_statuses_and_log_lines_name_the_connection_when_a_family_has_several(make_sim, caplog):
    caplog.set_level(logging.INFO, logger="backtrader_alltick.transport")
    symbols = _stocks(15)
    sim = make_sim(plan="unlimited", symbols=[*symbols, "BTCUSDT"], speed=60)
    seen, statuses = Seen(), []
    hub = _tiny_hub(sim, seen, links=2)
    hub.on_status = lambda status: (statuses.append(status), seen.on_status(status))
    try:
        for symbol in [*symbols, "BTCUSDT"]:
            hub.subscribe(symbol)
        hub.start()
        seen.wait_for(lambda: len(seen.symbols) == 16 and seen.connected == 3)
        victim = next(session for session in sim.sessions() if "S0012.US" in session.trade_codes)
        victim.connection.abort()
        seen.wait_for(lambda: seen.connected == 4)
    finally:
        hub.stop()

    named = {(status.connection, status.kind) for status in statuses}
    assert {("stock#1", "connected"), ("stock#2", "connected"), ("stock#2", "disconnected")} <= named
    assert ("other", "connected") in named  # the family's only connection needs no number
    messages = [record.getMessage() for record in caplog.records]
    assert any(message.startswith("stream stock#1 connected") for message in messages)
    assert any(message.startswith("stream stock#2 disconnected") for message in messages)
    assert any(message.startswith("stream other connected") for message in messages)
