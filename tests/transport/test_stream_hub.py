"""StreamHub: validation here; behaviour over real loopback sockets below."""

import contextlib
import logging
import socket
import threading
import traceback

import pytest
from scripted_servers import ScriptedWebSocketServer, close_with, send_then_drain

from backtrader_alltick import plans, wire
from backtrader_alltick.errors import (
    AuthError,
    ConfigError,
    ConnectError,
    Timeout,
    TransportError,
)
from backtrader_alltick.records import Tick
from backtrader_alltick.symbols import parse_symbol
from backtrader_alltick.transport.stream_hub import StreamHub
from backtrader_alltick.transport.stream_protocol import StreamStatus

SENTINEL = "SENTINEL-TOKEN-0123456789"


def _hub(**kwargs):
    return StreamHub(
        wire.get_dialect("alltick"),
        "ws://127.0.0.1:1",
        SENTINEL,
        plans.get_plan("alltick", "free"),
        on_event=print,
        on_status=print,
        **kwargs,
    )


def test_hub_rejects_stale_after_not_above_the_heartbeat_interval():
    with pytest.raises(ConfigError) as info:
        _hub(heartbeat_interval=10.0, stale_after=10.0)

    assert str(info.value) == "stale_after must be greater than heartbeat_interval (10.0 s), was 10.0"


def test_hub_rejects_reconnections_below_minus_one():
    with pytest.raises(ConfigError, match="reconnections must be -1"):
        _hub(reconnections=-2)


def test_hub_defaults_come_from_the_dialect_and_the_plan():
    hub = _hub()

    settings = hub.settings
    assert (settings.heartbeat_interval, settings.stale_after) == (10.0, 30.0)
    assert (settings.min_reconnect_interval, settings.request_spacing) == (10.0, 1.0)
    assert settings.symbol_limit == 5
    assert SENTINEL not in repr(hub)


def test_hub_stop_before_start_and_twice_is_harmless():
    hub = _hub()
    hub.subscribe("AAPL.US")

    hub.stop()
    hub.stop()
    hub.start()

    assert hub.stats == {}


# -- Over real loopback sockets, against the simulator --------------------------------------------

CRYPTO = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT", "DOGEUSDT", "ADAUSDT", "LTCUSDT"]
FAST = {
    "heartbeat_interval": 0.2,
    "stale_after": 0.6,
    "backoff_initial": 0.005,
    "backoff_factor": 2.0,
    "backoff_cap": 0.05,
    "min_reconnect_interval": 0.0,
    "request_spacing": 0.0,
}


@pytest.fixture(params=["alltick", "itick"])
def busy_sim(request, make_sim):
    # 20 market minutes per wall second: enough trades per second for tests that count them.
    return make_sim(dialect=request.param, speed=1200)


class Recorder:
    """Collects what the hub reports on its socket threads; tests wait on it, never sleep."""

    def __init__(self) -> None:
        self.events: list = []
        self.statuses: list[StreamStatus] = []
        self.stack_depths: list[int] = []
        self.thread_counts: list[int] = []
        self._changed = threading.Condition()

    def on_event(self, event) -> None:
        with self._changed:
            self.events.append(event)
            self._changed.notify_all()

    def on_status(self, status: StreamStatus) -> None:
        with self._changed:
            self.statuses.append(status)
            if status.kind == "connected":
                self.stack_depths.append(len(traceback.extract_stack()))
                # The hub's own threads: the simulator's handler of a dropped socket may still be exiting.
                self.thread_counts.append(sum(t.name.startswith("alltick-") for t in threading.enumerate()))
            self._changed.notify_all()

    def wait_for(self, predicate, timeout: float = 20.0) -> None:
        with self._changed:
            if not self._changed.wait_for(predicate, timeout):
                raise AssertionError(f"condition not met within {timeout} s; statuses: {self.statuses[-5:]}")

    def kinds(self, kind: str) -> list[StreamStatus]:
        return [status for status in self.statuses if status.kind == kind]

    def ticks(self, symbol: str) -> list[Tick]:
        return [e for e in list(self.events) if isinstance(e, Tick) and e.symbol == symbol]


@contextlib.contextmanager
def running_hub(
    sim, recorder: Recorder, symbols=("BTCUSDT",), plan: str = "unlimited", ws_url=None, **options
):
    # ws_url: another server than the simulator (its token and clock still serve).
    settings = {"on_event": recorder.on_event, "on_status": recorder.on_status, **FAST, **options}
    hub = StreamHub(
        wire.get_dialect(sim.dialect),
        ws_url or sim.ws_url,
        sim.token,
        plans.get_plan(sim.dialect, plan),
        clock=sim.clock,
        **settings,
    )
    for symbol in symbols:
        hub.subscribe(symbol)
    hub.start()
    try:
        yield hub
    finally:
        hub.stop()


def _hub_threads() -> list[str]:
    names = ("alltick-stream", "alltick-heartbeat")
    return [thread.name for thread in threading.enumerate() if thread.name.startswith(names)]


def _subscribe_messages(sim) -> list:
    def is_subscribe(entry):
        message = entry.message if isinstance(entry.message, dict) else {}
        return entry.kind == "ws_message" and (
            message.get("cmd_id") == 22004 or message.get("ac") == "subscribe"
        )

    return [entry for entry in sim.journal.entries if is_subscribe(entry)]


def _codes(entry) -> list[str]:
    message = entry.message
    if "cmd_id" in message:
        return [item["code"] for item in message["data"]["symbol_list"]]
    return [param.split("$")[0] for param in message["params"].split(",")]


def test_hub_opens_one_connection_per_family_however_many_subscribers(sim):
    recorder = Recorder()
    symbols = ["BTCUSDT", "BTCUSDT", "ETHUSDT", "BTCUSDT", "AAPL.US", "TSLA.US"]

    with running_hub(sim, recorder, symbols) as hub:
        recorder.wait_for(lambda: len(recorder.kinds("connected")) == 2)
        sim.journal.wait_for(lambda e: len(_subscribe_messages(sim)) >= 2)
        stats = hub.stats

    assert sim.counters["ws_connections_opened"] == 2
    assert len(stats) == 2 and all(family["connects"] == 1 for family in stats.values())
    assert sorted(sorted(_codes(entry)) for entry in _subscribe_messages(sim)) == sorted(
        [
            sorted(["AAPL.US", "TSLA.US"] if sim.dialect == "alltick" else ["AAPL", "TSLA"]),
            ["BTCUSDT", "ETHUSDT"],
        ]
    )


def test_hub_alltick_sends_one_merged_list_per_kind_spaced_by_the_plan(alltick_sim):
    recorder = Recorder()

    with running_hub(alltick_sim, recorder, (), request_spacing=None, plan="basic") as hub:
        for symbol in CRYPTO[:4]:
            hub.subscribe(symbol)  # several feeds starting together: one message, not four
        hub.subscribe("BTCUSDT", trades=False, depth=True)
        depth = alltick_sim.journal.wait_for(
            lambda e: e.kind == "ws_message" and e.message["cmd_id"] == 22002
        )

    trades = _subscribe_messages(alltick_sim)
    assert len(trades) == 1 and _codes(trades[0]) == CRYPTO[:4]
    assert [item["code"] for item in depth.message["data"]["symbol_list"]] == ["BTCUSDT"]
    # One request at a time, in order; the plan's spacing between them is checked on the
    # protocol with an injected clock (test_stream_protocol: requests are spaced by the plan).
    sent = [
        entry
        for entry in alltick_sim.journal.entries
        if entry.kind == "ws_message"
        and isinstance(entry.message, dict)
        and entry.message.get("cmd_id") in (22002, 22004)
    ]
    assert [entry.message["cmd_id"] for entry in sent] == [22004, 22002]


def test_hub_alltick_unsubscribe_sends_the_remaining_list(alltick_sim):
    recorder = Recorder()

    with running_hub(alltick_sim, recorder, ["BTCUSDT", "ETHUSDT", "ETHUSDT"]) as hub:
        alltick_sim.journal.wait_for(lambda e: len(_subscribe_messages(alltick_sim)) == 1)
        hub.unsubscribe("ETHUSDT")  # one of two subscribers leaves: the code stays
        hub.unsubscribe("ETHUSDT")
        alltick_sim.journal.wait_for(lambda e: len(_subscribe_messages(alltick_sim)) == 2)

    assert [_codes(entry) for entry in _subscribe_messages(alltick_sim)] == [
        ["BTCUSDT", "ETHUSDT"],
        ["BTCUSDT"],
    ]


def test_hub_itick_stops_delivering_an_unsubscribed_code_without_unsubscribing(make_sim):
    itick_sim = make_sim(dialect="itick", speed=1200)
    recorder = Recorder()

    with running_hub(itick_sim, recorder, ["BTCUSDT", "ETHUSDT"]) as hub:
        recorder.wait_for(lambda: recorder.ticks("ETHUSDT") and len(recorder.ticks("BTCUSDT")) >= 5)
        hub.unsubscribe("ETHUSDT")
        seen = len(recorder.events)
        recorder.wait_for(lambda: len(recorder.events) >= seen + 50)

    later = recorder.events[seen + 1 :]
    assert later and all(event.symbol == "BTCUSDT" for event in later)
    # iTick's unsubscribe may close the socket (itick.md 8.3): the hub never sends one
    actions = [e.message.get("ac") for e in itick_sim.journal.entries if e.kind == "ws_message"]
    assert "unsubscribe" not in actions


def test_hub_resubscribes_the_full_list_after_the_server_drops_it(sim):
    recorder = Recorder()

    with running_hub(sim, recorder, CRYPTO[:3]):
        sim.journal.wait_for(lambda e: len(_subscribe_messages(sim)) >= 1)
        sim.drop_connections()
        sim.journal.wait_for(lambda e: len(_subscribe_messages(sim)) >= 2)
        recorder.wait_for(lambda: len(recorder.kinds("connected")) == 2)

    first, second = _subscribe_messages(sim)[:2]
    assert first.connection != second.connection
    assert _codes(first) == _codes(second) == CRYPTO[:3]
    dropped, reconnected = recorder.kinds("disconnected")[0], recorder.kinds("connected")[1]
    assert isinstance(dropped.error, TransportError)
    assert reconnected.at_ms >= dropped.at_ms


def test_hub_survives_many_drops_in_a_row_without_thread_or_stack_growth(busy_sim):
    recorder = Recorder()
    busy_sim.faults.drop_after_frames = 3

    with running_hub(busy_sim, recorder, CRYPTO[:2]) as hub:
        recorder.wait_for(lambda: len(recorder.kinds("connected")) >= 30, timeout=60)
        busy_sim.journal.wait_for(lambda e: len(_subscribe_messages(busy_sim)) >= 30)
        stats = hub.stats

    family = stats[wire.get_dialect(busy_sim.dialect).family(parse_symbol("BTCUSDT"))]
    assert family["reconnects"] >= 29
    assert len(set(recorder.stack_depths)) == 1
    assert max(recorder.thread_counts[2:]) == min(recorder.thread_counts[2:])
    assert len({entry.connection for entry in _subscribe_messages(busy_sim)}) >= 30  # each resubscribed


@pytest.mark.parametrize("faults", [{}, {"duplicate_every": 7, "reorder_every": 5}])
def test_hub_delivers_every_trade_of_the_window(busy_sim, faults):
    recorder = Recorder()
    busy_sim.faults.update(**faults)

    with running_hub(busy_sim, recorder, ["BTCUSDT", "ETHUSDT"]):
        recorder.wait_for(lambda: len(recorder.ticks("BTCUSDT")) >= 300)

    received = recorder.ticks("BTCUSDT")
    # A swapped pair may straddle the moment the hub stopped: leave the last few ticks out of the window.
    start, end = min(t.time for t in received), sorted(t.time for t in received)[-10]
    window = [(t.time, t.price, t.volume) for t in received if start <= t.time < end]
    truth = [(t.time, t.price, t.volume) for t in busy_sim.trades("BTCUSDT", start, end)]
    if faults:  # the hub passes duplicates and reordering through; dedup belongs to the aggregator
        assert sorted(set(window)) == sorted(set(truth))
        assert len(window) > len(set(window))
    else:
        assert window == truth


def test_hub_watchdog_reconnects_when_heartbeats_go_unanswered(sim):
    recorder = Recorder()

    with running_hub(sim, recorder) as hub:
        recorder.wait_for(lambda: recorder.kinds("connected"))
        sim.faults.ignore_heartbeats = True
        recorder.wait_for(lambda: recorder.kinds("disconnected"))
        sim.faults.ignore_heartbeats = False
        recorder.wait_for(lambda: len(recorder.kinds("connected")) >= 2)
        stats = next(iter(hub.stats.values()))

    assert isinstance(recorder.kinds("disconnected")[0].error, Timeout)
    assert stats["stale_timeouts"] >= 1 and stats["connects"] >= 2


def test_hub_keeps_a_quiet_but_answering_connection(sim):
    recorder = Recorder()

    with running_hub(sim, recorder, ["AAPL.US"]) as hub:  # may be closed: no ticks is not a dead stream
        recorder.wait_for(lambda: recorder.kinds("connected"))
        recorder.wait_for(
            lambda: (
                next(iter(hub.stats.values()))["heartbeats_answered"] >= 6 or recorder.kinds("disconnected")
            ),
            timeout=10,
        )
        stats = next(iter(hub.stats.values()))

    assert recorder.kinds("disconnected") == [] or recorder.kinds("disconnected")[-1].error is None
    assert stats["stale_timeouts"] == 0 and stats["connects"] == 1


def test_hub_counts_and_skips_malformed_frames(busy_sim):
    recorder = Recorder()

    with running_hub(busy_sim, recorder) as hub:
        recorder.wait_for(lambda: len(recorder.events) >= 10)
        busy_sim.faults.malformed_frames = 3
        recorder.wait_for(lambda: next(iter(hub.stats.values()))["malformed"] == 3)
        seen = len(recorder.events)
        recorder.wait_for(lambda: len(recorder.events) >= seen + 10)
        stats = next(iter(hub.stats.values()))

    assert stats["malformed"] == 3 and stats["connects"] == 1


def test_hub_survives_a_failing_on_event_callback(busy_sim, caplog):
    recorder = Recorder()
    calls = []

    def flaky(event):
        calls.append(event)
        if len(calls) % 2:
            raise RuntimeError("feed bug")
        recorder.on_event(event)

    with running_hub(busy_sim, recorder, on_event=flaky) as hub:
        recorder.wait_for(lambda: len(recorder.events) >= 10)
        stats = next(iter(hub.stats.values()))

    assert stats["callback_errors"] >= 10 and stats["connects"] == 1
    assert "on_event callback failed" in caplog.text and "feed bug" in caplog.text


def test_hub_rejected_token_gives_one_fatal_status_and_no_reconnect_storm(sim, caplog):
    recorder = Recorder()
    sim.faults.reject_token = True
    caplog.set_level(logging.DEBUG)

    with running_hub(sim, recorder):
        recorder.wait_for(lambda: recorder.kinds("fatal"))
        thread_names = _hub_threads()

    assert [status.kind for status in recorder.statuses] == ["fatal"]
    assert isinstance(recorder.statuses[0].error, AuthError)
    assert "alltick-stream" not in " ".join(thread_names)  # the loop ended on its own
    assert sim.counters["ws_connections_opened"] + sim.counters["ws_connections_rejected"] == 1
    assert sim.token not in caplog.text and sim.token not in str(recorder.statuses[0].error)


def test_hub_free_plan_refuses_a_code_past_the_plan_cap_and_serves_the_rest(sim):
    recorder = Recorder()
    limit = plans.get_plan(sim.dialect, "free").ws_symbols

    with running_hub(sim, recorder, CRYPTO[:limit], plan="free") as hub:
        with pytest.raises(ConfigError, match=r"too many symbols for one token: .* plan 'free'"):
            hub.subscribe(CRYPTO[limit])
        sim.journal.wait_for(lambda e: len(_subscribe_messages(sim)) >= 1)
        stats = next(iter(hub.stats.values()))

    assert _codes(_subscribe_messages(sim)[-1]) == CRYPTO[:limit]
    assert stats["dropped"] == []


def test_hub_stop_joins_every_thread(sim):
    recorder = Recorder()

    with running_hub(sim, recorder, ["BTCUSDT", "AAPL.US"]) as hub:
        recorder.wait_for(lambda: len(recorder.kinds("connected")) == 2)
        assert len(_hub_threads()) == 4
    hub.stop()  # a second stop is harmless

    assert _hub_threads() == []
    assert [status.kind for status in recorder.statuses[-2:]] == ["disconnected", "disconnected"]


def test_a_code_past_the_plan_total_is_a_config_error_that_changes_nothing(make_sim):
    sim = make_sim(plan="free")
    statuses = []
    hub = StreamHub(
        "alltick",
        sim.ws_url,
        sim.token,
        plans.get_plan("alltick", "free"),
        on_event=lambda record: None,
        on_status=statuses.append,
    )
    codes = ["BTCUSDT", "ETHUSDT", "EURUSD", "GOLD", "USDJPY"]
    try:
        hub.start()
        for code in codes:
            hub.subscribe(code)
        with pytest.raises(ConfigError) as info:
            hub.subscribe("US500")
        sim.journal.wait_for(lambda entry: entry.kind == "ws_message", timeout=10)
        hub.subscribe("ETHUSDT")  # a code already served takes no more room
    finally:
        hub.stop()

    assert "6 other codes are wanted; plan 'free' serves at most 5" in str(info.value)
    assert hub.placement("other") == [5]
    assert not [status for status in statuses if status.kind == "dropped"]


# -- No endless waits: impossible URLs, refused hosts, refused tokens -------------------------------


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080", "garbage", "ws://", "wss://[::1", "ws://h:99999"])
def test_hub_rejects_a_websocket_root_that_cannot_be_valid_at_once(url):
    with pytest.raises(ConfigError, match=r"^ws_root must be a ws:// or wss:// URL .*, was "):
        StreamHub(
            "alltick", url, SENTINEL, plans.get_plan("alltick", "free"), on_event=print, on_status=print
        )


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_hub_retries_a_refused_host_with_one_report_then_gives_up_after_reconnections(sim, caplog):
    recorder = Recorder()

    with running_hub(sim, recorder, ws_url=f"ws://127.0.0.1:{_closed_port()}", reconnections=2):
        recorder.wait_for(lambda: recorder.kinds("fatal"))

    assert [status.kind for status in recorder.statuses] == ["disconnected", "fatal"]
    assert isinstance(recorder.statuses[-1].error, ConnectError) and recorder.statuses[-1].attempt == 3
    assert "Connection refused" in caplog.text


@pytest.mark.parametrize(("dialect", "reason"), [("alltick", "token invalid"), ("itick", "auth failed")])
def test_hub_ends_on_a_close_1008_refusing_the_token_without_reconnecting(make_sim, dialect, reason):
    sim, recorder = make_sim(dialect=dialect), Recorder()

    with (
        ScriptedWebSocketServer(close_with(1008, reason)) as server,
        running_hub(sim, recorder, ws_url=server.url),
    ):
        recorder.wait_for(lambda: recorder.kinds("fatal"))

    error = recorder.kinds("fatal")[0].error
    assert isinstance(error, AuthError) and reason in str(error) and "1008" in str(error)
    assert "disconnected" not in [status.kind for status in recorder.statuses]
    assert server.connections == 1
    assert sim.token not in str(error)


def test_hub_ends_on_an_alltick_401_error_frame_without_reconnecting(alltick_sim):
    recorder = Recorder()
    refusal = '{"ret":401,"msg":"token invalid","trace":"","data":{}}'

    with (
        ScriptedWebSocketServer(send_then_drain(refusal)) as server,
        running_hub(alltick_sim, recorder, ws_url=server.url),
    ):
        recorder.wait_for(lambda: recorder.kinds("fatal"))

    assert isinstance(recorder.kinds("fatal")[0].error, AuthError)
    assert server.connections == 1


@pytest.mark.parametrize(("code", "reason"), [(1001, "going away"), (1008, "connection limit"), (1011, "")])
def test_hub_reconnects_after_a_close_that_is_not_an_auth_refusal(alltick_sim, code, reason):
    recorder = Recorder()

    with (
        ScriptedWebSocketServer(close_with(code, reason)) as server,
        running_hub(alltick_sim, recorder, ws_url=server.url),
    ):
        recorder.wait_for(lambda: len(recorder.kinds("connected")) >= 3)

    assert recorder.kinds("fatal") == []
    assert f"close status {code}" in str(recorder.kinds("disconnected")[0].error)


def test_a_subscriber_after_a_fatal_error_gets_its_own_verdict_not_silence(alltick_sim):
    recorder = Recorder()

    with (
        ScriptedWebSocketServer(close_with(1008, "token invalid")) as server,
        running_hub(alltick_sim, recorder, ws_url=server.url) as hub,
    ):
        recorder.wait_for(lambda: recorder.kinds("fatal"))
        hub.subscribe("ETHUSDT")
        recorder.wait_for(lambda: len(recorder.kinds("fatal")) == 2)

    assert server.connections == 2  # one attempt per new subscriber, no retry loop


def test_hub_stop_returns_at_once_when_the_server_never_answers_the_close(alltick_sim, caplog):
    recorder = Recorder()

    with ScriptedWebSocketServer(send_then_drain()) as server:
        hub = StreamHub(
            "alltick",
            server.url,
            alltick_sim.token,
            plans.get_plan("alltick", "unlimited"),
            on_event=recorder.on_event,
            on_status=recorder.on_status,
        )  # reads time out after 30 s
        hub.subscribe("BTCUSDT")
        hub.start()
        recorder.wait_for(lambda: recorder.kinds("connected"))
        hub.stop()

        assert _hub_threads() == []
    assert "did not stop" not in caplog.text


def test_hub_reads_frames_in_order_however_the_bytes_are_cut(alltick_sim):
    # Many frames in one write, a ping and a fragmented message among them, a frame larger than
    # one socket read, and a frame trickled byte by byte: every trade arrives once, in order.
    from backtrader_alltick.sim import websocket as ws

    def trade(seq: int, pad: str = "") -> str:
        return (
            f'{{"cmd_id":22998,"data":{{"code":"BTCUSDT","seq":{seq},'
            f'"tick_time":{1_700_000_000_000 + seq},"price":"100.5","volume":"1","turnover":"100.5",'
            f'"trade_direction":1{pad}}}}}'
        )

    ponged = threading.Event()

    def script(sock: socket.socket) -> None:
        burst = [ws.text_frame(trade(seq)) for seq in range(2000)]
        burst.insert(700, ws.encode_frame(b"are you there", ws.OP_PING))
        fragmented = trade(2000).encode()
        burst += [
            ws.encode_frame(fragmented[:30], ws.OP_TEXT, fin=False),
            ws.encode_frame(fragmented[30:], ws.OP_CONTINUATION),
        ]
        burst.append(ws.text_frame(trade(2001, ',"pad":"' + "x" * 100_000 + '"')))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(b"".join(burst))
        for byte in ws.text_frame(trade(2002)):
            sock.sendall(bytes([byte]))
        frames = sock.makefile("rb")
        with contextlib.suppress(EOFError, OSError):
            while True:
                _, opcode, payload = ws.read_frame(frames)
                if opcode == ws.OP_PONG and payload == b"are you there":
                    ponged.set()

    recorder = Recorder()
    with ScriptedWebSocketServer(script) as server, running_hub(alltick_sim, recorder, ws_url=server.url):
        recorder.wait_for(lambda: len(recorder.ticks("BTCUSDT")) >= 2003)
        assert ponged.wait(10)

    assert [tick.seq for tick in recorder.ticks("BTCUSDT")] == list(range(2003))
    assert recorder.kinds("malformed") == []
