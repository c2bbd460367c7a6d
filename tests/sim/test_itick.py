"""The itick dialect (REST and WebSocket) over real loopback sockets, as itick.md documents it."""

from __future__ import annotations

import json
from collections import defaultdict

import pytest
import requests
import websocket


def get(sim, path, token=None, **params):
    headers = {"accept": "application/json", "token": sim.token if token is None else token}
    return requests.get(sim.rest_url + path, params=params, headers=headers, timeout=10)


def connect(sim, path="/stock", token=None, **options):
    headers = {"token": sim.token if token is None else token}
    connection = websocket.create_connection(sim.ws_url + path, header=headers, timeout=10, **options)
    return connection


def next_data(connection, kind):
    while True:
        message = json.loads(connection.recv())
        if "data" in message and isinstance(message["data"], dict) and message["data"].get("type") == kind:
            return message["data"]


# -- REST -------------------------------------------------------------------------------


def test_stock_tick_documented_shape(itick_sim):
    body = get(itick_sim, "/stock/tick", region="US", code="AAPL").json()

    assert (body["code"], body["msg"]) == (0, None)
    assert set(body["data"]) == {"s", "ld", "t", "v", "te"}
    assert body["data"]["s"] == "AAPL" and isinstance(body["data"]["ld"], float)
    assert len(str(body["data"]["t"])) == 13


def test_quote_and_depth_documented_shapes(itick_sim):
    quote = get(itick_sim, "/stock/quote", region="US", code="AAPL").json()["data"]
    depth = get(itick_sim, "/stock/depth", region="HK", code="700").json()["data"]
    forex = get(itick_sim, "/forex/quote", region="GB", code="EURUSD").json()["data"]

    assert {"s", "ld", "o", "h", "l", "t", "v", "tu", "ts", "p", "ch", "chp"} <= set(quote)
    assert quote["l"] <= quote["ld"] <= quote["h"]
    assert depth["s"] == "700" and len(depth["a"]) == 10 and depth["a"][0]["po"] == 1
    assert set(depth["b"][0]) == {"po", "p", "v", "o"}
    assert "p" not in forex and {"ch", "chp"} <= set(forex)


def test_kline_latest_bars_ascending_in_ms(itick_sim):
    bars = get(itick_sim, "/stock/kline", region="US", code="AAPL", kType=1, limit=50).json()["data"]

    assert len(bars) == 50
    assert [set(bar) for bar in bars[:1]] == [{"tu", "c", "t", "v", "h", "l", "o"}]
    times = [bar["t"] for bar in bars]
    assert times == sorted(times) and all(t % 60_000 == 0 for t in times)


def test_kline_ktype_3_is_15_minutes_and_et_pages_back(itick_sim):
    first = get(itick_sim, "/crypto/kline", region="BA", code="BTCUSDT", kType=3, limit=4).json()["data"]
    older = get(
        itick_sim, "/crypto/kline", region="BA", code="BTCUSDT", kType=3, limit=4, et=first[0]["t"] - 1
    ).json()["data"]

    assert [b["t"] - a["t"] for a, b in zip(first, first[1:])] == [900_000] * 3
    assert older[-1]["t"] == first[0]["t"] - 900_000


def test_kline_equals_ground_truth(itick_sim):
    bars = get(itick_sim, "/forex/kline", region="GB", code="EURUSD", kType=2, limit=10).json()["data"]
    truth = itick_sim.klines("EURUSD", "5m", bars[0]["t"], bars[-1]["t"])

    assert [(b.start, b.open, b.high, b.low, b.close) for b in truth] == [
        (bar["t"], bar["o"], bar["h"], bar["l"], bar["c"]) for bar in bars[:-1]
    ]


def test_batch_forms_return_maps_keyed_by_code(itick_sim):
    klines = get(
        itick_sim, "/crypto/klines", region="BA", codes="BTCUSDT,ETHUSDT,NOPEUSDT", kType=2, limit=3
    ).json()["data"]
    quotes = get(itick_sim, "/stock/quotes", region="HK", codes="700,9988").json()["data"]

    assert set(klines) == {"BTCUSDT", "ETHUSDT"} and len(klines["BTCUSDT"]) == 3
    assert set(quotes) == {"700", "9988"} and quotes["700"]["s"] == "700"


def test_unknown_symbol_is_e001(itick_sim):
    body = get(itick_sim, "/stock/tick", region="US", code="NOPE").json()

    assert body == {"code": "E001", "msg": "not found this produce", "data": None}


def test_bad_token_is_http_401(itick_sim):
    reply = get(itick_sim, "/stock/tick", token="wrong", region="US", code="AAPL")

    assert reply.status_code == 401 and reply.json()["code"] == "E002"


def test_free_plan_allows_five_requests_a_minute_then_429(make_sim):
    sim = make_sim(dialect="itick", plan="free")

    statuses = [get(sim, "/stock/tick", region="US", code="AAPL").status_code for _ in range(6)]
    refused = get(sim, "/stock/tick", region="US", code="AAPL")

    assert statuses == [200] * 5 + [429]
    assert 0 < int(refused.headers["Retry-After"]) <= 60


# -- WebSocket ------------------------------------------------------------------------


def test_connect_sends_greeting_then_auth_result(itick_sim):
    connection = connect(itick_sim)

    greeting, auth = json.loads(connection.recv()), json.loads(connection.recv())
    connection.close()

    assert greeting == {"code": 1, "msg": "Connected Successfully"}
    assert auth == {"code": 1, "resAc": "auth", "msg": "authenticated"}


def test_auth_failure_is_reported_then_the_socket_closes(itick_sim):
    connection = connect(itick_sim, token="wrong")

    connection.recv()
    auth = json.loads(connection.recv())

    assert auth == {"code": 0, "resAc": "auth", "msg": "auth failed"}
    with pytest.raises(websocket.WebSocketConnectionClosedException):
        while True:
            connection.recv()
            if not connection.connected:
                connection.recv()


@pytest.mark.parametrize("path", ["/sws", "/stock"])
def test_query_token_and_legacy_auth_message_are_accepted(itick_sim, path):
    by_query = websocket.create_connection(f"{itick_sim.ws_url}{path}?token={itick_sim.token}", timeout=10)
    legacy = websocket.create_connection(itick_sim.ws_url + path, timeout=10)
    legacy.recv()
    legacy.send(json.dumps({"ac": "auth", "params": itick_sim.token}))

    assert json.loads(by_query.recv()) == {"code": 1, "msg": "Connected Successfully"}
    assert json.loads(by_query.recv())["msg"] == "authenticated"
    assert json.loads(legacy.recv())["msg"] == "authenticated"
    by_query.close()
    legacy.close()


def test_subscribe_acks_then_pushes_every_type(itick_sim):
    connection = connect(itick_sim)
    connection.recv(), connection.recv()
    connection.send(json.dumps({"ac": "subscribe", "params": "AAPL$US,TSLA$US", "types": "tick,quote,depth"}))

    ack = json.loads(connection.recv())
    tick, quote = next_data(connection, "tick"), next_data(connection, "quote")
    depth = next_data(connection, "depth")
    connection.close()

    assert ack == {"code": 1, "resAc": "subscribe", "msg": "subscribe Successfully"}
    assert tick["s"] in ("AAPL", "TSLA") and tick["r"] == "US" and {"ld", "v", "t"} <= set(tick)
    assert {"ld", "o", "h", "l", "v", "tu"} <= set(quote)
    assert depth["s"] in ("AAPL$US", "TSLA$US") and depth["a"][0]["po"] == 1


def test_ping_is_echoed_as_pong(itick_sim):
    connection = connect(itick_sim)
    connection.recv(), connection.recv()

    connection.send(json.dumps({"ac": "ping", "params": "1731688569840"}))

    assert json.loads(connection.recv()) == {"resAc": "pong", "data": {"params": "1731688569840"}}
    connection.close()


def test_subscriptions_are_cumulative_and_other_asset_codes_ignored(itick_sim):
    connection = connect(itick_sim, "/crypto")
    connection.recv(), connection.recv()

    acks = []
    for params in ("BTCUSDT$BA", "ETHUSDT$BA", "EURUSD$GB"):  # EURUSD belongs on /forex
        connection.send(json.dumps({"ac": "subscribe", "params": params, "types": "tick"}))
        acks.append(json.loads(connection.recv())["code"])
    itick_sim.journal.wait_for(lambda e: e.kind == "ws_message" and e.message.get("params") == "EURUSD$GB")
    subscribed = set(itick_sim.sessions()[0].subscriptions)
    connection.close()

    assert acks == [1, 1, 1]
    assert subscribed == {"BTCUSDT", "ETHUSDT"}


def test_subscription_over_the_plan_is_refused(make_sim):
    sim = make_sim(dialect="itick", plan="free", symbols=["BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT"])
    connection = connect(sim, "/crypto")
    connection.recv(), connection.recv()

    connection.send(
        json.dumps(
            {"ac": "subscribe", "params": "BTCUSDT$BA,ETHUSDT$BA,SOLUSDT$BA,XRPUSDT$BA", "types": "tick"}
        )
    )

    assert json.loads(connection.recv()) == {
        "code": 0,
        "resAc": "subscribe",
        "msg": "exceeding the maximum subscription limit",
    }
    connection.close()


def test_connections_over_the_plan_are_refused_with_429(make_sim):
    sim = make_sim(dialect="itick", plan="free")
    first = connect(sim)
    first.recv(), first.recv()

    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        connect(sim, "/crypto")

    assert refused.value.status_code == 429
    first.close()


def test_pushed_ticks_aggregate_to_the_rest_klines(make_sim):
    sim = make_sim(dialect="itick", speed=600)
    connection = connect(sim, "/crypto", skip_utf8_validation=True)
    connection.recv(), connection.recv()
    connection.send(json.dumps({"ac": "subscribe", "params": "ETHUSDT$BA", "types": "tick"}))
    ticks, first_minute = [], None
    while True:
        tick = next_data(connection, "tick")
        minute = tick["t"] // 60_000
        first_minute = minute if first_minute is None else first_minute
        if minute >= first_minute + 3:
            break
        ticks.append(tick)
    connection.close()

    bars = get(sim, "/crypto/kline", region="BA", code="ETHUSDT", kType=1, limit=10).json()["data"]

    by_minute = defaultdict(list)
    for tick in ticks:
        by_minute[tick["t"] // 60_000 * 60_000].append(tick)
    by_start = {bar["t"]: bar for bar in bars}
    for start in ((first_minute + 1) * 60_000, (first_minute + 2) * 60_000):
        prices = [tick["ld"] for tick in by_minute[start]]
        bar = by_start[start]
        assert (bar["o"], bar["h"], bar["l"], bar["c"]) == (prices[0], max(prices), min(prices), prices[-1])
        assert bar["v"] == pytest.approx(sum(tick["v"] for tick in by_minute[start]))
