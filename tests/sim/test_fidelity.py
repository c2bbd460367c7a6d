"""What AllTick's own documentation and sample programs expect of the service, checked on the simulator.

The requests are the documented ones (alltick.md section 9), sent over real loopback HTTP and
WebSocket: the sample codes are served, numbers are written as the docs print them, error frames
carry a numeric ``seq_id``, a wrong method costs no rate budget and unknown paths answer JSON.
"""

from __future__ import annotations

import json
import re

import pytest
import requests
import websocket

from backtrader_alltick.sim import DEFAULT_SYMBOLS

# Plain decimal text: digits, at most one point, no exponent, no sign.
PLAIN = re.compile(r"\d+(\.\d+)?")


def query(data: dict, trace: str = "python_http_test1") -> str:
    return json.dumps({"trace": trace, "data": data})


def rest(sim, path: str, data: dict, method: str = "GET") -> requests.Response:
    return requests.request(
        method, sim.rest_url + path, params={"token": sim.token, "query": query(data)}, timeout=10
    )


def decimals(text: str) -> int:
    return len(text.split(".")[1]) if "." in text else 0


@pytest.mark.parametrize(
    "code",
    [
        "UNH.US",
        "GOOGL.US",
        "857.HK",
        "1288.HK",
        "700.HK",
        "AAPL.US",
        "5.HK",
        "601318.SH",
        "000858.SZ",
        "GBPUSD",
        "USDCNH",
        "SOLUSDT",
        "Silver",
        "USOIL",
    ],
)
def test_the_codes_of_the_official_docs_are_served_by_default(code):
    assert code in DEFAULT_SYMBOLS


def test_the_documented_sample_requests_are_answered(alltick_sim):
    # alltick.md 9.4 (latest trade and depth of 857.HK and UNH.US), 9.3 (batch K-lines of 700.HK, GOOGL.US).
    symbols = {"symbol_list": [{"code": "857.HK"}, {"code": "UNH.US"}]}
    trades = rest(alltick_sim, "/quote-stock-b-api/trade-tick", symbols).json()
    books = rest(alltick_sim, "/quote-stock-b-api/depth-tick", symbols).json()
    batch = {
        "trace": "abc-123",
        "data": {
            "data_list": [
                {
                    "code": code,
                    "kline_type": 1,
                    "kline_timestamp_end": 0,
                    "query_kline_num": 1,
                    "adjust_type": 0,
                }
                for code in ("700.HK", "GOOGL.US")
            ]
        },
    }
    klines = requests.post(
        alltick_sim.rest_url + "/quote-stock-b-api/batch-kline",
        params={"token": alltick_sim.token},
        json=batch,
        timeout=10,
    ).json()

    assert [row["code"] for row in trades["data"]["tick_list"]] == ["857.HK", "UNH.US"]
    assert [row["code"] for row in books["data"]["tick_list"]] == ["857.HK", "UNH.US"]
    assert [group["code"] for group in klines["data"]["kline_list"]] == ["700.HK", "GOOGL.US"]


def test_volumes_and_turnover_are_written_as_the_docs_print_them(alltick_sim):
    specs = alltick_sim.model.specs
    for code, path in (
        ("857.HK", "/quote-stock-b-api"),
        ("BTCUSDT", "/quote-b-api"),
        ("EURUSD", "/quote-b-api"),
    ):
        places = specs[code].price_decimals + specs[code].size_decimals
        klines = rest(
            alltick_sim,
            path + "/kline",
            {
                "code": code,
                "kline_type": 1,
                "kline_timestamp_end": 0,
                "query_kline_num": 100,
                "adjust_type": 0,
            },
        ).json()
        trade = rest(alltick_sim, path + "/trade-tick", {"symbol_list": [{"code": code}]}).json()
        book = rest(alltick_sim, path + "/depth-tick", {"symbol_list": [{"code": code}]}).json()
        rows = klines["data"]["kline_list"] + trade["data"]["tick_list"]
        for row in rows:
            assert PLAIN.fullmatch(row["volume"]) and PLAIN.fullmatch(row["turnover"]), row
            assert decimals(row["turnover"]) <= places
            assert decimals(row["volume"]) <= specs[code].size_decimals
        levels = book["data"]["tick_list"][0]["bids"] + book["data"]["tick_list"][0]["asks"]
        # "volume":"100000.00" in the docs' depth answer: fixed decimals, at least two.
        assert all(re.fullmatch(r"\d+\.\d{2,}", level["volume"]) for level in levels), levels


def test_pushed_volumes_and_turnover_have_no_float_artefacts(make_sim):
    sim = make_sim(dialect="alltick", speed=600)
    connection = websocket.create_connection(f"{sim.ws_url}/quote-b-ws-api?token={sim.token}", timeout=10)
    connection.send(
        json.dumps(
            {
                "cmd_id": 22004,
                "seq_id": 1,
                "trace": "t",
                "data": {"symbol_list": [{"code": "BTCUSDT"}, {"code": "EURUSD"}, {"code": "GOLD"}]},
            }
        )
    )
    connection.send(
        json.dumps(
            {
                "cmd_id": 22002,
                "seq_id": 2,
                "trace": "d",
                "data": {"symbol_list": [{"code": "BTCUSDT", "depth_level": 5}]},
            }
        )
    )
    trades, books = [], []
    while len(trades) < 300 or not books:
        message = json.loads(connection.recv())
        if message.get("cmd_id") == 22998:
            trades.append(message["data"])
        elif message.get("cmd_id") == 22999:
            books.append(message["data"])
    connection.close()

    for data in trades:
        spec = sim.model.specs[data["code"]]
        assert PLAIN.fullmatch(data["volume"]) and PLAIN.fullmatch(data["turnover"]), data
        assert decimals(data["turnover"]) <= spec.price_decimals + spec.size_decimals, data
    assert all(re.fullmatch(r"\d+\.\d{2,}", level["volume"]) for book in books for level in book["bids"])


@pytest.mark.parametrize(
    "frame",
    [
        "not json",
        json.dumps({"cmd_id": 22004, "data": "no list"}),
        json.dumps({"cmd_id": 22999, "data": {}}),
        json.dumps({"cmd_id": 22004, "seq_id": None, "data": {"symbol_list": 1}}),
    ],
)
def test_websocket_error_answers_carry_seq_id_0_when_the_request_had_none(alltick_sim, frame):
    connection = websocket.create_connection(
        f"{alltick_sim.ws_url}/quote-b-ws-api?token={alltick_sim.token}", timeout=10
    )
    connection.send(frame)
    answer = json.loads(connection.recv())
    connection.close()

    assert answer["ret"] == 400 and answer["seq_id"] == 0 and isinstance(answer["trace"], str)


KLINE = {"code": "AAPL.US", "kline_type": 1, "kline_timestamp_end": 0, "query_kline_num": 1, "adjust_type": 0}


def right_request(sim, path: str) -> bool:
    """Send the documented request to ``path``; True when it was served (not rate limited)."""
    if sim.dialect == "itick":
        reply = requests.get(
            sim.rest_url + path,
            params={"region": "US", "code": "AAPL"},
            headers={"token": sim.token},
            timeout=10,
        )
        return reply.status_code == 200 and reply.json()["code"] == 0
    if path.endswith("batch-kline"):
        reply = requests.post(
            sim.rest_url + path,
            params={"token": sim.token},
            json={"trace": "t", "data": {"data_list": [KLINE]}},
            timeout=10,
        )
    elif path.endswith("kline"):
        reply = rest(sim, path, KLINE)
    else:
        reply = rest(sim, path, {"symbol_list": [{"code": "BTCUSDT"}]})
    return reply.json()["ret"] == 200


@pytest.mark.parametrize(
    "dialect, path, method",
    [
        ("alltick", "/quote-stock-b-api/kline", "POST"),
        ("alltick", "/quote-stock-b-api/batch-kline", "GET"),
        ("alltick", "/quote-b-api/trade-tick", "PUT"),
        ("itick", "/stock/tick", "POST"),
    ],
)
def test_a_wrong_method_is_refused_before_it_uses_rate_budget(make_sim, dialect, path, method):
    # Free plans: AllTick allows one call per endpoint every 10 s, iTick 5 calls a minute.
    sim = make_sim(dialect=dialect, plan="free")

    refused = [
        requests.request(
            method,
            sim.rest_url + path,
            params={"token": sim.token, "query": "{}"},
            headers={"token": sim.token},
            timeout=10,
        )
        for _ in range(6)
    ]

    assert [reply.status_code for reply in refused] == [405] * 6
    assert all(
        reply.headers["Content-Type"] == "application/json" and reply.json()["msg"] for reply in refused
    )
    assert all(reply.headers["Allow"] == ("GET" if method != "GET" else "POST") for reply in refused)
    assert sim.counters["errors_sent"] == {"405": 6}  # no 605 / 429: nothing counted against the plan
    assert right_request(sim, path)  # the budget is untouched


@pytest.mark.parametrize(
    "dialect, shape", [("alltick", {"ret", "msg", "trace", "data"}), ("itick", {"code", "msg", "data"})]
)
def test_unknown_paths_answer_in_the_services_own_shape(make_sim, dialect, shape):
    sim = make_sim(dialect=dialect)

    replies = [
        requests.get(sim.rest_url + "/no/such/path", params={"token": sim.token}, timeout=10),
        requests.get(sim.rest_url + "/", timeout=10),
    ]

    for reply in replies:
        assert reply.status_code == 404 and reply.headers["Content-Type"] == "application/json"
        assert set(reply.json()) == shape
