"""iTick dialect: requests and parsers against the documented payloads of protocol/itick.md."""

import json

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
from backtrader_alltick.records import Depth, Kline, Quote, Tick
from backtrader_alltick.symbols import Instrument, parse_symbol
from backtrader_alltick.wire import Ack, AuthResult, Connected, Pong, ServerError
from backtrader_alltick.wire import itick as wire

HK700 = parse_symbol("700.HK")


def envelope(data):
    return {"code": 0, "msg": None, "data": data}


def bar(t, close, **extra):
    return {"t": t, "o": 1.0, "h": 2.0, "l": 0.5, "c": close, "v": 10, "tu": 20, **extra}


# -- routing ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("symbol", "family", "code", "ws"),
    [
        ("AAPL.US", "stock", "AAPL", "AAPL$US"),
        ("0700.HK", "stock", "700", "700$HK"),
        ("EURUSD", "forex", "EURUSD", "EURUSD$GB"),
        ("GOLD", "forex", "XAUUSD", "XAUUSD$GB"),
        ("Silver", "forex", "XAGUSD", "XAGUSD$GB"),
        ("XAUUSD", "forex", "XAUUSD", "XAUUSD$GB"),
        ("BTCUSDT", "crypto", "BTCUSDT", "BTCUSDT$BA"),
        ("US500", "indices", "US500", "US500$GB"),
    ],
)
def test_family_codes_and_ws_symbols(symbol, family, code, ws):
    assert (wire.family(symbol), wire.wire_code(symbol), wire.ws_symbol(symbol)) == (family, code, ws)


def test_native_periods_never_list_15m_and_keep_2h_4h_for_crypto():
    assert wire.native_periods("AAPL.US") == ("1m", "5m", "30m", "1h", "1d", "1w", "1M")
    assert wire.native_periods("BTCUSDT") == ("1m", "5m", "30m", "1h", "2h", "4h", "1d", "1w", "1M")
    assert all(wire.can_page_back(s) for s in ("AAPL.US", "EURUSD", "BTCUSDT"))


# -- REST requests ----------------------------------------------------------------------------------


def test_kline_request_has_the_seed_article_shape():
    request = wire.kline_request("AAPL.US", "1m", 50)

    assert (request.method, request.path, request.endpoint) == ("GET", "/stock/kline", "kline")
    assert request.params == {"region": "US", "code": "AAPL", "kType": "1", "limit": "50"}


def test_kline_request_matches_the_documented_forex_query():
    request = wire.kline_request("EURUSD", "5m", 10, end_ms=1751328000000)

    assert request.path == "/forex/kline"
    assert request.params == {
        "region": "GB",
        "code": "EURUSD",
        "kType": "2",
        "et": "1751328000000",
        "limit": "10",
    }


def test_kline_request_15m_is_not_native_and_says_why():
    with pytest.raises(UnsupportedTimeframe) as info:
        wire.kline_request("EURUSD", "15m", 10)

    assert str(info.value) == (
        "timeframe 15m is not supported for EURUSD (not an unambiguous iTick kType); "
        "use one of: 1m, 5m, 30m, 1h, 1d, 1w, 1M"
    )


def test_kline_request_count_above_the_limit_is_rejected():
    with pytest.raises(ConfigError, match="count must be an integer from 1 to 500, was 1000"):
        wire.kline_request("EURUSD", "1m", 1000)


@pytest.mark.parametrize(
    ("build", "endpoint"),
    [(wire.trades_request, "tick"), (wire.quote_request, "quote"), (wire.depth_request, "depth")],
)
def test_latest_requests_use_single_and_batch_paths(build, endpoint):
    single = build([HK700])
    batch = build(["700.HK", "9988.HK"])

    assert (single.path, single.endpoint, single.params) == (
        f"/stock/{endpoint}",
        endpoint,
        {"region": "HK", "code": "700"},
    )
    assert (batch.path, batch.endpoint, batch.params) == (
        f"/stock/{endpoint}s",
        endpoint,
        {"region": "HK", "codes": "700,9988"},
    )


def test_latest_request_across_regions_is_rejected_and_request_groups_splits_them():
    with pytest.raises(ConfigError, match="one iTick tick request serves one asset path and region"):
        wire.trades_request(["700.HK", "AAPL.US"])

    groups = wire.request_groups(["700.HK", "AAPL.US", "9988.HK", "EURUSD", "GOLD"])

    assert [[i.symbol for i in g] for g in groups] == [["700.HK", "9988.HK"], ["AAPL.US"], ["EURUSD", "GOLD"]]


def test_authorize_sets_the_token_and_accept_headers():
    signed = wire.authorize(wire.kline_request("AAPL.US", "1m", 1), "secret-token")

    assert signed.headers == {"token": "secret-token", "accept": "application/json"}
    assert "token" not in signed.params


# -- REST responses ---------------------------------------------------------------------------------


def test_parse_klines_reads_the_documented_forex_response(payload):
    bars = wire.parse_klines(200, payload("itick", "rest_kline_forex.json"), "EURUSD", "5m")

    assert bars == [
        Kline(
            "EURUSD", "5m", 1741239180000, 1741239480000, 1.0803, 1.08053, 1.0803, 1.08051, 293.0, 316.57132
        )
    ]


def test_parse_klines_reads_the_documented_indices_and_future_responses(payload):
    index = wire.parse_klines(200, payload("itick", "rest_kline_indices.json"), "US500", "5m")
    future = wire.parse_klines(
        200, payload("itick", "rest_kline_future.json"), Instrument("NQ", "US", "cfd"), "5m"
    )

    assert [(b.start, b.close, b.volume) for b in index] == [(1741208580000, 5842.62, 66000000.0)]
    assert [(b.symbol, b.start, b.close, b.turnover) for b in future] == [
        ("NQ", 1754656800000, 23535.0, 31835798.75)
    ]


def test_parse_klines_picks_the_code_from_a_batch_map(payload):
    crypto = payload("itick", "rest_klines_crypto.json")

    btc = wire.parse_klines(200, crypto, "BTCUSDT", "5m")
    eth = wire.parse_klines(200, crypto, "ETHUSDT$BA", "5m")
    qqq = wire.parse_klines(200, payload("itick", "rest_klines_fund.json"), "QQQ.US", "5m")

    assert [(b.symbol, b.close) for b in btc + eth + qqq] == [
        ("BTCUSDT", 92474.15),
        ("ETHUSDT", 2313.91),
        ("QQQ.US", 569.24),
    ]


def test_parse_klines_accepts_strings_seconds_any_order_and_keeps_the_last_duplicate():
    plain = envelope([bar(1_700_000_000_000, 1.0), bar(1_700_000_060_000, 1.1)])
    odd = envelope([bar("1700000060", "1.9"), bar(1_700_000_000, "1.0"), bar("1700000060000", 1.1)])

    assert wire.parse_klines(200, odd, "BTCUSDT", "1m") == wire.parse_klines(200, plain, "BTCUSDT", "1m")


def test_parse_klines_reads_the_2024_map_keyed_by_dotted_code():
    response = envelope({"700.HK": [bar(1_700_000_000_000, 1.5)]})

    assert [(b.symbol, b.close) for b in wire.parse_klines(200, response, HK700, "1m")] == [("700.HK", 1.5)]


@pytest.mark.parametrize("data", [None, {}, []])
def test_parse_klines_empty_data_is_an_empty_list(data):
    assert wire.parse_klines(200, envelope(data), "AAPL.US", "1m") == []


def test_parse_klines_bar_without_close_is_a_protocol_error():
    row = bar(1_700_000_000_000, 1.0)
    del row["c"]

    with pytest.raises(ProtocolError, match="malformed K-line for BTCUSDT"):
        wire.parse_klines(200, envelope([row]), "BTCUSDT", "1m")


def test_parse_klines_daily_bar_stamped_after_its_dates_close_is_a_protocol_error():
    # 2025-08-08 12:40 UTC is 20:40 in Hong Kong, hours after that day's close: no daily slot
    # holds it, so it is refused rather than handed out with an end before its start.
    row = bar(1_754_656_800_000, 23535.0)

    with pytest.raises(ProtocolError, match="malformed K-line for 700.HK"):
        wire.parse_klines(200, envelope([row]), "700.HK", "1d")


def test_parse_trades_names_bare_codes_by_the_requested_symbols(payload):
    response = payload("itick", "rest_tick_stock.json")

    # The documented payload says te 0: a regular-session trade.
    assert wire.parse_trades(200, response, [HK700]) == [
        Tick("700.HK", 1754554087000, 567.0, 1134500.0, session=0)
    ]
    assert wire.parse_trades(200, response)[0].symbol == "700"  # no region on the wire, none given


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("rest_tick_forex.json", Tick("EURUSD", 1754583901037, 1.16429, 1.8)),
        ("rest_tick_crypto.json", Tick("BTCUSDT", 1754585108147, 116101.99, 0.36735, 42649.3395843)),
        ("rest_tick_future.json", Tick("NQ", 1754062000728, 22948.5, 17.0)),
        ("rest_tick_legacy.json", Tick("BTCUSDT", 1729087440311, 67600.0, 0.02989, 2020.564)),
    ],
)
def test_parse_trades_reads_the_documented_ticks(payload, name, expected):
    assert wire.parse_trades(200, payload("itick", name)) == [expected]


def test_parse_trades_reads_the_documented_batch_map(payload):
    ticks = wire.parse_trades(200, payload("itick", "rest_ticks_stock.json"), ["700.HK", "9988.HK"])

    assert [(t.symbol, t.price, t.volume) for t in ticks] == [
        ("700.HK", 567.0, 1134500.0),
        ("9988.HK", 119.2, 3931400.0),
    ]


@pytest.mark.parametrize(
    ("name", "symbol", "expected"),
    [
        (
            "rest_quote_stock.json",
            "700.HK",
            Quote("700.HK", 1765526889000, 616.0, 608.0, 616.0, 601.5, 17825495.0, 10871536434.36, 608.0),
        ),
        (
            "rest_quote_forex.json",
            "EURUSD",
            Quote("EURUSD", 1765576744049, 1.17376, 1.1741, 1.17497, 1.17194, 1193417.3, 1400561.87122, None),
        ),
        (
            "rest_quote_crypto.json",
            "BTCUSDT",
            Quote(
                "BTCUSDT",
                1754585059019,
                116211.33,
                114953.48,
                116828.93,
                114259.0,
                11296.78228,
                1307158285.566175,
                None,
            ),
        ),
        (
            "rest_quote_indices.json",
            "US500",
            Quote(
                "US500",
                1765573268000,
                6827.42,
                6886.85,
                6899.85,
                6801.79,
                3086000000.0,
                21106572620000.0,
                6886.85,
            ),
        ),
    ],
)
def test_parse_quotes_reads_the_documented_quotes(payload, name, symbol, expected):
    # The indices page quotes SPX; requested as US500 it is named by what was asked for.
    response = payload("itick", name)
    response["data"]["s"] = wire.wire_code(symbol)

    assert wire.parse_quotes(200, response, [symbol]) == [expected]


def test_parse_quotes_reads_the_documented_batch_map(payload):
    quotes = wire.parse_quotes(200, payload("itick", "rest_quotes_stock.json"), ["700.HK", "9988.HK"])

    assert [(q.symbol, q.last, q.prev_close) for q in quotes] == [
        ("700.HK", 616.0, 608.0),
        ("9988.HK", 154.1, 152.7),
    ]


def test_parse_depth_reads_the_documented_books(payload):
    stock = wire.parse_depth(200, payload("itick", "rest_depth_stock.json"), [HK700])
    forex = wire.parse_depth(200, payload("itick", "rest_depth_forex.json"))

    assert stock == [
        Depth("700.HK", 0, ((566.5, 24700.0), (566.0, 27500.0)), ((567.0, 13400.0), (567.5, 170200.0)))
    ]
    assert forex == [Depth("EURUSD", 0, ((1.16421, 0.0),), ((1.16423, 0.0),))]


def test_parse_depth_orders_levels_by_position():
    book = {
        "s": "BTCUSDT",
        "t": 1_700_000_000_000,
        "b": [{"po": 2, "p": 9.0, "v": 1}, {"po": 1, "p": 10.0, "v": 2}],
        "a": [{"po": 2, "p": 12.0, "v": 1}, {"po": 1, "p": 11.0, "v": 2}],
    }

    depth = wire.parse_depth(200, envelope(book))[0]

    assert (depth.best_bid, depth.best_ask, depth.time) == (10.0, 11.0, 1_700_000_000_000)


# -- REST errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code", "msg", "kind"),
    [
        (401, None, None, AuthError),
        (403, None, None, AuthError),
        (200, "E002", "auth failed", AuthError),
        (200, 1, "E002", AuthError),
        (200, "E001", "not found this produce", SymbolNotFound),
        (200, 1, "E001", SymbolNotFound),
        (200, "E003", "exceeding the maximum subscription limit", PlanLimitError),
        (429, None, None, RateLimited),
        (200, "429", "busy", RateLimited),
        (200, 1, "request limit exceeded", RateLimited),
        (200, 1, "Rate limit reached", RateLimited),
        (500, None, None, APIError),
        (200, 7, "strange", APIError),
    ],
)
def test_errors_map_to_the_error_tree(status, code, msg, kind):
    body = None if code is None else {"code": code, "msg": msg, "data": None}

    with pytest.raises(kind) as info:
        wire.parse_klines(status, body, "AAPL.US", "1m")

    assert type(info.value) is kind
    assert (info.value.status, info.value.symbol) == (status, "AAPL.US")


def test_unknown_symbol_message_names_the_symbol_and_the_fix():
    with pytest.raises(SymbolNotFound) as info:
        wire.parse_klines(200, {"code": "E001", "msg": "not found this produce"}, "ZZZZ.US", "1m")

    assert str(info.value) == (
        "iTick does not know ZZZZ.US (HTTP 200, code 'E001', msg 'not found this produce'); check the region "
        "and code against iTick's /symbol/list (e.g. 'AAPL.US', '700.HK', 'EURUSD', 'BTCUSDT')"
    )


def test_http_401_message_tells_how_to_set_the_token():
    with pytest.raises(AuthError) as info:
        wire.parse_trades(401, None, ["EURUSD"])

    assert str(info.value) == (
        "iTick rejected the token for EURUSD (HTTP 401, code None, msg None); set "
        "ALLTICK_TOKEN (or pass token=) to your iTick API key"
    )
    assert not is_retryable(info.value)


def test_http_429_is_retryable_and_5xx_too():
    for status, kind in ((429, RateLimited), (503, APIError)):
        with pytest.raises(kind) as info:
            wire.parse_quotes(status, None, ["EURUSD"])
        assert is_retryable(info.value)


@pytest.mark.parametrize("body", [None, "<html>", [1], {"data": []}])
def test_body_that_is_not_an_itick_envelope_is_a_protocol_error(body):
    with pytest.raises(ProtocolError):
        wire.parse_klines(200, body, "EURUSD", "1m")


# -- WebSocket --------------------------------------------------------------------------------------


def test_ws_connect_uses_the_asset_path_and_a_token_header():
    assert wire.ws_connect("wss://api.itick.org", "stock", "tok") == (
        "wss://api.itick.org/stock",
        {"token": "tok"},
    )
    with pytest.raises(ConfigError, match="family must be one of stock, forex, indices, crypto, was 'sws'"):
        wire.ws_connect("wss://api.itick.org", "sws", "tok")


def test_subscribe_messages_merge_trade_and_depth_symbols_into_one_subscribe(payload):
    documented = payload("itick", "ws_subscribe.json")

    trades_only = wire.subscribe_messages("forex", ["EURUSD", "GBPUSD"], [], 1)
    with_depth = wire.subscribe_messages("stock", ["AAPL.US", "TSLA.US"], ["TSLA.US", "700.HK"], 2)

    assert [json.loads(m) for m in trades_only] == [dict(documented, types="tick")]
    assert [json.loads(m) for m in with_depth] == [
        {"ac": "subscribe", "params": "AAPL$US,TSLA$US,700$HK", "types": "tick,quote,depth"}
    ]


def test_subscribe_messages_with_nothing_to_subscribe_send_nothing():
    assert wire.subscribe_messages("crypto", [], [], 1) == []


def test_subscribe_messages_refuse_a_symbol_of_another_asset_path():
    with pytest.raises(ConfigError, match=r"symbols BTCUSDT are not served on iTick's /forex socket"):
        wire.subscribe_messages("forex", ["EURUSD", "BTCUSDT"], [], 1)


def test_heartbeat_message_is_the_documented_ping(payload):
    assert json.loads(wire.heartbeat_message(1731688569840, 7)) == payload("itick", "ws_ping.json")


def test_subscribe_round_trip_gives_back_the_symbols():
    symbols = ["EURUSD", "GOLD", "Silver", "XAUEUR"]

    sent = json.loads(wire.subscribe_messages("forex", symbols, [], 3)[0])

    assert [parse_symbol(p).symbol for p in sent["params"].split(",")] == [
        parse_symbol(s).symbol for s in symbols
    ]


def test_heartbeat_round_trip_the_pong_echoes_our_time():
    sent = json.loads(wire.heartbeat_message(1_700_000_000_123, 1))
    reply = {"resAc": "pong", "data": {"params": sent["params"]}}

    assert wire.parse_frame(json.dumps(reply)) == [Pong("1700000000123")]


@pytest.mark.parametrize(
    ("name", "event"),
    [
        ("ws_connected.json", Connected("Connected Successfully")),
        ("ws_auth_ok.json", AuthResult(True, "authenticated")),
        ("ws_auth_ok_params.json", AuthResult(True, "authenticated")),
        ("ws_auth_failed.json", AuthResult(False, "auth failed")),
        ("ws_subscribe_ok.json", Ack("subscribe", True, "subscribe Successfully")),
        ("ws_subscribe_limit.json", Ack("subscribe", False, "exceeding the maximum subscription limit")),
        ("ws_subscribe_unresolved.json", Ack("subscribe", False, "cannot be resolved action")),
        ("ws_pong.json", Pong("1731688569840")),
        ("ws_tick.json", Tick("EURUSD", 1731689407000, 225.215, 16742235.0)),
        (
            "ws_quote.json",
            Quote("EURUSD", 1731689407000, 225.215, 226.27, 226.92, 224.44, 16742235.0, 3774688301.452),
        ),
        ("ws_depth.json", Depth("EURUSD", 0, ((3034.0, 20.9758),), ((3034.01, 10.6023),))),
        (
            "ws_kline.json",
            Kline(
                "EURUSD",
                "1m",
                1731660060000,
                1731660120000,
                3055.36,
                3061.41,
                3055.24,
                3059.39,
                28.0,
                157513.0,
            ),
        ),
        (
            "ws_quote_legacy.json",
            Quote("AAPL.US", 1731689407000, 225.215, 226.27, 226.92, 224.44, 16742235.0, 3774688301.452),
        ),
        (
            "ws_kline_legacy.json",
            Kline(
                "AAPL.US",
                "1m",
                1731660060000,
                1731660120000,
                3055.36,
                3061.41,
                3055.24,
                3059.39,
                28.0,
                157513.0,
            ),
        ),
    ],
)
def test_parse_frame_reads_every_documented_frame(text, name, event):
    assert wire.parse_frame(text("itick", name)) == [event]


@pytest.mark.parametrize(
    ("raw", "region", "symbol"),
    [
        ("AAPL", "US", "AAPL.US"),
        ("AAPL.US", None, "AAPL.US"),
        ("AAPL$US", None, "AAPL.US"),
        ("700", "HK", "700.HK"),
        ("BTCUSDT$BA", "BA", "BTCUSDT"),
        ("XAUUSD", "GB", "GOLD"),
        ("BA_BTC_USDT", None, "BTCUSDT"),
    ],
)
def test_parse_frame_names_ticks_by_their_canonical_symbol(raw, region, symbol):
    data = {"s": raw, "ld": 1.5, "t": 1_700_000_000_000, "v": 2, "type": "tick"}
    if region:
        data["r"] = region

    assert wire.parse_frame(json.dumps({"code": 1, "data": data}))[0].symbol == symbol


def test_parse_frame_reads_seconds_and_string_numbers_in_a_tick():
    frame = {
        "code": 1,
        "data": {"s": "BTCUSDT", "r": "BA", "ld": "37000.5", "t": "1700000000", "v": "0.1", "type": "tick"},
    }

    assert wire.parse_frame(json.dumps(frame)) == [Tick("BTCUSDT", 1_700_000_000_000, 37000.5, 0.1)]


def test_parse_frame_ignores_the_ambiguous_kline_3_and_unknown_types():
    kline3 = {"code": 1, "data": {**bar(1_700_000_000_000, 1.0), "type": "kline@3", "s": "EURUSD", "r": "GB"}}
    other = {"code": 1, "data": {"s": "EURUSD", "type": "news"}}

    assert wire.parse_frame(json.dumps(kline3)) == []
    assert wire.parse_frame(json.dumps(other)) == []
    assert wire.parse_frame('{"resAc":"something","code":1}') == []


def test_parse_frame_error_without_reply_is_a_server_error():
    assert wire.parse_frame('{"code":0,"msg":"server busy"}') == [ServerError(0, "server busy")]
    assert wire.parse_frame('{"code":0,"resAc":"pingx","msg":"no action"}') == [ServerError(0, "no action")]


@pytest.mark.parametrize(
    "frame",
    [
        '{"code":1,"data":{"s":"EURUSD","t":1700000000000,"type":"tick"}}',
        '{"code":1,"data":{"ld":1.0,"t":1700000000000,"type":"tick"}}',
        '{"code":1,"data":{"s":"EURUSD","ld":1.0,"type":"quote"}}',
        '{"code":1,"data":{"s":"EURUSD","b":[{"po":1}],"type":"depth"}}',
        '{"code":1,"data":{"s":"EURUSD","t":1,"type":"kline@1"}}',
        '{"code":1,"data":{"s":"EURUSD","ld":',
        "not json",
        "[]",
    ],
)
def test_parse_frame_malformed_or_incomplete_pushes_are_protocol_errors(frame):
    with pytest.raises(ProtocolError):
        wire.parse_frame(frame)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("t", -100_000_000_000),
        ("t", -1e20),
        ("t", float("inf")),
        ("o", float("nan")),
        ("h", "Infinity"),
        ("l", 0),
        ("c", -2),
        ("v", -1),
        ("tu", float("-inf")),
    ],
)
def test_parse_klines_bar_that_cannot_be_true_is_a_protocol_error_naming_the_field(field, value):
    rows = [bar(1_700_000_000_000, 1.0), {**bar(1_700_000_060_000, 1.0), field: value}]

    with pytest.raises(ProtocolError, match=f"{field} must be"):
        wire.parse_klines(200, envelope(rows), "BTCUSDT", "1m")


@pytest.mark.parametrize(
    "frame",
    [
        {"code": 1, "data": {"s": "BTCUSDT", "r": "BA", "type": "tick", "ld": "NaN", "t": 1_700_000_000_000}},
        {"code": 1, "data": {"s": "BTCUSDT", "r": "BA", "type": "tick", "ld": 1.5, "t": -1e20}},
        {
            "code": 1,
            "data": {"s": "BTCUSDT", "r": "BA", "type": "tick", "ld": 1.5, "v": -1, "t": 1_700_000_000},
        },
        {"code": 1, "data": {"s": "BTCUSDT", "r": "BA", "type": "depth", "a": [{"po": 1, "p": 0, "v": 1}]}},
    ],
)
def test_parse_frame_push_that_cannot_be_true_is_a_protocol_error(frame):
    with pytest.raises(ProtocolError):
        wire.parse_frame(json.dumps(frame))


def test_parse_klines_keeps_a_bar_whose_high_is_below_its_close_for_the_quality_report():
    # Vendor rounding can put high below open or close: data worth a finding, not a refused page.
    rows = [bar(1_700_000_000_000, 1.0), {**bar(1_700_000_060_000, 1.0), "h": 0.6}]

    bars = wire.parse_klines(200, envelope(rows), "BTCUSDT", "1m")

    assert [b.high for b in bars] == [2.0, 0.6]


@pytest.mark.parametrize(("te", "session"), [(0, 0), (1, 1), (2, 2), (5, None), (True, None), ("1", None)])
def test_a_stock_ticks_te_is_kept_as_its_session_where_it_is_a_documented_value(te, session):
    from backtrader_alltick.wire.itick.rows import read_tick

    tick = read_tick({"s": "AAPL", "ld": 191.7, "t": 1710134710000, "v": 5, "te": te}, "AAPL.US")

    assert tick.session == session  # itick.md 4.1: 0 regular, 1 pre-market, 2 after-hours
