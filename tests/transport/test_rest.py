"""RestClient: error mapping, retries, token hygiene, helpers; over loopback sockets only."""

from __future__ import annotations

import json
import logging
import socket
import threading
from dataclasses import replace

import pytest
from fakeservice import CannedService

from backtrader_alltick import AllTickStore, errors
from backtrader_alltick.clock import ServiceClock
from backtrader_alltick.errors import AllTickError, ConfigError, ConnectError, ProtocolError, Timeout
from backtrader_alltick.plans import get_plan
from backtrader_alltick.transport.ratelimit import RateLimiter
from backtrader_alltick.transport.rest import RestClient, parse_http_date
from backtrader_alltick.wire import get_dialect

SENTINEL = "SENTINEL-tok3n-5ecret-0123456789"


def test_repr_masks_the_token():
    with RestClient("alltick", SENTINEL, "http://127.0.0.1:1", "unlimited") as client:
        text = repr(client)

    assert SENTINEL not in text
    assert "SENT…6789" in text


def test_constructor_rejects_a_base_url_without_scheme():
    with pytest.raises(ConfigError, match="base_url must be an http"):
        RestClient("alltick", SENTINEL, "quote.alltick.co", "free")


@pytest.mark.parametrize("url", ["http://[::1", "http://127.0.0.1:99999", "http://127.0.0.1:port"])
def test_constructor_rejects_a_base_url_that_cannot_be_parsed(url):
    with pytest.raises(ConfigError, match="base_url must be an http.*, was 'http://"):
        RestClient("alltick", SENTINEL, url, "free")


def test_quotes_need_the_itick_dialect():
    with (
        RestClient("alltick", SENTINEL, "http://127.0.0.1:1", "unlimited") as client,
        pytest.raises(ConfigError, match="itick dialect only"),
    ):
        client.quotes(["AAPL.US"])


# -- Loopback faults the simulator cannot produce ---------------------------------------------


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_connection_refused_retries_then_raises_connect_error_without_token(caplog):
    caplog.set_level(logging.DEBUG, logger="backtrader_alltick")
    port = closed_port()
    client = RestClient(
        "alltick",
        SENTINEL,
        f"http://127.0.0.1:{port}",
        "unlimited",
        max_retries=2,
        backoff_initial=0.001,
        backoff_cap=0.002,
    )

    with client, pytest.raises(ConnectError) as info:
        client.klines("BTCUSDT", "1m", 10)

    assert "could not connect" in str(info.value)
    assert "gave up after 3 attempts" in str(info.value)
    assert client.stats.requests == 3
    assert client.stats.retries == 2
    assert_no_sentinel(info.value, caplog)


@pytest.mark.parametrize("dialect", ["alltick", "itick"])
def test_malformed_json_raises_protocol_error_at_once(dialect, caplog):
    caplog.set_level(logging.DEBUG, logger="backtrader_alltick")
    with (
        CannedService(lambda request: (200, b'{"ret": 200, "data": {"kline_list": [')) as service,
        RestClient(dialect, SENTINEL, service.url, "unlimited", max_retries=3) as client,
        pytest.raises(ProtocolError) as info,
    ):
        client.klines("BTCUSDT", "1m", 10)

    assert len(service.requests) == 1
    assert_no_sentinel(info.value, caplog)


def test_debug_log_shows_the_request_url_with_the_token_masked(caplog):
    caplog.set_level(logging.DEBUG, logger="backtrader_alltick.transport.rest")
    body = json.dumps(
        {"ret": 200, "msg": "ok", "data": {"code": "BTCUSDT", "kline_type": 1, "kline_list": []}}
    ).encode()
    with (
        CannedService(lambda request: (200, body)) as service,
        RestClient("alltick", SENTINEL, service.url, "unlimited") as client,
    ):
        assert client.klines("BTCUSDT", "1m", 10) == []

    sent = [r.getMessage() for r in caplog.records if "/kline?" in r.getMessage()]
    assert len(sent) == 1
    assert "/quote-b-api/kline?" in sent[0]
    assert "token=SENT%E2%80%A66789" in sent[0] or "SENT…6789" in sent[0]
    assert service.requests[0].params["token"] == SENTINEL
    assert_no_sentinel(None, caplog)


def assert_no_sentinel(exc: BaseException | None, caplog) -> None:
    if exc is not None:
        assert SENTINEL not in str(exc)
        assert SENTINEL not in repr(exc)
        for arg in exc.args:
            assert SENTINEL not in str(arg)
        assert exc.__cause__ is None or SENTINEL not in str(exc.__cause__)
    for record in caplog.records:
        assert SENTINEL not in record.getMessage()
        assert SENTINEL not in str(record.args)


def test_a_client_on_a_named_plan_asks_for_as_many_codes_per_request_as_that_plan_allows(alltick_sim):
    codes = [symbol for symbol in alltick_sim.symbols if "." not in symbol]  # one endpoint family
    per_request = get_plan("alltick", "free").codes_per_request
    # The limiter is the plan's own unless one is passed; the free plan's would space these 10 s apart.
    with RestClient(
        "alltick",
        alltick_sim.token,
        alltick_sim.rest_url,
        "free",
        limiter=RateLimiter(get_plan("alltick", "unlimited")),
    ) as client:
        trades = client.latest_trades(codes)

    assert len(codes) > per_request
    assert alltick_sim.counters["rest_requests"] == -(-len(codes) // per_request)
    assert sorted(trade.symbol for trade in trades) == sorted(codes)


def test_a_client_on_a_named_plan_waits_as_that_plan_says():
    with RestClient(get_dialect("alltick"), SENTINEL, "http://127.0.0.1:1", "free") as client:
        client.limiter.record("kline", 100.0)

        assert client.limiter.delay_for("kline", 100.0) == pytest.approx(
            get_plan("alltick", "free").endpoint_interval + client.limiter.margin
        )


# -- Against the simulator, both dialects ------------------------------------------------------


def sim_client(sim, token: str | None = None, **settings) -> RestClient:
    settings.setdefault("backoff_initial", 0.001)
    settings.setdefault("backoff_cap", 0.005)
    settings.setdefault("retry_after_cap", 0.01)
    return RestClient(sim.dialect, token or sim.token, sim.rest_url, sim.plan, **settings)


def with_sentinel_token(sim) -> RestClient:
    sim.add_token(SENTINEL)
    return sim_client(sim, SENTINEL)


def test_klines_equal_the_ground_truth(sim):
    with sim_client(sim) as client:
        bars = client.klines("BTCUSDT", "1m", 120)

    now = sim.clock.now_ms()
    done = [bar for bar in bars if bar.end <= now]
    assert len(done) >= 119
    assert done == sim.klines("BTCUSDT", "1m", done[0].start, done[-1].end)
    assert client.stats.requests == 1


@pytest.mark.parametrize("reply", ["ret605", "http429"])
def test_rate_limit_storm_is_waited_out(make_sim, reply, caplog):
    caplog.set_level(logging.DEBUG, logger="backtrader_alltick")
    sim = make_sim(dialect="alltick")
    sim.faults.update(rate_limit_reply=reply, rate_limit_burst=4)

    with with_sentinel_token(sim) as client:
        bars = client.klines("EURUSD", "5m", 10)

    assert len(bars) == 10
    assert client.stats.rate_limited == 4
    assert client.stats.retries == 4
    assert sim.counters["rest_requests"] == 5
    assert sim.counters["faults"] == {"rate_limit_burst": 4}
    assert_no_sentinel(None, caplog)


def test_itick_rate_limit_storm_is_waited_out(itick_sim):
    itick_sim.faults.rate_limit_burst = 3

    with sim_client(itick_sim) as client:
        assert len(client.klines("BTCUSDT", "1m", 10)) == 10

    assert client.stats.rate_limited == 3
    assert itick_sim.counters["rest_requests"] == 4


def test_short_server_error_burst_is_retried(sim):
    sim.faults.server_error_burst = 2

    with sim_client(sim, max_retries=3) as client:
        bars = client.klines("AAPL.US", "1m", 5)

    assert len(bars) == 5
    assert client.stats.retries == 2
    assert sim.counters["rest_requests"] == 3


def test_server_error_storm_longer_than_max_retries_raises(sim, caplog):
    caplog.set_level(logging.DEBUG, logger="backtrader_alltick")
    sim.faults.server_error_burst = 100

    with with_sentinel_token(sim) as client, pytest.raises(errors.APIError) as info:
        client.max_retries = 2
        client.klines("AAPL.US", "1m", 5)

    assert info.value.status == 503
    assert "503" in str(info.value)
    assert "gave up after 3 attempts" in str(info.value)
    assert sim.counters["rest_requests"] == 3
    assert_no_sentinel(info.value, caplog)


def test_wrong_token_raises_auth_error_after_one_request(sim, caplog):
    caplog.set_level(logging.DEBUG, logger="backtrader_alltick")

    with sim_client(sim, SENTINEL) as client, pytest.raises(errors.AuthError) as info:
        client.klines("AAPL.US", "1m", 5)

    assert sim.counters["rest_requests"] == 1
    assert client.stats.retries == 0
    assert "token" in str(info.value)
    assert_no_sentinel(info.value, caplog)


def test_unknown_symbol_raises_symbol_not_found_at_once(sim, caplog):
    caplog.set_level(logging.DEBUG, logger="backtrader_alltick")

    with with_sentinel_token(sim) as client, pytest.raises(errors.SymbolNotFound) as info:
        client.klines("NVDA.US", "1m", 5)

    assert "NVDA" in str(info.value)
    assert sim.counters["rest_requests"] == 1
    assert_no_sentinel(info.value, caplog)


def test_slow_response_raises_timeout_after_retries(sim, caplog):
    caplog.set_level(logging.DEBUG, logger="backtrader_alltick")
    sim.faults.slow_ms = 400

    with with_sentinel_token(sim) as client, pytest.raises(Timeout) as info:
        client.timeout = (2.0, 0.05)
        client.max_retries = 1
        client.klines("BTCUSDT", "1m", 5)

    assert "did not answer in time" in str(info.value)
    assert client.stats.requests == 2
    assert_no_sentinel(info.value, caplog)


def test_latest_trades_and_depth_split_families_and_chunks(sim):
    symbols = ["AAPL.US", "TSLA.US", "BTCUSDT", "EURUSD", "GOLD"]
    plan = replace(sim.plan, codes_per_request=2)

    with RestClient(sim.dialect, sim.token, sim.rest_url, plan) as client:
        trades = client.latest_trades(symbols)
        books = client.depth(symbols)

    assert sorted(tick.symbol for tick in trades) == sorted(symbols)
    assert sorted(book.symbol for book in books) == sorted(symbols)
    # Two families (stocks; forex, metals and crypto) of 2 and 3 codes, two codes a request.
    assert client.stats.requests == 2 * 3


def test_quotes_from_the_itick_dialect(itick_sim):
    with sim_client(itick_sim) as client:
        quotes = client.quotes(["AAPL.US", "BTCUSDT"])

    assert sorted(quote.symbol for quote in quotes) == ["AAPL.US", "BTCUSDT"]


def test_paid_plan_spacing_is_kept_so_the_service_never_refuses(make_sim):
    sim = make_sim(dialect="alltick", plan="basic")  # one /kline call per second

    with sim_client(sim) as client:
        for _ in range(3):
            client.klines("BTCUSDT", "1m", 2)

    assert client.stats.rate_limited == 0
    assert sim.counters["errors_sent"] == {}
    assert client.stats.waited >= 2.0


def test_code_outside_the_plan_raises_plan_limit_error_at_once(alltick_sim, caplog):
    caplog.set_level(logging.DEBUG, logger="backtrader_alltick")
    alltick_sim.denied_symbols.add("TSLA.US")

    with with_sentinel_token(alltick_sim) as client, pytest.raises(errors.PlanLimitError) as info:
        client.klines("TSLA.US", "1m", 5)

    assert "TSLA.US" in str(info.value)
    assert alltick_sim.counters["rest_requests"] == 1
    assert_no_sentinel(info.value, caplog)


def test_daily_cap_stops_the_client_before_the_service_refuses(alltick_sim, caplog):
    caplog.set_level(logging.DEBUG, logger="backtrader_alltick")
    plan = replace(alltick_sim.plan, per_day=2)
    alltick_sim.add_token(SENTINEL)

    with RestClient("alltick", SENTINEL, alltick_sim.rest_url, plan) as client:
        client.klines("BTCUSDT", "1m", 2)
        client.klines("ETHUSDT", "1m", 2)
        with pytest.raises(errors.PlanLimitError, match="daily request cap of 2 calls") as info:
            client.klines("EURUSD", "1m", 2)

    assert alltick_sim.counters["rest_requests"] == 2
    assert_no_sentinel(info.value, caplog)


def test_close_interrupts_a_retry_wait(alltick_sim):
    alltick_sim.faults.server_error_burst = 100
    client = sim_client(alltick_sim, backoff_initial=30.0, backoff_cap=30.0, max_retries=3)
    failed: list[BaseException] = []

    def load() -> None:
        try:
            client.klines("BTCUSDT", "1m", 2)
        except AllTickError as e:
            failed.append(e)

    thread = threading.Thread(target=load)
    thread.start()
    alltick_sim.journal.wait_for(lambda entry: entry.kind == "rest", timeout=10)
    client.close()
    thread.join(10)

    assert not thread.is_alive()
    assert isinstance(failed[0], errors.TransportError)
    assert "closed while waiting to retry" in str(failed[0])


def test_a_token_read_with_its_line_break_works(itick_sim):
    with RestClient("itick", itick_sim.token + "\n", itick_sim.rest_url, "unlimited") as client:
        assert client.klines("BTCUSDT", "1m", 2)


def test_a_token_with_a_line_break_inside_is_refused_without_quoting_it(itick_sim):
    with pytest.raises(ConfigError) as info:
        RestClient("itick", "SENTINELTOKEN01234\n56789abcdef", itick_sim.rest_url, "unlimited")
    assert "SENTINELTOKEN01234" not in str(info.value)


def test_a_token_is_redacted_even_where_a_message_cuts_it_short():
    token = "SENTINELTOKEN0123456789abcdef"

    text = errors.redact(f"answer was '...?token={token[:20]}", token)

    assert token[:9] not in text


def test_close_ends_a_call_waiting_on_the_rate_limiter(alltick_sim):
    client = RestClient("alltick", alltick_sim.token, alltick_sim.rest_url, "free")
    client.klines("BTCUSDT", "1m", 2)  # the next call must wait ten seconds (Free plan)
    outcome = []
    worker = threading.Thread(target=lambda: outcome.append(_call_or_error(client)))
    worker.start()
    client.limiter.wake()  # nothing to cancel yet: the waiting call goes on waiting

    client.close()
    worker.join(timeout=5)

    assert not worker.is_alive()
    assert isinstance(outcome[0], errors.TransportError) and "closed" in str(outcome[0])
    assert alltick_sim.counters["rest_requests"] == 1


def _call_or_error(client):
    try:
        return client.klines("BTCUSDT", "1m", 2)
    except errors.AllTickError as e:
        return e


# -- A service that rate-limits forever ---------------------------------------------------------


def test_endless_429_without_retry_after_gives_up_after_the_ratelimit_timeout(caplog):
    caplog.set_level(logging.DEBUG, logger="backtrader_alltick")
    with (
        CannedService(lambda request: (429, b"Too Many Requests")) as service,
        RestClient(
            "alltick",
            SENTINEL,
            service.url,
            "unlimited",
            backoff_initial=0.05,
            backoff_cap=0.05,
            ratelimit_timeout=0.2,
        ) as client,
        pytest.raises(errors.RateLimited) as info,
    ):
        client.klines("BTCUSDT", "1m", 5)

    assert len(service.requests) >= 2  # it retried before giving up
    assert "ratelimit_timeout=0.2" in str(info.value)
    assert f"gave up after {len(service.requests)} attempts" in str(info.value)
    assert client.stats.rate_limited == len(service.requests)
    assert_no_sentinel(info.value, caplog)


def test_a_retry_after_longer_than_the_ratelimit_timeout_gives_up_at_once():
    with (
        CannedService(lambda request: (429, b"", {"Retry-After": "3600"})) as service,
        RestClient("itick", SENTINEL, service.url, "unlimited", ratelimit_timeout=5) as client,
        pytest.raises(errors.RateLimited, match="gave up after 1 attempts"),
    ):
        client.klines("BTCUSDT", "1m", 5)

    assert len(service.requests) == 1


def test_the_store_passes_its_ratelimit_timeout_to_the_rest_client(tmp_path):
    with CannedService(lambda request: (429, b"")) as service:
        store = AllTickStore(
            token=SENTINEL, rest_url=service.url, plan="unlimited", cache=False, ratelimit_timeout=0.0
        )
        try:
            with pytest.raises(errors.RateLimited, match="ratelimit_timeout=0 "):
                store.fetch_klines("BTCUSDT", "1m", count=3)
        finally:
            store.stop()

    assert len(service.requests) == 1
    assert AllTickStore(token=SENTINEL).rest.ratelimit_timeout == 120.0


def test_a_negative_ratelimit_timeout_is_refused():
    with pytest.raises(ConfigError, match="ratelimit_timeout must be 0 or more seconds, was -1"):
        RestClient("alltick", SENTINEL, "http://127.0.0.1:1", "unlimited", ratelimit_timeout=-1)


# -- The service's clock, from the Date of every answer ---------------------------------------------


def test_every_answer_tells_the_client_s_clock_the_service_s_time(sim):
    clock = ServiceClock(OffsetClock(sim.clock, 40_000))  # our clock 40 s ahead of the service
    client = RestClient(sim.dialect, sim.token, sim.rest_url, sim.plan, clock=clock)
    with client:
        before = sim.clock.now_ms()
        client.latest_trades(["BTCUSDT"])
        known, offset = clock.known_ms(), clock.offset_ms
        after = sim.clock.now_ms()

    # The Date was stamped (floored to the second) and read between before and after; on the 60x clock
    # a slow machine stretches that span by many market seconds, so the bounds take it as measured.
    assert before - 1_000 <= known <= after + 1_000  # the simulated time, to the second
    assert -40_000 - (after - before) - 1_000 <= offset <= -40_000 + 1_000


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("Tue, 05 Mar 2024 15:01:00 GMT", 1_709_650_860_000),
        ("Tue, 05 Mar 2024 15:01:00 -0000", 1_709_650_860_000),
        ("yesterday", None),
        ("", None),
        (None, None),
    ],
)
def test_http_dates_are_read_to_the_second(header, expected):
    assert parse_http_date(header) == expected


class OffsetClock:
    def __init__(self, clock, offset_ms: int) -> None:
        self.clock, self.offset_ms, self.speed = clock, offset_ms, clock.speed

    def now_ms(self) -> int:
        return self.clock.now_ms() + self.offset_ms


def test_a_batch_call_does_not_queue_behind_klines_waiting_for_their_own_endpoint(alltick_sim):
    # The plan spaces each endpoint on its own (alltick.md 6.1): a /batch-kline call whose slot is
    # free goes while a universe's /kline calls wait for theirs.
    plan = replace(
        get_plan("alltick", "basic"), endpoint_interval=0.3, batch_interval=0.3, per_minute=None, per_day=None
    )
    kline_calls = 6
    done: list[str] = []
    lock = threading.Lock()
    with RestClient("alltick", alltick_sim.token, alltick_sim.rest_url, plan) as client:

        def kline() -> None:
            client.klines("AAPL.US", "1m", 2)
            with lock:
                done.append("kline")

        threads = [threading.Thread(target=kline) for _ in range(kline_calls)]
        for thread in threads:
            thread.start()
        while alltick_sim.counters["rest_requests"] < 1:  # the first kline is out: the others queue
            threading.Event().wait(0.01)
        client.batch_klines(["AAPL.US", "TSLA.US"], "1m")
        with lock:
            klines_before_batch = len(done)
        for thread in threads:
            thread.join()

    assert klines_before_batch < kline_calls - 1


def test_a_client_told_to_slow_down_keeps_the_service_s_pace_rather_than_its_plan_s(make_sim):
    # The token's plan is Basic (/kline once a second); the client believes Professional (20 a
    # second).  Each refusal doubles the /kline interval until the service stops refusing.
    sim = make_sim(dialect="alltick", plan="basic")
    calls = 10

    with RestClient("alltick", sim.token, sim.rest_url, "professional") as client:
        for _ in range(calls):
            client.klines("BTCUSDT", "1m", 2)

    # 0.1, 0.2, 0.4, 0.8 s apart are refused, 1.6 s is not; never learning, every call after the
    # first is refused once.
    assert client.stats.rate_limited <= 5
    assert sim.counters["errors_sent"] == {"605": client.stats.rate_limited}
