"""The alltick dialect's REST endpoints, over real loopback HTTP, as alltick.md documents them."""

from __future__ import annotations

import json

import pytest
import requests

from backtrader_alltick.markets import DAY_MS
from backtrader_alltick.sim import DEFAULT_START_MS


def kline_query(code="AAPL.US", kline_type=1, num=2, end=0, trace="3baaa938-f92c"):
    return json.dumps(
        {
            "trace": trace,
            "data": {
                "code": code,
                "kline_type": kline_type,
                "kline_timestamp_end": end,
                "query_kline_num": num,
                "adjust_type": 0,
            },
        }
    )


def get(sim, path, query, token=None):
    params = {"token": sim.token if token is None else token, "query": query}
    return requests.get(sim.rest_url + path, params=params, timeout=10)


def test_kline_documented_request_returns_documented_shape(alltick_sim):
    reply = get(alltick_sim, "/quote-stock-b-api/kline", kline_query(trace="python_http_test1"))

    body = reply.json()
    assert reply.status_code == 200
    assert (body["ret"], body["msg"], body["trace"]) == (200, "ok", "python_http_test1")
    assert body["data"]["code"] == "AAPL.US" and body["data"]["kline_type"] == 1
    rows = body["data"]["kline_list"]
    assert len(rows) == 2
    for row in rows:
        assert set(row) == {
            "timestamp",
            "open_price",
            "close_price",
            "high_price",
            "low_price",
            "volume",
            "turnover",
        }
        assert all(isinstance(value, str) for value in row.values())
        assert len(row["timestamp"]) == 10
        assert float(row["low_price"]) <= float(row["open_price"]) <= float(row["high_price"])
    assert int(rows[1]["timestamp"]) - int(rows[0]["timestamp"]) == 60


def test_kline_rows_equal_ground_truth_and_include_forming_bar(make_sim):
    alltick_sim = make_sim(dialect="alltick", start=DEFAULT_START_MS + 150_000)  # mid-bar
    reply = get(alltick_sim, "/quote-b-api/kline", kline_query("BTCUSDT", kline_type=2, num=20))
    now = alltick_sim.clock.now_ms()

    rows = reply.json()["data"]["kline_list"]
    starts = [int(row["timestamp"]) * 1000 for row in rows]
    truth = alltick_sim.klines("BTCUSDT", "5m", starts[0], starts[-1])
    assert starts == sorted(starts) and len(set(starts)) == 20
    assert [bar.start for bar in truth] == starts[:-1]
    for row, bar in zip(rows, truth):
        assert (
            float(row["open_price"]),
            float(row["high_price"]),
            float(row["low_price"]),
            float(row["close_price"]),
        ) == (bar.open, bar.high, bar.low, bar.close)
        assert float(row["volume"]) == pytest.approx(bar.volume)
    assert starts[-1] <= now < starts[-1] + 300_000  # the newest bar is still forming


def test_kline_prices_round_trip_through_str(alltick_sim):
    body = get(alltick_sim, "/quote-b-api/kline", kline_query("EURUSD", num=50)).json()

    rows = body["data"]["kline_list"]

    for row in rows:
        for name in ("open_price", "close_price", "high_price", "low_price"):
            assert str(float(row[name])) == row[name]


def test_kline_count_is_capped_at_500(alltick_sim):
    body = get(alltick_sim, "/quote-b-api/kline", kline_query("BTCUSDT", num=2000)).json()

    assert len(body["data"]["kline_list"]) == 500


@pytest.mark.parametrize("unit", [1, 1000])
def test_kline_pages_backwards_for_crypto_in_seconds_or_ms(alltick_sim, unit):
    first = get(alltick_sim, "/quote-b-api/kline", kline_query("BTCUSDT", num=10)).json()
    oldest = int(first["data"]["kline_list"][0]["timestamp"])

    second = get(alltick_sim, "/quote-b-api/kline", kline_query("BTCUSDT", num=10, end=oldest * unit))

    rows = second.json()["data"]["kline_list"]
    assert int(rows[-1]["timestamp"]) == oldest  # inclusive end: clients drop the duplicate
    assert int(rows[0]["timestamp"]) == oldest - 9 * 60


def test_kline_end_is_ignored_for_stocks(alltick_sim):
    newest = get(alltick_sim, "/quote-stock-b-api/kline", kline_query(num=1)).json()["data"]["kline_list"]
    old_end = alltick_sim.clock.now_ms() // 1000 - 86_400

    rows = get(alltick_sim, "/quote-stock-b-api/kline", kline_query(num=1, end=old_end)).json()["data"]

    assert rows["kline_list"][0]["timestamp"] >= newest[0]["timestamp"]


def test_daily_stock_klines_skip_weekends(alltick_sim):
    rows = get(alltick_sim, "/quote-stock-b-api/kline", kline_query(kline_type=8, num=10)).json()
    starts = [int(row["timestamp"]) * 1000 for row in rows["data"]["kline_list"]]

    assert len(starts) == 10
    assert all(later - earlier in (DAY_MS, 3 * DAY_MS) for earlier, later in zip(starts, starts[1:]))


@pytest.mark.parametrize(
    ("path", "code", "ret"),
    [
        ("/quote-b-api/kline", "AAPL.US", 600),  # a stock code on the non-stock family
        ("/quote-stock-b-api/kline", "EURUSD", 600),
        ("/quote-stock-b-api/kline", "NOPE.US", 600),
        ("/quote-stock-b-api/kline", "aapl.US", 600),  # codes are case-sensitive
    ],
)
def test_kline_wrong_family_or_unknown_code_is_ret_600(alltick_sim, path, code, ret):
    body = get(alltick_sim, path, kline_query(code)).json()

    assert (body["ret"], body["msg"]) == (ret, "code invalid")


def test_kline_types_6_and_7_are_refused_for_stocks(alltick_sim):
    assert get(alltick_sim, "/quote-stock-b-api/kline", kline_query(kline_type=6)).json()["ret"] == 400


@pytest.mark.parametrize(
    ("query", "ret"),
    [
        ("%7Bnot json", 402),
        (json.dumps({"data": {}}), 400),  # no trace
        (json.dumps({"trace": "t", "data": {"code": "AAPL.US"}}), 400),  # fields missing
    ],
)
def test_malformed_queries_get_the_documented_codes(alltick_sim, query, ret):
    assert get(alltick_sim, "/quote-stock-b-api/kline", query).json()["ret"] == ret


def test_missing_and_wrong_tokens_are_ret_401(alltick_sim):
    url = alltick_sim.rest_url + "/quote-stock-b-api/kline"

    missing = requests.get(url, params={"query": kline_query()}, timeout=10).json()
    wrong = get(alltick_sim, "/quote-stock-b-api/kline", kline_query(), token="not-the-token").json()

    assert (missing["ret"], missing["msg"]) == (401, "token is required")
    assert (wrong["ret"], wrong["msg"]) == (401, "token invalid")


def test_denied_symbol_is_ret_604(alltick_sim):
    alltick_sim.denied_symbols.add("TSLA.US")

    assert get(alltick_sim, "/quote-stock-b-api/kline", kline_query("TSLA.US")).json()["ret"] == 604


def test_trade_tick_and_depth_tick_answer_every_code(make_sim):
    alltick_sim = make_sim(dialect="alltick", speed=0.001)  # no trade between the two requests
    codes = [{"code": "AAPL.US"}, {"code": "700.HK"}]
    query = json.dumps({"trace": "edd5df80", "data": {"symbol_list": codes}})

    trades = get(alltick_sim, "/quote-stock-b-api/trade-tick", query).json()["data"]["tick_list"]
    books = get(alltick_sim, "/quote-stock-b-api/depth-tick", query).json()["data"]["tick_list"]

    assert [row["code"] for row in trades] == ["AAPL.US", "700.HK"]
    assert isinstance(trades[0]["seq"], str) and len(trades[0]["tick_time"]) == 13
    assert isinstance(trades[0]["trade_direction"], int)
    assert trades[0]["tick_time"] <= str(alltick_sim.clock.now_ms())
    assert len(books[0]["bids"]) == 1 and len(books[1]["bids"]) == 10  # US 1 level, HK 10
    best_bid, best_ask = float(books[0]["bids"][0]["price"]), float(books[0]["asks"][0]["price"])
    assert best_bid <= float(trades[0]["price"]) <= best_ask


def test_trade_tick_drops_codes_past_the_plan_cap(make_sim):
    sim = make_sim(dialect="alltick", plan="free")
    names = ("AAPL.US", "TSLA.US", "700.HK", "9988.HK", "600519.SH", "000001.SZ")
    codes = [{"code": code} for code in names]

    query = json.dumps({"trace": "t", "data": {"symbol_list": codes}})

    body = get(sim, "/quote-stock-b-api/trade-tick", query)

    assert len(body.json()["data"]["tick_list"]) == 5


def test_static_info_serves_stocks_only(alltick_sim):
    query = json.dumps({"trace": "s", "data": {"symbol_list": [{"code": "700.HK"}]}})

    info = get(alltick_sim, "/quote-stock-b-api/static_info", query).json()["data"]["static_info_list"]
    other = requests.get(
        alltick_sim.rest_url + "/quote-b-api/static_info",
        params={"token": alltick_sim.token, "query": query},
        timeout=10,
    )

    assert info[0]["symbol"] == "700.HK" and info[0]["currency"] == "HKD"
    assert all(isinstance(value, str) for value in info[0].values())
    assert other.status_code == 404


def test_batch_kline_returns_at_most_two_bars_per_group(alltick_sim):
    body = {
        "trace": "py_http_test1",
        "data": {
            "data_list": [
                {
                    "code": "AAPL.US",
                    "kline_type": 1,
                    "kline_timestamp_end": 0,
                    "query_kline_num": 5,
                    "adjust_type": 0,
                },
                {
                    "code": "TSLA.US",
                    "kline_type": 8,
                    "kline_timestamp_end": 0,
                    "query_kline_num": 1,
                    "adjust_type": 0,
                },
            ]
        },
    }

    reply = requests.post(
        alltick_sim.rest_url + "/quote-stock-b-api/batch-kline",
        params={"token": alltick_sim.token},
        json=body,
        timeout=10,
    ).json()

    groups = reply["data"]["kline_list"]
    assert reply["trace"] == "py_http_test1"
    assert [(g["code"], g["kline_type"], len(g["kline_data"])) for g in groups] == [
        ("AAPL.US", 1, 2),
        ("TSLA.US", 8, 1),
    ]


def test_batch_kline_empty_body_is_601_and_too_many_groups_603(make_sim):
    sim = make_sim(dialect="alltick", plan="free")
    url = sim.rest_url + "/quote-stock-b-api/batch-kline"
    item = {
        "code": "AAPL.US",
        "kline_type": 1,
        "kline_timestamp_end": 0,
        "query_kline_num": 1,
        "adjust_type": 0,
    }

    sim.add_token("second-token")  # Free allows one batch call per 10 s per token

    empty = requests.post(url, params={"token": sim.token}, data=b"", timeout=10).json()
    many = requests.post(
        url,
        params={"token": "second-token"},
        timeout=10,
        json={"trace": "t", "data": {"data_list": [item] * 6}},
    ).json()

    assert empty["ret"] == 601
    assert many["ret"] == 603


def test_requests_are_counted_and_journaled_without_the_token(alltick_sim):
    get(alltick_sim, "/quote-stock-b-api/kline", kline_query())

    entry = alltick_sim.journal.wait_for(lambda e: e.kind == "rest", timeout=5)
    counters = alltick_sim.counters
    assert counters["rest_requests"] == 1
    assert counters["rest_requests_by_path"] == {"/quote-stock-b-api/kline": 1}
    assert "token" not in entry.params and json.loads(entry.params["query"])["data"]["code"] == "AAPL.US"
