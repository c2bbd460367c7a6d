"""The alltick dialect's WebSocket, over real loopback sockets, as alltick.md section 5 documents it."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import replace

import pytest
import requests
import websocket

from backtrader_alltick.sim.plan_table import service_plan


def connect(sim, family="quote-b-ws-api", token=None):
    token = sim.token if token is None else token
    return websocket.create_connection(f"{sim.ws_url}/{family}?token={token}", timeout=10)


def command(cmd_id, data, seq_id=123, trace="3baaa938-f92c"):
    return json.dumps({"cmd_id": cmd_id, "seq_id": seq_id, "trace": trace, "data": data})


def subscribe_trades(codes, seq_id=123):
    return command(22004, {"symbol_list": [{"code": code} for code in codes]}, seq_id)


def frames(connection, count):
    return [json.loads(connection.recv()) for _ in range(count)]


def next_push(connection, cmd_id=22998):
    while True:
        message = json.loads(connection.recv())
        if message.get("cmd_id") == cmd_id and "ret" not in message:
            return message


def test_subscribe_is_acked_then_trades_are_pushed_in_documented_shape(alltick_sim):
    connection = connect(alltick_sim)
    connection.send(subscribe_trades(["BTCUSDT", "ETHUSDT"]))

    ack = json.loads(connection.recv())
    push = next_push(connection)
    connection.close()

    assert ack == {
        "ret": 200,
        "msg": "ok",
        "cmd_id": 22005,
        "seq_id": 123,
        "trace": "3baaa938-f92c",
        "data": {},
    }
    assert set(push) == {"cmd_id", "data"}
    data = push["data"]
    assert set(data) == {"code", "seq", "tick_time", "price", "volume", "turnover", "trade_direction"}
    assert data["code"] in ("BTCUSDT", "ETHUSDT")
    assert isinstance(data["seq"], int) and isinstance(data["tick_time"], int) and data["tick_time"] > 10**12
    assert isinstance(data["price"], str) and str(float(data["price"])) == data["price"]


def test_pushed_ticks_aggregate_to_the_rest_klines(make_sim):
    sim = make_sim(dialect="alltick", speed=600)  # ten market minutes per wall second
    connection = connect(sim)
    connection.send(subscribe_trades(["BTCUSDT"]))
    ticks = []
    first_minute = None
    while True:
        data = next_push(connection)["data"]
        minute = data["tick_time"] // 60_000
        first_minute = minute if first_minute is None else first_minute
        if minute >= first_minute + 4:
            break
        ticks.append(data)
    connection.close()
    query = json.dumps(
        {
            "trace": "golden",
            "data": {
                "code": "BTCUSDT",
                "kline_type": 1,
                "kline_timestamp_end": 0,
                "query_kline_num": 10,
                "adjust_type": 0,
            },
        }
    )

    rows = requests.get(
        sim.rest_url + "/quote-b-api/kline", params={"token": sim.token, "query": query}, timeout=10
    ).json()["data"]["kline_list"]

    by_minute = defaultdict(list)
    for tick in ticks:
        by_minute[tick["tick_time"] // 60_000 * 60].append(tick)
    complete = [first_minute * 60 + 60 * step for step in (1, 2, 3)]  # the first minute was joined late
    by_start = {int(row["timestamp"]): row for row in rows}
    for start in complete:
        prices = [float(tick["price"]) for tick in by_minute[start]]
        row = by_start[start]
        assert (
            float(row["open_price"]),
            float(row["high_price"]),
            float(row["low_price"]),
            float(row["close_price"]),
        ) == (prices[0], max(prices), min(prices), prices[-1])
        assert float(row["volume"]) == pytest.approx(sum(float(t["volume"]) for t in by_minute[start]))
    seqs = [tick["seq"] for tick in ticks]
    assert seqs == sorted(set(seqs))


def test_subscribe_replaces_the_previous_list(alltick_sim):
    connection = connect(alltick_sim)
    connection.send(subscribe_trades(["BTCUSDT"], seq_id=1))
    frames(connection, 1)

    connection.send(subscribe_trades(["EURUSD"], seq_id=2))  # the unlimited plan has no 1 s spacing
    while json.loads(connection.recv()).get("cmd_id") != 22005:
        pass
    codes = {next_push(connection)["data"]["code"] for _ in range(5)}
    connection.close()

    assert codes == {"EURUSD"}


def test_unknown_and_other_family_codes_are_ignored_silently(alltick_sim):
    connection = connect(alltick_sim)
    connection.send(subscribe_trades(["NOPE", "AAPL.US", "BTCUSDT"]))

    ack = json.loads(connection.recv())
    codes = {next_push(connection)["data"]["code"] for _ in range(5)}
    connection.close()

    assert ack["ret"] == 200
    assert codes == {"BTCUSDT"}
    assert [s.trade_codes for s in alltick_sim.sessions()] in ([], [["BTCUSDT"]])


def test_depth_subscription_pushes_books_with_the_market_depth(alltick_sim):
    connection = connect(alltick_sim)
    connection.send(
        command(
            22002,
            {"symbol_list": [{"code": "BTCUSDT", "depth_level": 5}, {"code": "EURUSD", "depth_level": 5}]},
        )
    )

    ack = json.loads(connection.recv())
    pushes = {}
    while len(pushes) < 2:
        push = next_push(connection, 22999)
        pushes[push["data"]["code"]] = push["data"]
    connection.close()

    assert ack["cmd_id"] == 22003 and ack["ret"] == 200
    assert len(pushes["BTCUSDT"]["bids"]) == 5 and len(pushes["EURUSD"]["asks"]) == 1
    level = pushes["BTCUSDT"]["bids"][0]
    assert set(level) == {"price", "volume"} and isinstance(level["price"], str)
    assert float(pushes["BTCUSDT"]["bids"][0]["price"]) < float(pushes["BTCUSDT"]["asks"][0]["price"])


def test_heartbeat_is_answered_with_22001(alltick_sim):
    connection = connect(alltick_sim)
    connection.send(command(22000, {}, seq_id=7, trace="hb"))

    answer = json.loads(connection.recv())
    connection.close()

    assert answer == {"ret": 200, "msg": "ok", "cmd_id": 22001, "seq_id": 7, "trace": "hb", "data": {}}


def test_cancel_stops_the_pushes_and_is_acked(alltick_sim):
    connection = connect(alltick_sim)
    connection.send(subscribe_trades(["BTCUSDT"]))
    next_push(connection)

    connection.send(command(22006, {"cancel_type": 0}))
    while json.loads(connection.recv()).get("cmd_id") != 22007:
        pass
    alltick_sim.journal.wait_for(lambda e: e.kind == "ws_message" and e.message["cmd_id"] == 22006)
    connection.close()

    assert [s.trade_codes for s in alltick_sim.sessions()] in ([], [[]])


def test_server_closes_a_socket_without_heartbeats(make_sim):
    sim = make_sim(dialect="alltick", heartbeat_timeout=0.3)
    connection = connect(sim)

    with pytest.raises(websocket.WebSocketConnectionClosedException):
        while True:
            connection.recv()  # the close frame ends recv with an empty message, then the socket
            if not connection.connected:
                connection.recv()

    assert sim.journal.wait_for(lambda e: e.kind == "ws_close")


def test_codes_past_the_plan_cap_are_ignored(make_sim):
    sim = make_sim(
        dialect="alltick",
        plan="free",
        symbols=["BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT", "BNBUSDT", "DOGEUSDT"],
    )
    connection = connect(sim)
    connection.send(subscribe_trades(["BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT", "BNBUSDT", "DOGEUSDT"]))

    frames(connection, 1)
    served = sim.sessions()[0].trade_codes
    connection.close()

    assert served == ["BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT", "BNBUSDT"]


def test_two_requests_within_a_second_get_606_and_a_close(make_sim):
    sim = make_sim(dialect="alltick", plan="basic")
    connection = connect(sim)
    connection.send(subscribe_trades(["BTCUSDT"]))
    connection.send(command(22002, {"symbol_list": [{"code": "BTCUSDT"}]}))

    replies = []
    while True:
        text = connection.recv()
        if not text:
            break
        message = json.loads(text)
        if "ret" in message:
            replies.append((message["cmd_id"], message["ret"]))
    connection.close()

    assert replies == [(22005, 200), (22003, 606)]
    assert sim.counters["errors_sent"]["606"] == 1


def test_connections_over_the_plan_cap_get_606(make_sim):
    sim = make_sim(dialect="alltick", plan="basic")
    first = connect(sim, "quote-b-ws-api")
    other_family = connect(sim, "quote-stock-b-ws-api")  # a stock and a non-stock socket share one allowance
    for admitted in (first, other_family):
        # The server takes a socket's allowance when its session starts, which the upgrade's answer
        # does not wait for: a heartbeat answered shows the session runs, so the next one is the extra.
        admitted.send(command(22000, {}))
        assert json.loads(admitted.recv())["cmd_id"] == 22001

    extra = connect(sim, "quote-b-ws-api")
    refusal = json.loads(extra.recv())
    first.send(command(22000, {}))
    other_family.send(command(22000, {}))

    assert refusal["ret"] == 606
    assert json.loads(first.recv())["cmd_id"] == 22001
    assert json.loads(other_family.recv())["cmd_id"] == 22001
    for connection in (first, other_family, extra):
        connection.close()


def _answered(connection) -> bool:
    # A heartbeat answered shows the session runs (its open was admitted and counted).
    connection.send(command(22000, {}))
    return json.loads(connection.recv())["cmd_id"] == 22001


def test_a_second_socket_of_a_family_sooner_than_the_reconnect_interval_gets_606(make_sim):
    sim = make_sim(dialect="alltick", plan="premium")  # 3 connections, 3 s between attempts
    first = connect(sim, "quote-b-ws-api")
    assert _answered(first)

    too_soon = connect(sim, "quote-b-ws-api")
    refusal = json.loads(too_soon.recv())
    stock = connect(sim, "quote-stock-b-ws-api")  # the other family of the same allowance

    assert refusal["ret"] == 606
    assert _answered(stock) and _answered(first)
    assert sim.counters["ws_connections_rejected"] == 1
    for connection in (first, too_soon, stock):
        connection.close()


def test_requests_on_two_sockets_of_a_family_within_3_s_get_606_and_a_close(make_sim):
    plan = replace(service_plan("alltick", "premium"), reconnect_interval=0.0)
    sim = make_sim(dialect="alltick", plan=plan)
    first, second = connect(sim), connect(sim)
    assert _answered(first) and _answered(second)  # heartbeats are no requests here

    first.send(subscribe_trades(["BTCUSDT"]))
    ack = json.loads(first.recv())
    second.send(subscribe_trades(["ETHUSDT"]))
    replies = []
    while text := second.recv():
        message = json.loads(text)
        if "ret" in message:
            replies.append((message["cmd_id"], message["ret"]))

    assert ack["ret"] == 200
    assert replies == [(22005, 606)]
    first.close()
    second.close()


def test_bad_token_is_refused_at_the_upgrade_with_401(alltick_sim):
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        connect(alltick_sim, token="wrong")

    assert refused.value.status_code == 401
    assert alltick_sim.counters["ws_connections_rejected"] == 1


def test_close_leaves_no_threads_or_open_sockets(make_sim):
    import threading

    before = set(threading.enumerate())
    sim = make_sim(dialect="alltick")
    connection = connect(sim)
    connection.send(subscribe_trades(["BTCUSDT"]))
    next_push(connection)

    sim.close()

    assert set(threading.enumerate()) <= before
    with pytest.raises((websocket.WebSocketConnectionClosedException, ConnectionError, OSError)):
        for _ in range(100_000):
            connection.recv()
            if not connection.connected:
                raise websocket.WebSocketConnectionClosedException("closed")
    connection.close()


@pytest.mark.parametrize(
    "item", [{"code": "BTCUSDT", "depth_level": "x"}, {"code": ["BTCUSDT"]}, {"depth_level": 5}]
)
def test_a_malformed_subscription_entry_gets_ret_400_and_the_socket_stays_up(alltick_sim, item):
    connection = connect(alltick_sim)
    try:
        connection.send(command(22002, {"symbol_list": [item]}))
        answer = json.loads(connection.recv())
        connection.send(command(22000, {}, seq_id=124))
        heartbeat = json.loads(connection.recv())
    finally:
        connection.close()

    assert (answer["cmd_id"], answer["ret"]) == (22003, 400)
    assert (heartbeat["cmd_id"], heartbeat["ret"]) == (22001, 200)
