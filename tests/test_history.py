"""HistoryLoader: cache first, minimal paging, no forming bar; unit tests and simulator runs."""

from __future__ import annotations

import bisect
import json
import logging
import time

import pytest
from fakeservice import CannedService, alltick_history, alltick_klines, minute_rows

from backtrader_alltick import timeframes
from backtrader_alltick.cache import KlineCache
from backtrader_alltick.clock import SystemClock
from backtrader_alltick.errors import (
    APIError,
    AuthError,
    ConfigError,
    HistoryLimitWarning,
    ProtocolError,
    SymbolNotFound,
    UnsupportedTimeframe,
)
from backtrader_alltick.history import HISTORY_START_TTL_MS, HistoryLoader, cache_namespace
from backtrader_alltick.records import Kline
from backtrader_alltick.symbols import parse_symbol
from backtrader_alltick.transport.rest import RestClient
from backtrader_alltick.wire import get_dialect

MINUTE = 60_000
DAY = 86_400_000
NOW = 1_767_225_630_000  # 2026-01-01 00:00:30 UTC, a Thursday: mid-minute


class FixedClock:
    speed = 1.0

    def __init__(self, now_ms: int) -> None:
        self.now = now_ms

    def now_ms(self) -> int:
        return self.now


class ScriptedService:
    """Serves K-lines from a ground-truth list the way the service pages them (a RestClient stand-in).

    ``klines`` returns the newest ``count`` bars starting at or before ``end_ms``, the
    forming bar included, exactly like AllTick: stocks accept no end time.
    """

    def __init__(self, truth: list[Kline], clock: FixedClock) -> None:
        self.truth = truth
        self.starts = [bar.start for bar in truth]
        self.clock = clock
        self.requests: list[tuple[str, int, int | None]] = []

    def klines(self, inst, period, count, end_ms=None):
        inst = parse_symbol(inst)
        assert count <= 500
        if end_ms is not None:
            assert not inst.is_stock, "AllTick stocks take no end time"
        self.requests.append((period, count, end_ms))
        now = self.clock.now_ms()
        limit = now - 1 if end_ms is None else min(end_ms, now - 1)
        index = bisect.bisect_right(self.starts, limit)
        return self.truth[max(0, index - count) : index]


def minute_bars(symbol: str, first_start: int, count: int, skip=lambda start: False) -> list[Kline]:
    out = []
    start = first_start
    while len(out) < count:
        if not skip(start):
            price = 100.0 + (start // MINUTE) % 97
            out.append(
                Kline(
                    symbol,
                    "1m",
                    start,
                    start + MINUTE,
                    price,
                    price + 1,
                    price - 1,
                    price + 0.5,
                    float(start // MINUTE % 13),
                    0.0,
                )
            )
        start += MINUTE
    return out


def closed(bars: list[Kline], now: int) -> list[Kline]:
    return [bar for bar in bars if bar.end <= now]


@pytest.fixture
def alltick():
    return get_dialect("alltick")


@pytest.fixture
def clock():
    return FixedClock(NOW)


@pytest.fixture
def cache(tmp_path):
    with KlineCache(tmp_path / "klines.sqlite") as opened:
        yield opened


def crypto_truth(count: int) -> list[Kline]:
    # The last bar starts at the minute containing NOW: it is forming.
    last_start = NOW - NOW % MINUTE
    return minute_bars("BTCUSDT", last_start - (count - 1) * MINUTE, count)


def test_hundred_thousand_minutes_cost_two_hundred_requests_cold_and_none_warm(alltick, clock, cache):
    truth = crypto_truth(100_001)
    service = ScriptedService(truth, clock)
    loader = HistoryLoader(service, cache, alltick, clock)

    cold = loader.native_bars("BTCUSDT", "1m", count=100_000).bars
    cold_requests = len(service.requests)
    warm = HistoryLoader(service, cache, alltick, clock).native_bars("BTCUSDT", "1m", count=100_000).bars

    assert cold == closed(truth, NOW)[-100_000:]
    assert cold_requests == 200
    assert warm == cold
    assert len(service.requests) == cold_requests


def test_range_load_pages_back_with_the_fewest_requests(alltick, clock, cache):
    truth = crypto_truth(3_001)
    service = ScriptedService(truth, clock)
    start = truth[1].start

    bars = HistoryLoader(service, cache, alltick, clock).native_bars("BTCUSDT", "1m", start_ms=start).bars

    assert bars == closed(truth, NOW)[1:]
    assert len(bars) == 2_999
    assert len(service.requests) == 6
    assert [count for _, count, _ in service.requests] == [500] * 5 + [499]


def test_forming_bar_is_never_returned_or_cached(alltick, clock, cache):
    truth = crypto_truth(10)
    service = ScriptedService(truth, clock)

    loader = HistoryLoader(service, cache, alltick, clock)
    bars = loader.native_bars("BTCUSDT", "1m", start_ms=truth[0].start).bars

    assert truth[-1].end > NOW
    assert bars == truth[:-1]
    assert all(row["last"] <= NOW for row in cache.info())


def test_end_in_the_middle_of_a_bar_excludes_that_bar(alltick, clock, cache):
    truth = crypto_truth(100)
    service = ScriptedService(truth, clock)
    end = truth[50].start + 30_000

    loader = HistoryLoader(service, cache, alltick, clock)
    bars = loader.native_bars("BTCUSDT", "1m", truth[10].start, end).bars

    assert bars == truth[10:50]
    assert service.requests == [("1m", 40, truth[50].start - 1)]


def test_only_the_missing_ranges_are_requested(alltick, clock, cache):
    truth = crypto_truth(2_001)
    service = ScriptedService(truth, clock)
    loader = HistoryLoader(service, cache, alltick, clock)
    loader.native_bars("BTCUSDT", "1m", truth[1000].start, truth[1100].start)
    service.requests.clear()

    bars = loader.native_bars("BTCUSDT", "1m", truth[900].start, truth[1200].start).bars

    assert bars == truth[900:1200]
    # One request for the newer gap, one for the older; the cached middle is read from disk.
    assert [(count, end) for _, count, end in service.requests] == [
        (100, truth[1200].start - 1),
        (100, truth[1000].start - 1),
    ]


def test_closed_market_range_is_remembered_as_empty(alltick, clock, cache):
    # EURUSD does not trade at the weekend: no bars from Friday 22:00 to Sunday 22:00 UTC.
    friday_close = 1_766_786_400_000  # 2025-12-26 22:00 UTC
    weekend = lambda start: friday_close <= start < friday_close + 2 * DAY  # noqa: E731
    truth = minute_bars("EURUSD", friday_close - 600 * MINUTE, 1200, skip=weekend)
    service = ScriptedService(truth, clock)
    loader = HistoryLoader(service, cache, alltick, clock)

    first = loader.native_bars("EURUSD", "1m", friday_close + 3_600_000, friday_close + 5 * 3_600_000).bars
    requests_after_first = len(service.requests)
    second = loader.native_bars("EURUSD", "1m", friday_close + 3_600_000, friday_close + 5 * 3_600_000).bars

    assert first == second == []
    assert requests_after_first == 1
    assert len(service.requests) == 1


def test_stock_history_beyond_the_newest_page_warns_and_grows_across_runs(alltick, cache):
    clock = FixedClock(NOW)
    truth = minute_bars("AAPL.US", NOW - NOW % MINUTE - 1_499 * MINUTE, 1_500)
    service = ScriptedService(truth, clock)
    loader = HistoryLoader(service, cache, alltick, clock)

    with pytest.warns(
        HistoryLimitWarning, match="^AAPL.US: .* history before .* not available from the service"
    ):
        bars = loader.native_bars("AAPL.US", "1m", start_ms=truth[0].start).bars
        again = loader.native_bars("AAPL.US", "1m", start_ms=truth[0].start).bars

    assert bars == again == truth[-500:-1]
    assert len(service.requests) == 1
    assert service.requests[0][2] is None

    # A later run, 600 minutes on, gets the newest 500 again; the cache keeps both pages.
    clock.now = NOW + 600 * MINUTE
    later_truth = truth + minute_bars("AAPL.US", truth[-1].start + MINUTE, 600)
    later = HistoryLoader(ScriptedService(later_truth, clock), cache, alltick, clock)
    with pytest.warns(HistoryLimitWarning):  # still short of the start asked
        grown = later.native_bars("AAPL.US", "1m", start_ms=truth[0].start).bars
    assert len(grown) == 499 + 499  # each run's newest bar was still forming
    assert grown[:499] == truth[-500:-1]
    assert grown == sorted(set(grown), key=lambda bar: bar.start)


def test_no_cache_loads_the_same_bars_every_time(alltick, clock):
    truth = crypto_truth(800)
    service = ScriptedService(truth, clock)
    loader = HistoryLoader(service, None, alltick, clock)

    first = loader.native_bars("BTCUSDT", "1m", count=700).bars
    second = loader.native_bars("BTCUSDT", "1m", count=700).bars

    assert first == second == closed(truth, NOW)[-700:]
    assert len(service.requests) == 4


def test_count_within_a_range_returns_the_newest(alltick, clock, cache):
    truth = crypto_truth(1_000)
    service = ScriptedService(truth, clock)

    bars = (
        HistoryLoader(service, cache, alltick, clock)
        .native_bars("BTCUSDT", "1m", truth[100].start, truth[900].start, count=50)
        .bars
    )

    assert bars == truth[850:900]
    assert len(service.requests) == 1


def test_progress_reports_each_request_up_to_completion(alltick, clock, cache):
    truth = crypto_truth(1_501)
    service = ScriptedService(truth, clock)
    seen = []

    loader = HistoryLoader(service, cache, alltick, clock)
    loader.native_bars("BTCUSDT", "1m", truth[0].start, on_progress=seen.append)

    assert [p.requests for p in seen] == [1, 2, 3]
    assert [p.bars for p in seen] == [500, 1000, 1500]
    assert seen[-1].fraction == 1.0
    assert all(a.fraction <= b.fraction for a, b in zip(seen, seen[1:]))


def test_bad_arguments_are_rejected_before_any_request(alltick, clock, cache):
    service = ScriptedService([], clock)
    loader = HistoryLoader(service, cache, alltick, clock)

    with pytest.raises(ConfigError, match="start_ms must not be after end_ms"):
        loader.native_bars("BTCUSDT", "1m", NOW, NOW - DAY)
    with pytest.raises(UnsupportedTimeframe, match="AAPL.US"):
        loader.native_bars("AAPL.US", "4h", count=10)
    with pytest.raises(ConfigError, match="count must be 1 or more"):
        loader.native_bars("BTCUSDT", "1m", count=0)
    assert service.requests == []


@pytest.mark.parametrize(("hours_after_close", "final"), [(2, False), (8.5, True)])
def test_a_daily_bar_is_final_when_its_trading_date_ends_not_at_the_session_close(
    alltick, cache, hours_after_close, final
):
    # A Wednesday: the US session closed at 21:00 UTC; after-hours trades of the date may come until
    # midnight New York (05:00 UTC), so only then is that day's bar final.
    now = 1_767_214_800_000 + int(hours_after_close * 3_600_000)
    clock = FixedClock(now)
    inst = parse_symbol("AAPL.US")
    starts = []
    day = timeframes.bar_start("1d", 1_767_214_800_000 - 1, inst.market)
    for _ in range(5):
        starts.insert(0, day)
        day = timeframes.bar_start("1d", day - 1, inst.market)
    truth = [
        Kline("AAPL.US", "1d", s, timeframes.bar_end("1d", s, inst.market), 1, 2, 0.5, 1.5, 10, 0)
        for s in starts
    ]
    service = ScriptedService(truth, clock)

    bars = HistoryLoader(service, cache, alltick, clock).native_bars("AAPL.US", "1d", count=3).bars

    assert truth[-1].end == 1_767_214_800_000 and truth[-1].end <= now
    assert bars == (truth[-3:] if final else truth[-4:-1])


# -- Against the simulator, both dialects ------------------------------------------------------


def sim_loader(sim, cache, **settings):
    settings.setdefault("backoff_initial", 0.001)
    settings.setdefault("backoff_cap", 0.005)
    settings.setdefault("retry_after_cap", 0.01)
    rest = RestClient(sim.dialect, sim.token, sim.rest_url, sim.plan, **settings)
    return HistoryLoader(rest, cache, get_dialect(sim.dialect), sim.clock)


def requests_made(sim) -> int:
    return sim.counters["rest_requests"]


def kline_ends_sent(sim) -> list[int | None]:
    """The end time of every K-line request the simulator received, in ms, as the dialect spelled it."""
    out = []
    for entry in sim.journal.entries:
        if entry.kind != "rest" or not entry.path.endswith("kline"):
            continue
        if sim.dialect == "alltick":
            end = json.loads(entry.params["query"])["data"]["kline_timestamp_end"]
            out.append(end * 1000 if end else None)
        else:
            out.append(int(entry.params["et"]) if "et" in entry.params else None)
    return out


def assert_same_bars(got: list[Kline], truth: list[Kline]) -> None:
    """OHLC and times exactly; volume and turnover as the wire rounds them (6 decimals).

    The wire carries a bar's start only.  An intraday bar ends where the next starts on both sides;
    a daily bar's ``end`` is the client's close stamp (the session's close, which dates it) and
    the simulator's end of the trading date (when it is final): compared through the date.
    """

    def key(bar: Kline, end: int) -> tuple:
        return bar.symbol, bar.period, bar.start, end, bar.open, bar.high, bar.low, bar.close

    daily = bool(got) and got[0].period[-1] not in "mh"
    assert [key(b, parse_symbol(b.symbol).market.close_date(b.end) if daily else b.end) for b in got] == [
        key(b, parse_symbol(b.symbol).market.close_date(b.end) if daily else b.end) for b in truth
    ]
    assert [b.volume for b in got] == pytest.approx([b.volume for b in truth], abs=1e-6)
    assert [b.turnover for b in got] == pytest.approx([b.turnover for b in truth], abs=1e-6)


def assert_clean(bars, sim):
    now = sim.clock.now_ms()
    assert bars, "expected bars"
    assert all(bar.end <= now for bar in bars), "a forming bar was returned"
    starts = [bar.start for bar in bars]
    assert starts == sorted(set(starts)), "bars must be sorted and unique"


@pytest.mark.parametrize(
    ("symbol", "period", "count"),
    [
        ("BTCUSDT", "1m", 1_200),
        ("EURUSD", "5m", 700),
        ("GOLD", "1h", 300),
        ("AAPL.US", "1m", 400),
        ("AAPL.US", "1d", 60),
        ("700.HK", "30m", 200),
    ],
)
def test_history_equals_ground_truth(sim, cache, symbol, period, count):
    loader = sim_loader(sim, cache)

    bars = loader.native_bars(symbol, period, count=count).bars

    assert len(bars) == count
    assert_clean(bars, sim)
    assert_same_bars(bars, sim.klines(symbol, period, bars[0].start, bars[-1].end))
    loader.rest.close()


def test_second_identical_load_makes_no_request(sim, cache):
    loader = sim_loader(sim, cache)
    end = sim.clock.now_ms() - 3_600_000
    start = end - 3 * DAY
    first = loader.native_bars("BTCUSDT", "5m", start, end).bars
    cold = requests_made(sim)

    again = sim_loader(sim, cache).native_bars("BTCUSDT", "5m", start, end).bars

    assert cold == 2  # 864 bars, two pages of at most 500
    assert again == first
    assert requests_made(sim) == cold
    assert_same_bars(first, sim.klines("BTCUSDT", "5m", start, end - 5 * MINUTE + 1))


def test_paging_walks_back_from_the_newest_closed_bar(sim, cache):
    loader = sim_loader(sim, cache)

    bars = loader.native_bars("ETHUSDT", "1m", count=1_500).bars

    ends = kline_ends_sent(sim)
    assert len(ends) == 3
    assert all(end is not None for end in ends)
    assert ends == sorted(ends, reverse=True)
    assert ends[1] < bars[1000].start <= ends[0]  # each page ends where the newer one began
    assert_clean(bars, sim)


def test_five_thousand_minutes_take_ten_requests_cold_and_none_warm(sim, cache):
    bars = sim_loader(sim, cache).native_bars("BTCUSDT", "1m", count=5_000).bars
    cold = requests_made(sim)

    again = (
        sim_loader(sim, cache).native_bars("BTCUSDT", "1m", start_ms=bars[0].start, end_ms=bars[-1].end).bars
    )

    assert cold == 10
    assert again == bars
    assert requests_made(sim) == cold
    assert_clean(bars, sim)


def test_stock_range_older_than_the_newest_page_warns_once_and_returns_what_exists(alltick_sim, cache):
    loader = sim_loader(alltick_sim, cache)
    end = alltick_sim.clock.now_ms()
    start = end - 10 * DAY

    with pytest.warns(HistoryLimitWarning) as caught:
        bars = loader.native_bars("AAPL.US", "1m", start, end).bars
        again = loader.native_bars("AAPL.US", "1m", start, end - 60 * MINUTE).bars

    assert 400 <= len(bars) <= 500  # the newest 500, less a forming bar if one has started
    assert_same_bars(bars, alltick_sim.klines("AAPL.US", "1m", bars[0].start, bars[-1].end))
    assert again == [bar for bar in bars if bar.end <= end - 60 * MINUTE]
    assert requests_made(alltick_sim) == 1
    assert kline_ends_sent(alltick_sim) == [None]  # stocks take no end time on AllTick
    said = [w for w in caught if "not available from the service" in str(w.message)]
    assert len(said) == 2  # once per load


def test_rate_limit_storm_during_a_load_is_waited_out(sim, cache):
    sim.faults.rate_limit_burst = 5
    loader = sim_loader(sim, cache)

    bars = loader.native_bars("BTCUSDT", "1m", count=1_000).bars

    assert_same_bars(bars, sim.klines("BTCUSDT", "1m", bars[0].start, bars[-1].end))
    assert loader.rest.stats.rate_limited == 5


def test_server_error_storm_raises_and_leaves_the_cache_intact(sim, cache):
    loader = sim_loader(sim, cache, max_retries=2)
    end = sim.clock.now_ms() - DAY
    kept = loader.native_bars("BTCUSDT", "1m", end - 300 * MINUTE, end).bars
    info_before = cache.info()

    sim.faults.server_error_burst = 1_000
    with pytest.raises(APIError, match="gave up after 3 attempts"):
        loader.native_bars("BTCUSDT", "1m", end - 2_000 * MINUTE, end)

    sim.faults.server_error_burst = 0
    before = requests_made(sim)
    assert cache.info() == info_before
    assert loader.native_bars("BTCUSDT", "1m", end - 300 * MINUTE, end).bars == kept
    assert requests_made(sim) == before


def test_wrong_token_raises_auth_error_with_one_request(sim, cache):
    rest = RestClient(sim.dialect, "not-the-token-123456", sim.rest_url, sim.plan)
    loader = HistoryLoader(rest, cache, get_dialect(sim.dialect), sim.clock)

    with pytest.raises(AuthError):
        loader.native_bars("BTCUSDT", "1m", count=2_000)

    assert requests_made(sim) == 1
    assert cache.info() == []


def test_unknown_symbol_raises_symbol_not_found(sim, cache):
    with pytest.raises(SymbolNotFound, match="NVDA"):
        sim_loader(sim, cache).native_bars("NVDA.US", "1m", count=10)


def test_load_without_cache_equals_cached_load(sim, cache):
    cached = sim_loader(sim, cache).native_bars("EURUSD", "30m", count=600).bars
    uncached = (
        sim_loader(sim, None)
        .native_bars("EURUSD", "30m", start_ms=cached[0].start, end_ms=cached[-1].end)
        .bars
    )

    assert uncached == cached


def test_bars_of_another_host_can_be_cached_apart_from_the_real_service(alltick_sim, cache):
    namespace = cache_namespace(get_dialect("alltick"), alltick_sim.rest_url)
    rest = RestClient("alltick", alltick_sim.token, alltick_sim.rest_url, "unlimited")
    HistoryLoader(rest, cache, get_dialect("alltick"), alltick_sim.clock, namespace).native_bars(
        "BTCUSDT", "1m", count=10
    )
    sim_loader(alltick_sim, cache).native_bars("ETHUSDT", "1m", count=10)

    host = alltick_sim.rest_url.split("://")[1]
    assert [(row["dialect"], row["symbol"]) for row in cache.info()] == [
        ("alltick", "ETHUSDT"),
        (f"alltick@{host}", "BTCUSDT"),
    ]
    assert cache_namespace(get_dialect("alltick"), "https://quote.alltick.co/") == "alltick"
    assert cache_namespace(get_dialect("itick"), "https://api.itick.org") == "itick"


def test_explicit_namespace_lets_two_identical_simulators_share_bars(make_sim, cache):
    first, second = make_sim(dialect="alltick"), make_sim(dialect="alltick")
    end = first.clock.now_ms() - DAY

    def loader(sim):
        rest = RestClient("alltick", sim.token, sim.rest_url, "unlimited")
        return HistoryLoader(rest, cache, get_dialect("alltick"), sim.clock, namespace="alltick-sim-seed1")

    bars = loader(first).native_bars("EURUSD", "5m", end - DAY, end).bars
    again = loader(second).native_bars("EURUSD", "5m", end - DAY, end).bars

    assert again == bars
    assert requests_made(second) == 0


def test_an_empty_answer_is_not_remembered_as_no_history(alltick, clock, cache, caplog):
    truth = crypto_truth(300)
    service = ScriptedService([], clock)  # say, a symbol the plan does not cover yet
    assert HistoryLoader(service, cache, alltick, clock).native_bars("BTCUSDT", "1m", count=300).bars == []

    service.truth, service.starts = truth, [bar.start for bar in truth]  # the plan now covers it
    bars = HistoryLoader(service, cache, alltick, clock).native_bars("BTCUSDT", "1m", count=300).bars

    assert bars == closed(truth, NOW)[-300:]
    assert "returned no bars" in caplog.text


# -- Bad answers from a service of the tests' own ---------------------------------------------

TOKEN = "canned-token-0123456789"


def canned_loader(service: CannedService, cache: KlineCache | None) -> HistoryLoader:
    rest = RestClient("alltick", TOKEN, service.url, "unlimited", backoff_initial=0.001, backoff_cap=0.002)
    return HistoryLoader(rest, cache, get_dialect("alltick"), SystemClock())


@pytest.mark.parametrize(
    ("field", "raw"),
    [
        ("timestamp", "-100000000000"),  # -1e11 s: before year 0
        ("timestamp", "-1e20"),
        ("timestamp", "1e400"),
        ("timestamp", "7258118400"),  # 2200
        ("open_price", "NaN"),
        ("high_price", "Infinity"),
        ("low_price", "-1"),
        ("close_price", "0"),
        ("volume", "-3"),
        ("turnover", "-Infinity"),
    ],
)
def test_a_page_of_impossible_bars_is_a_protocol_error_and_poisons_nothing(cache, field, raw):
    bad = True

    def answer(request):
        if not bad:
            return alltick_history(request)
        text = json.dumps(alltick_klines(minute_rows(4, **{field: "RAW"})))
        return 200, text.replace('"RAW"', raw).encode()

    with CannedService(answer) as service:
        with pytest.raises(ProtocolError, match=field):
            canned_loader(service, cache).native_bars("BTCUSDT", "1m", count=3)
        assert cache.info() == []
        assert cache.covered("alltick", "BTCUSDT", "1m", 0, 2**62) == []

        bad = False
        bars = canned_loader(service, cache).native_bars("BTCUSDT", "1m", count=3).bars

    assert len(bars) == 3
    assert [bar.end - bar.start for bar in bars] == [MINUTE] * 3
    assert bars[-1].end <= time.time() * 1000


def test_one_short_answer_does_not_hide_history_from_a_later_load(cache):
    short = {"answers": 1}

    def answer(request):
        if short["answers"]:
            short["answers"] -= 1
            return alltick_history(request, depth=3)  # a vendor incident: 3 bars where 51 were asked
        return alltick_history(request)

    with CannedService(answer) as service:
        during = canned_loader(service, cache).native_bars("BTCUSDT", "1m", count=50).bars
        after = canned_loader(service, cache).native_bars("BTCUSDT", "1m", count=50).bars

    assert 2 <= len(during) <= 3  # the newest of the three may still be forming
    assert len(after) == 50
    assert after[-len(during) :] == during
    assert [b.start for b in after] == list(range(after[0].start, after[-1].start + MINUTE, MINUTE))


def test_a_short_page_is_believed_for_a_while_then_asked_again(alltick, cache, caplog):
    caplog.set_level(logging.INFO, logger="backtrader_alltick.history")
    clock = FixedClock(NOW)
    truth = minute_bars("BTCUSDT", NOW - NOW % MINUTE - 999 * MINUTE, 1_000 + HISTORY_START_TTL_MS // MINUTE)
    today = [bar for bar in truth if bar.start <= NOW][-60:]
    service = ScriptedService(today, clock)  # the service offers only its newest hour today
    loader = HistoryLoader(service, cache, alltick, clock)

    first = loader.native_bars("BTCUSDT", "1m", count=200).bars
    again = loader.native_bars("BTCUSDT", "1m", count=200).bars
    asked = len(service.requests)
    service.truth, service.starts = truth, [bar.start for bar in truth]  # the history is back
    clock.now += HISTORY_START_TTL_MS
    later = loader.native_bars("BTCUSDT", "1m", count=200).bars

    assert first == again == closed(today, NOW)
    assert asked == 1  # the second load believed the short page
    assert later == closed(truth, clock.now)[-200:]
    assert "returned no bars" not in caplog.text


def test_a_count_beyond_the_bars_since_1970_is_refused_before_any_request(alltick, clock, cache):
    service = ScriptedService([], clock)
    loader = HistoryLoader(service, cache, alltick, clock)

    with pytest.raises(ConfigError, match=r"count must be at most 29,4\d\d,\d\d\d, the 1m bars since 1970"):
        loader.native_bars("BTCUSDT", "1m", count=1_000_000_000)
    assert service.requests == []


def test_paging_stops_where_the_service_has_nothing_older(cache):
    with CannedService(lambda request: alltick_history(request, depth=700)) as service:
        bars = canned_loader(service, cache).native_bars("BTCUSDT", "1m", count=20_000).bars
        asked = len(service.requests)
        again = canned_loader(service, cache).native_bars("BTCUSDT", "1m", count=20_000).bars

    assert 698 <= len(bars) <= 700  # the newest may be forming, a minute may turn meanwhile
    assert asked == 2  # 500, then the 200 that exist: a short page ends the walk
    assert again[: len(bars) - 2] == bars[: len(bars) - 2]
    assert len(service.requests) - asked <= 3  # the warm run only asks past the oldest bar and the newest


def test_a_short_newest_stock_page_is_asked_again_after_a_while(alltick, cache):
    clock = FixedClock(NOW)
    truth = minute_bars("AAPL.US", NOW - NOW % MINUTE - 999 * MINUTE, 1_000 + HISTORY_START_TTL_MS // MINUTE)
    today = [bar for bar in truth if bar.start <= NOW][-40:]
    service = ScriptedService(today, clock)  # a vendor incident: the newest 40 bars where 500 exist
    loader = HistoryLoader(service, cache, alltick, clock)

    first = loader.native_bars("AAPL.US", "1m", count=300).bars
    again = loader.native_bars("AAPL.US", "1m", count=300).bars
    asked = len(service.requests)
    service.truth, service.starts = truth, [bar.start for bar in truth]
    clock.now += HISTORY_START_TTL_MS
    later = loader.native_bars("AAPL.US", "1m", count=300).bars

    assert first == again == closed(today, NOW)
    assert asked == 1
    assert later == closed(truth, clock.now)[-300:]


# -- The service's clock decides, not ours ---------------------------------------------------------


def test_without_a_date_the_newest_bar_of_a_page_waits_for_a_later_page(alltick, cache):
    from backtrader_alltick.clock import ServiceClock

    service_clock = FixedClock(NOW)
    ours = ServiceClock(FixedClock(NOW + 40_000))  # our clock 40 s ahead; no Date header to learn from
    service = ScriptedService(crypto_truth(300), service_clock)

    bars = HistoryLoader(service, cache, alltick, ours).native_bars("BTCUSDT", "1m", count=10).bars

    # The page's newest bar is still forming at the service: neither handed out nor cached.
    assert bars == closed(service.truth, NOW)[-10:]
    assert cache.get("alltick", "BTCUSDT", "1m", 0, 2**62)[-1] == bars[-1]
    assert cache.missing("alltick", "BTCUSDT", "1m", 0, NOW)[-1] == (bars[-1].end, NOW)

    service_clock.now = NOW + 60_000  # a later page shows a newer bar: the one before it has closed
    ours.base.now = NOW + 110_000  # 70 s later by ours: the service has surely started the next minute
    later = HistoryLoader(service, cache, alltick, ours).native_bars("BTCUSDT", "1m", count=10).bars

    assert later == closed(service.truth, NOW + 60_000)[-10:]
