"""AllTick dialect: requests and parsers against the documented payloads of protocol/alltick.md."""

import json
from datetime import datetime, timezone
from urllib.parse import parse_qs, urlsplit

import pytest

from backtrader_alltick.errors import (
    APIError,
    AuthError,
    ConfigError,
    PlanLimitError,
    ProtocolError,
    RateLimited,
    SymbolNotFound,
    UnsupportedTimeframe,
    is_retryable,
)
from backtrader_alltick.records import Depth, Kline, Tick
from backtrader_alltick.symbols import parse_symbol
from backtrader_alltick.wire import Ack, Pong, ServerError
from backtrader_alltick.wire import alltick as wire

HK857 = parse_symbol("857.HK")
MAR3_0740 = 1677829200_000  # 2023-03-03 07:40 UTC, the first bar of the documented example


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp() * 1000)


def query_of(request):
    return json.loads(request.params["query"])


def kline_row(seconds, close, stamp=str):
    return {
        "timestamp": stamp(seconds),
        "open_price": stamp(1.0),
        "close_price": stamp(close),
        "high_price": stamp(2.0),
        "low_price": stamp(0.5),
        "volume": stamp(10),
        "turnover": stamp(20),
    }


def kline_response(rows):
    return {
        "ret": 200,
        "msg": "ok",
        "trace": "t",
        "data": {"code": "BTCUSDT", "kline_type": 1, "kline_list": rows},
    }


# -- routing ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("symbol", "family", "code"),
    [
        ("AAPL.US", "stock", "AAPL.US"),
        ("0700.HK", "stock", "700.HK"),
        ("600519.SH", "stock", "600519.SH"),
        ("EURUSD", "other", "EURUSD"),
        ("BTCUSDT$BA", "other", "BTCUSDT"),
        ("GOLD", "other", "GOLD"),
        ("XAUUSD", "other", "GOLD"),
        ("XAGUSD", "other", "Silver"),
        ("US500", "other", "US500"),
    ],
)
def test_family_and_wire_code_follow_the_product_list(symbol, family, code):
    assert (wire.family(symbol), wire.wire_code(symbol)) == (family, code)


def test_native_periods_exclude_2h_and_4h_for_stocks_only():
    assert wire.native_periods("AAPL.US") == ("1m", "5m", "15m", "30m", "1h", "1d", "1w", "1M")
    assert wire.native_periods("BTCUSDT") == ("1m", "5m", "15m", "30m", "1h", "2h", "4h", "1d", "1w", "1M")


def test_can_page_back_only_for_non_stock_codes():
    symbols = ("AAPL.US", "EURUSD", "GOLD", "BTCUSDT")

    assert [wire.can_page_back(s) for s in symbols] == [False, True, True, True]


# -- REST requests ----------------------------------------------------------------------------------


def test_kline_request_reproduces_the_documented_query(payload):
    expected = payload("alltick", "rest_kline_request.json")

    request = wire.kline_request(HK857, "1m", 2, trace=expected["trace"])

    assert (request.method, request.path, request.endpoint) == ("GET", "/quote-stock-b-api/kline", "kline")
    assert query_of(request) == expected
    assert request.body is None and request.headers == {}


def test_kline_request_query_is_compact_json_like_the_go_example(text):
    request = wire.kline_request("AAPL.US", "1m", 10, trace="1111111111111111111111111")

    assert request.params["query"] == text("alltick", "rest_kline_query_go.json").strip()


def test_kline_request_matches_the_encoded_python_example_url(text):
    url = urlsplit(text("alltick", "rest_kline_url.txt").strip())
    documented = parse_qs(url.query)

    request = wire.authorize(wire.kline_request("700.HK", "1m", 2, trace="python_http_test1"), "testtoken")

    assert url.path == request.path
    assert request.params["token"] == documented["token"][0]
    assert query_of(request) == json.loads(documented["query"][0])


def test_kline_request_for_forex_sends_end_time_in_seconds_on_the_other_family():
    request = wire.kline_request("EURUSD", "4h", 500, end_ms=1_700_000_000_999)

    assert request.path == "/quote-b-api/kline"
    assert query_of(request)["data"] == {
        "code": "EURUSD",
        "kline_type": 7,
        "kline_timestamp_end": 1_700_000_000,
        "query_kline_num": 500,
        "adjust_type": 0,
    }


def test_kline_request_default_trace_is_deterministic_short_and_distinct():
    first = query_of(wire.kline_request("BTCUSDT", "1m", 500))["trace"]
    again = query_of(wire.kline_request("BTCUSDT", "1m", 500))["trace"]
    other = query_of(wire.kline_request("BTCUSDT", "1m", 500, end_ms=1_700_000_000_000))["trace"]

    assert first == again != other
    assert len(first) <= 64 and len(other) <= 64


def test_kline_request_end_time_for_a_stock_names_the_fix():
    with pytest.raises(ConfigError) as info:
        wire.kline_request("AAPL.US", "1m", 500, end_ms=1_700_000_000_000)

    assert str(info.value) == (
        "end_ms cannot be used for AAPL.US: AllTick serves only the newest 500 bars "
        "of stock codes; pass end_ms=None, was 1700000000000"
    )


@pytest.mark.parametrize("count", [0, 501, 2.5])
def test_kline_request_count_outside_the_limit_is_rejected(count):
    with pytest.raises(ConfigError, match=f"count must be an integer from 1 to 500, was {count!r}"):
        wire.kline_request("EURUSD", "1m", count)


def test_kline_request_4h_for_a_stock_lists_what_works():
    with pytest.raises(UnsupportedTimeframe) as info:
        wire.kline_request("AAPL.US", "4h", 10)

    assert info.value.supported == wire.native_periods("AAPL.US")


def test_batch_kline_request_reproduces_the_documented_body(payload):
    expected = payload("alltick", "rest_batch_kline_request.json")

    request = wire.batch_kline_request([("700.HK", "1m", 1), ("GOOGL.US", "1m", 1)], trace="py_http_test1")

    assert (request.method, request.path, request.endpoint) == (
        "POST",
        "/quote-stock-b-api/batch-kline",
        "batch-kline",
    )
    assert json.loads(request.body) == expected
    assert request.headers == {"Content-Type": "application/json"}


def test_batch_kline_request_matches_the_playground_example_byte_for_byte(text):
    request = wire.batch_kline_request([("BTCUSDT", "1m", 2), ("ETHUSDT", "1d", 2)], trace="abc-123")

    assert request.path == "/quote-b-api/batch-kline"
    assert request.body.decode() == text("alltick", "rest_batch_kline_query_playground.json").strip()


def test_batch_kline_request_more_than_two_bars_is_rejected():
    with pytest.raises(ConfigError, match="count must be an integer from 1 to 2, was 3"):
        wire.batch_kline_request([("BTCUSDT", "1m", 3)])


@pytest.mark.parametrize(
    ("build", "endpoint"), [(wire.trades_request, "trade-tick"), (wire.depth_request, "depth-tick")]
)
def test_latest_requests_list_every_code(build, endpoint):
    request = build(["857.HK", "UNH.US"])

    assert (request.path, request.endpoint) == (f"/quote-stock-b-api/{endpoint}", endpoint)
    assert query_of(request)["data"] == {"symbol_list": [{"code": "857.HK"}, {"code": "UNH.US"}]}


def test_latest_request_mixing_families_is_rejected_and_request_groups_splits_them():
    with pytest.raises(ConfigError, match="one AllTick request serves one endpoint family"):
        wire.trades_request(["AAPL.US", "EURUSD"])

    groups = wire.request_groups(["AAPL.US", "EURUSD", "700.HK", "BTCUSDT"])

    assert [[i.symbol for i in g] for g in groups] == [["AAPL.US", "700.HK"], ["EURUSD", "BTCUSDT"]]


def test_authorize_puts_the_token_in_the_query_and_leaves_the_original_alone():
    request = wire.trades_request(["AAPL.US"])

    signed = wire.authorize(request, "secret-token")

    assert signed.params["token"] == "secret-token"
    assert "token" not in request.params and signed.params["query"] == request.params["query"]


# -- REST responses ---------------------------------------------------------------------------------


def test_parse_klines_reads_the_documented_response(payload):
    bars = wire.parse_klines(200, payload("alltick", "rest_kline.json"), HK857, "1m")

    assert bars == [
        Kline("857.HK", "1m", MAR3_0740, MAR3_0740 + 60_000, 136.421, 136.422, 136.407, 136.412, 0.0, 0.0),
        Kline(
            "857.HK",
            "1m",
            MAR3_0740 + 60_000,
            MAR3_0740 + 120_000,
            136.412,
            136.415,
            136.397,
            136.401,
            0.0,
            0.0,
        ),
    ]


def test_parse_klines_accepts_numbers_milliseconds_any_order_and_keeps_the_last_duplicate():
    strings = [kline_row(1_700_000_000, 1.0), kline_row(1_700_000_060, 1.1)]
    raw = lambda value: value  # noqa: E731 - numbers as the JSON carries them
    odd = [
        kline_row(1_700_000_060_000, 1.9, raw),
        kline_row(1_700_000_000_000, 1.0, raw),
        kline_row(1_700_000_060_000, 1.1, raw),
    ]

    expected = wire.parse_klines(200, kline_response(strings), "BTCUSDT", "1m")
    got = wire.parse_klines(200, kline_response(odd), "BTCUSDT", "1m")

    assert got == expected
    assert [bar.close for bar in got] == [1.0, 1.1]


def test_parse_klines_keeps_the_newest_bar_even_when_it_may_be_forming():
    rows = [kline_row(1_700_000_000 + 60 * i, 1.0 + i / 2) for i in range(3)]

    bars = wire.parse_klines(200, kline_response(rows), "BTCUSDT", "1m")

    assert len(bars) == 3 and bars[-1].start == 1_700_000_120_000


def test_parse_klines_stamps_daily_stock_bars_at_the_session_close():
    day = ms("2023-11-14 05:00:00")  # local midnight in New York
    response = kline_response([kline_row(day // 1000, 1.0)])

    bar = wire.parse_klines(200, response, "AAPL.US", "1d")[0]

    assert (bar.start, bar.end) == (day, ms("2023-11-14 21:00:00"))


@pytest.mark.parametrize(
    "data", [None, {}, {"code": "BTCUSDT", "kline_list": []}, {"code": "BTCUSDT", "kline_list": None}]
)
def test_parse_klines_without_bars_is_an_empty_list(data):
    assert wire.parse_klines(200, {"ret": 200, "msg": "ok", "data": data}, "BTCUSDT", "1m") == []


def test_parse_klines_reads_its_group_from_a_batch_response(payload):
    response = payload("alltick", "rest_batch_kline.json")

    bars = wire.parse_klines(200, response, "GOOGL.US", "1m")
    both = wire.parse_batch_klines(200, response, [("700.HK", "1m"), ("GOOGL.US", "1m")])

    assert [(b.symbol, b.start, b.close) for b in bars] == [("GOOGL.US", MAR3_0740, 136.412)]
    assert set(both) == {("700.HK", "1m"), ("GOOGL.US", "1m")}
    assert both[("700.HK", "1m")][0].symbol == "700.HK"


def test_parse_trades_reads_the_documented_response(payload):
    ticks = wire.parse_trades(200, payload("alltick", "rest_trade_tick.json"))

    assert ticks == [Tick("857.HK", 1677831545217, 136.302, 0.0, 0.0, seq=30841439, direction=0)]


def test_parse_depth_reads_the_documented_response(payload):
    books = wire.parse_depth(200, payload("alltick", "rest_depth_tick.json"))

    assert books == [Depth("857.HK", 1677830357227, ((136.424, 100000.0),), ((136.427, 400000.0),))]


def test_parse_klines_row_without_a_price_is_a_protocol_error():
    row = kline_row(1_700_000_000, 1.0)
    del row["close_price"]

    with pytest.raises(ProtocolError, match="malformed K-line for BTCUSDT"):
        wire.parse_klines(200, kline_response([row]), "BTCUSDT", "1m")


# -- REST errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "ret", "kind"),
    [
        (200, 400, APIError),
        (200, 201, APIError),
        (200, 202, APIError),
        (200, 402, APIError),
        (200, 401, AuthError),
        (401, 401, AuthError),
        (200, 429, RateLimited),
        (429, 429, RateLimited),
        (200, 605, RateLimited),
        (200, 606, RateLimited),
        (200, 600, SymbolNotFound),
        (200, 601, APIError),
        (200, 603, PlanLimitError),
        (200, 604, PlanLimitError),
        (200, 999, APIError),
    ],
)
def test_ret_codes_map_to_the_error_tree(status, ret, kind):
    with pytest.raises(kind) as info:
        wire.parse_klines(status, {"ret": ret, "msg": "m", "trace": "t", "data": {}}, "BTCUSDT", "1m")

    assert type(info.value) is kind
    assert (info.value.status, info.value.code, info.value.symbol) == (status, ret, "BTCUSDT")


def test_ret_600_names_the_code_the_family_and_the_fix():
    with pytest.raises(SymbolNotFound) as info:
        wire.parse_klines(200, {"ret": 600, "msg": "code invalid", "data": {}}, "AAPL.US", "1m")

    assert str(info.value) == (
        "AllTick does not know AAPL.US on the stock endpoints (/quote-stock-b-api) (ret 600 'code invalid'); "
        "check the code against AllTick's product list (case matters: 'AAPL.US', '700.HK', 'EURUSD', 'GOLD')"
    )


def test_ret_401_tells_how_to_set_the_token():
    with pytest.raises(AuthError) as info:
        wire.parse_trades(200, {"ret": 401, "msg": "token invalid", "data": {}}, ["EURUSD"])

    assert str(info.value) == (
        "AllTick rejected the token for EURUSD (ret 401 'token invalid'); set "
        "ALLTICK_TOKEN (or pass token=) to a valid, unexpired AllTick token"
    )


def test_ret_605_inside_http_200_is_a_rate_limit():
    with pytest.raises(RateLimited) as info:
        wire.parse_depth(200, {"ret": 605, "msg": "too many requests", "data": {}})

    assert str(info.value) == (
        "AllTick rate limit exceeded (ret 605 'too many requests'); wait before "
        "retrying and set plan= to your token's plan so requests are spaced to fit it"
    )
    assert is_retryable(info.value)


def test_documented_202_envelope_is_a_request_error(payload):
    with pytest.raises(APIError, match=r"ret 202 'request data param invalid'.*bug in backtrader_alltick"):
        wire.parse_trades(200, payload("alltick", "rest_error_202.json"))


@pytest.mark.parametrize(
    ("status", "kind", "retryable"),
    [(429, RateLimited, True), (503, APIError, True), (401, AuthError, False)],
)
def test_http_status_explains_a_body_that_is_not_json(status, kind, retryable):
    with pytest.raises(kind) as info:
        wire.parse_klines(status, None, "EURUSD", "1m")

    assert type(info.value) is kind and info.value.status == status
    assert is_retryable(info.value) is retryable


@pytest.mark.parametrize("body", [None, "<html>", ["x"], {"unexpected": 1}, {"ret": "abc"}])
def test_garbled_body_with_http_200_is_a_protocol_error(body):
    with pytest.raises(ProtocolError):
        wire.parse_klines(200, body, "EURUSD", "1m")


def test_http_5xx_message_says_retry_later():
    with pytest.raises(APIError) as info:
        wire.parse_trades(502, None, ["EURUSD"])

    assert str(info.value) == "AllTick answered for EURUSD with HTTP 502; the service is failing, retry later"


# -- WebSocket --------------------------------------------------------------------------------------


def test_ws_connect_puts_the_token_in_the_family_url():
    assert wire.ws_connect("wss://quote.alltick.co", "stock", "tok") == (
        "wss://quote.alltick.co/quote-stock-b-ws-api?token=tok",
        {},
    )
    assert (
        wire.ws_connect("ws://127.0.0.1:8765/", "other", "tok")[0]
        == "ws://127.0.0.1:8765/quote-b-ws-api?token=tok"
    )


def test_subscribe_messages_send_full_trade_then_depth_lists(payload):
    documented = payload("alltick", "ws_22002.json")

    trades, depth = map(
        json.loads, wire.subscribe_messages("other", ["BTCUSDT", "ETHUSDT"], ["BTCUSDT", "ETHUSDT"], 123)
    )

    assert trades["cmd_id"] == 22004 and trades["seq_id"] == 123
    assert trades["data"] == payload("alltick", "ws_22004.json")["data"]
    assert depth["cmd_id"] == 22002 and depth["data"] == documented["data"]
    assert trades["trace"] != depth["trace"] and max(len(trades["trace"]), len(depth["trace"])) <= 64


def test_subscribe_messages_ask_each_market_for_its_deepest_book():
    depth = json.loads(wire.subscribe_messages("stock", [], ["700.HK", "AAPL.US", "600519.SH"], 1)[1])

    assert depth["data"]["symbol_list"] == [
        {"code": "700.HK", "depth_level": 10},
        {"code": "AAPL.US", "depth_level": 1},
        {"code": "600519.SH", "depth_level": 5},
    ]


def test_subscribe_messages_with_empty_lists_cancel_each_kind(payload):
    trades, depth = map(json.loads, wire.subscribe_messages("other", [], [], 9))

    assert (trades["cmd_id"], trades["data"]) == (22006, {"cancel_type": 2})
    assert (depth["cmd_id"], depth["data"]) == (22006, payload("alltick", "ws_22006.json")["data"])


def test_subscribe_messages_refuse_a_symbol_of_the_other_family():
    with pytest.raises(ConfigError, match="symbols AAPL.US belong to another AllTick family than 'other'"):
        wire.subscribe_messages("other", ["EURUSD", "AAPL.US"], [], 1)


def test_heartbeat_message_has_the_documented_shape_and_a_unique_trace(payload):
    first, second = json.loads(wire.heartbeat_message(0, 1)), json.loads(wire.heartbeat_message(0, 2))

    assert set(first) == set(payload("alltick", "ws_22000.json"))
    assert (first["cmd_id"], first["seq_id"], first["data"]) == (22000, 1, {})
    assert first["trace"] != second["trace"] and len(first["trace"]) <= 64


def test_subscribe_round_trip_gives_back_the_symbols():
    symbols = ["BTCUSDT", "EURUSD", "XAUUSD", "Silver"]

    trades, depth = map(json.loads, wire.subscribe_messages("other", symbols, symbols[:2], 4))

    assert [parse_symbol(c["code"]).symbol for c in trades["data"]["symbol_list"]] == [
        parse_symbol(s).symbol for s in symbols
    ]
    assert [parse_symbol(c["code"]).symbol for c in depth["data"]["symbol_list"]] == ["BTCUSDT", "EURUSD"]


def test_heartbeat_round_trip_the_pong_echoes_our_trace():
    sent = json.loads(wire.heartbeat_message(1_700_000_000_000, 42))
    reply = {"ret": 200, "msg": "ok", "cmd_id": 22001, "seq_id": 42, "trace": sent["trace"], "data": {}}

    assert wire.parse_frame(json.dumps(reply)) == [Pong(sent["trace"])]


def test_parse_frame_reads_the_documented_trade_push(text):
    assert wire.parse_frame(text("alltick", "ws_22998.json")) == [
        Tick("1288.HK", 1782180164000, 651.12, 300.0, 12345.6, seq=1782180168224, direction=1)
    ]


def test_parse_frame_rejects_the_legacy_example_with_its_trailing_comma(text):
    with pytest.raises(ProtocolError, match="AllTick sent a malformed frame"):
        wire.parse_frame(text("alltick", "ws_22998_legacy_invalid.txt"))


def test_parse_frame_reads_ten_digit_tick_times_as_seconds(text):
    legacy = text("alltick", "ws_22998_legacy_invalid.txt")
    repaired = legacy.replace('"trade_direction": 1,', '"trade_direction": 1')

    tick = wire.parse_frame(repaired)[0]

    assert (tick.time, tick.seq) == (1605509068000, 1605509068000001)


def test_parse_frame_accepts_string_seq_direction_and_prices():
    frame = {
        "cmd_id": 22998,
        "data": {
            "code": "BTCUSDT",
            "seq": "77",
            "tick_time": "1700000000123",
            "price": "37000.5",
            "volume": "0.01",
            "turnover": "370.005",
            "trade_direction": "2",
        },
    }

    assert wire.parse_frame(json.dumps(frame).encode()) == [
        Tick("BTCUSDT", 1700000000123, 37000.5, 0.01, 370.005, seq=77, direction=2)
    ]


def test_parse_frame_reads_the_documented_depth_push_with_its_old_code_style(text):
    assert wire.parse_frame(text("alltick", "ws_22999.json")) == [
        Depth("1288.HK", 1605509068000, ((9.12, 9.12),), ((147.12, 147.12),))
    ]


@pytest.mark.parametrize(
    ("cmd_id", "action"), [(22003, "subscribe_depth"), (22005, "subscribe_trades"), (22007, "cancel")]
)
def test_parse_frame_acks(cmd_id, action):
    ok = {"ret": 200, "msg": "ok", "cmd_id": cmd_id, "seq_id": 5, "trace": "t", "data": {}}
    refused = dict(ok, ret=600, msg="code invalid")

    assert wire.parse_frame(json.dumps(ok)) == [Ack(action, True, "ok", 5)]
    assert wire.parse_frame(json.dumps(refused)) == [Ack(action, False, "code invalid (ret 600)", 5)]


def test_parse_frame_documented_ack_and_pong(text):
    assert wire.parse_frame(text("alltick", "ws_22005.json")) == [Ack("subscribe_trades", True, "ok", 123)]
    assert wire.parse_frame(text("alltick", "ws_22001.json")) == [
        Pong("3baaa938-f92c-4a74-a228-fd49d5e2f8bc-1678419657806")
    ]


def test_parse_frame_error_frames_are_server_errors_and_606_is_fatal(text):
    closing = {"ret": 606, "msg": "too many requests and connection will be closed", "cmd_id": 22005}

    assert wire.parse_frame(text("alltick", "ws_error_201.json")) == [
        ServerError(201, "request header param invalid", fatal=False)
    ]
    assert wire.parse_frame(json.dumps(closing)) == [ServerError(606, closing["msg"], fatal=True)]


@pytest.mark.parametrize(
    "frame",
    [
        '{"cmd_id":22998,"data":{"code":"BTCUSDT","tick_time":1700000000000}}',
        '{"cmd_id":22998,"data":{"code":"BTCUSDT","price":"1","tick_time":null}}',
        '{"cmd_id":22999,"data":{"code":"BTCUSDT"}}',
        '{"cmd_id":22998,"data":"oops"}',
        '{"cmd_id":22998,"data":{"code":"BTCUSDT","pri',
        "",
        "[1, 2]",
    ],
)
def test_parse_frame_malformed_or_incomplete_pushes_are_protocol_errors(frame):
    with pytest.raises(ProtocolError):
        wire.parse_frame(frame)


@pytest.mark.parametrize(
    "frame",
    ['{"cmd_id":23456,"data":{}}', '{"hello":"world"}', '{"cmd_id":22000,"seq_id":1,"trace":"x","data":{}}'],
)
def test_parse_frame_unknown_well_formed_frames_are_ignored(frame):
    assert wire.parse_frame(frame) == []


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("timestamp", "-100000000000"),
        ("timestamp", -1e20),
        ("timestamp", "1e400"),
        ("open_price", "NaN"),
        ("high_price", "inf"),
        ("low_price", "0"),
        ("volume", "-1"),
    ],
)
def test_parse_klines_bar_that_cannot_be_true_is_a_protocol_error_naming_the_field(field, value):
    rows = [kline_row(1_700_000_000, 1.0), {**kline_row(1_700_000_060, 1.0), field: value}]

    with pytest.raises(ProtocolError, match=f"{field} must be"):
        wire.parse_klines(200, kline_response(rows), "BTCUSDT", "1m")


@pytest.mark.parametrize(
    "data",
    [
        {"price": "NaN"},
        {"price": "-1"},
        {"tick_time": "-1e20"},
        {"tick_time": "1e400"},
        {"volume": "-2"},
        {"seq": "1e400"},
    ],
)
def test_parse_frame_trade_that_cannot_be_true_is_a_protocol_error(data):
    trade = {
        "code": "BTCUSDT",
        "seq": "1",
        "tick_time": "1700000000000",
        "price": "1.5",
        "volume": "1",
        **data,
    }

    with pytest.raises(ProtocolError):
        wire.parse_frame(json.dumps({"cmd_id": 22998, "data": trade}))
