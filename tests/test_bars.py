from datetime import datetime, timezone

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backtrader_alltick import timeframes as tf
from backtrader_alltick.bars import BarBuilder, SeenTrades, combine, combine_closed
from backtrader_alltick.markets import CRYPTO, MINUTE_MS, US_STOCKS
from backtrader_alltick.records import Kline, Tick

NATIVES = ("1m", "5m", "15m", "30m", "1h", "1d", "1w", "1M")
GRACE = 250


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp() * 1000)


def spec(timeframe: int, compression: int):
    return tf.resolve(timeframe, compression, NATIVES, "TEST")


def minutes(compression: int):
    return spec(tf.MINUTES, compression)


def builder(market=CRYPTO, bar_spec=None, **kwargs):
    delivered: list[Kline] = []
    made = BarBuilder("BTCUSDT", bar_spec or minutes(1), market, delivered.append, grace_ms=GRACE, **kwargs)
    return made, delivered


def tick(when: str | int, price: float, volume: float = 1.0, seq: int | None = None) -> Tick:
    time_ms = ms(when) if isinstance(when, str) else when
    return Tick("BTCUSDT", time_ms, price, volume, turnover=price * volume, seq=seq)


def ohlcv(bar: Kline) -> tuple:
    return (bar.start, bar.end, bar.open, bar.high, bar.low, bar.close, bar.volume)


# --- BarBuilder: closing on the timer ------------------------------------------------------------


def test_builder_bar_closes_at_boundary_plus_grace_without_a_next_tick():
    made, delivered = builder()
    for second, price in ((5, 10.0), (20, 12.0), (40, 9.0), (55, 11.0)):
        made.add_tick(tick(f"2023-11-14 15:13:{second:02d}", price, seq=second))

    made.on_timer(ms("2023-11-14 15:14:00") + GRACE - 1)
    assert delivered == []
    assert made.next_deadline() == ms("2023-11-14 15:14:00") + GRACE

    made.on_timer(ms("2023-11-14 15:14:00") + GRACE)
    assert delivered == [
        Kline(
            "BTCUSDT",
            "1m",
            ms("2023-11-14 15:13:00"),
            ms("2023-11-14 15:14:00"),
            10.0,
            12.0,
            9.0,
            11.0,
            4.0,
            42.0,
        )
    ]
    assert made.next_deadline() is None
    assert (made.stats.ticks, made.stats.bars) == (4, 1)


def test_builder_timer_called_twice_delivers_each_bar_once():
    made, delivered = builder()
    made.add_tick(tick("2023-11-14 15:13:05", 10.0, seq=1))

    made.on_timer(ms("2023-11-14 15:20:00"))
    made.on_timer(ms("2023-11-14 15:20:00"))

    assert len(delivered) == 1


def test_builder_reordered_ticks_inside_the_window_keep_open_and_close_by_exchange_time():
    made, delivered = builder()
    made.add_tick(tick("2023-11-14 15:13:40", 9.0, seq=3))
    made.add_tick(tick("2023-11-14 15:13:55", 11.0, seq=4))
    made.add_tick(tick("2023-11-14 15:13:05", 10.0, seq=1))
    made.add_tick(tick("2023-11-14 15:14:00.100", 13.0, seq=5))  # next bar arrives before the timer
    made.add_tick(tick("2023-11-14 15:13:20", 12.0, seq=2))  # ...and a late-arriving one, within grace

    made.on_timer(ms("2023-11-14 15:14:00") + GRACE)

    assert [ohlcv(bar) for bar in delivered] == [
        (ms("2023-11-14 15:13:00"), ms("2023-11-14 15:14:00"), 10.0, 12.0, 9.0, 11.0, 4.0)
    ]
    assert made.stats.late_ticks == 0


def test_builder_trades_in_one_millisecond_are_ordered_by_seq():
    made, delivered = builder()
    made.add_tick(tick("2023-11-14 15:13:05", 10.5, seq=8))
    made.add_tick(tick("2023-11-14 15:13:05", 10.0, seq=7))
    made.add_tick(tick("2023-11-14 15:13:05", 10.2, seq=9))

    made.on_timer(ms("2023-11-14 15:15:00"))

    assert (delivered[0].open, delivered[0].close) == (10.0, 10.2)


def test_builder_late_tick_is_dropped_counted_and_never_changes_a_delivered_bar():
    made, delivered = builder()
    made.add_tick(tick("2023-11-14 15:13:05", 10.0, seq=1))
    made.on_timer(ms("2023-11-14 15:14:00") + GRACE)
    first = delivered[0]

    made.add_tick(tick("2023-11-14 15:13:59", 99.0, volume=5.0, seq=2))
    made.add_tick(tick("2023-11-14 15:14:10", 11.0, seq=3))
    made.on_timer(ms("2023-11-14 15:15:00") + GRACE)

    assert delivered[0] is first
    assert [ohlcv(bar) for bar in delivered[1:]] == [
        (ms("2023-11-14 15:14:00"), ms("2023-11-14 15:15:00"), 11.0, 11.0, 11.0, 11.0, 1.0)
    ]
    assert made.stats.late_ticks == 1


def test_builder_tick_for_a_slot_the_timer_passed_without_trades_is_late():
    made, delivered = builder()
    made.on_timer(ms("2023-11-14 15:14:00") + GRACE)

    made.add_tick(tick("2023-11-14 15:13:30", 10.0, seq=1))
    made.on_timer(ms("2023-11-14 15:20:00"))

    assert delivered == []
    assert made.stats.late_ticks == 1


# --- BarBuilder: duplicates -------------------------------------------------------------------------


def test_builder_drops_a_repeated_seq_even_with_other_fields():
    made, delivered = builder()
    made.add_tick(tick("2023-11-14 15:13:05", 10.0, seq=41))
    made.add_tick(tick("2023-11-14 15:13:05", 10.0, seq=41))
    made.add_tick(tick("2023-11-14 15:13:06", 10.0, seq=42))

    made.on_timer(ms("2023-11-14 15:15:00"))

    assert delivered[0].volume == 2.0
    assert made.stats.duplicates == 1


def test_builder_without_seq_drops_identical_trades_but_keeps_same_millisecond_different_trades():
    made, delivered = builder()
    made.add_tick(tick("2023-11-14 15:13:05", 10.0, volume=1.0))
    made.add_tick(tick("2023-11-14 15:13:05", 10.0, volume=1.0))  # a resent frame
    made.add_tick(tick("2023-11-14 15:13:05", 10.0, volume=2.0))  # a real second trade

    made.on_timer(ms("2023-11-14 15:15:00"))

    assert delivered[0].volume == 3.0
    assert made.stats.duplicates == 1


def test_builder_dedup_memory_is_a_bounded_ring():
    made, delivered = builder(dedup_size=2)
    for seq in (1, 2, 3, 1):  # seq 1 fell out of the ring before it came back
        made.add_tick(tick("2023-11-14 15:13:05", 10.0, seq=seq))
    assert len(made._seen) == 2

    made.on_timer(ms("2023-11-14 15:15:00"))

    assert delivered[0].volume == 4.0
    assert made.stats.duplicates == 0


def test_builder_dedup_memory_holds_only_the_bars_still_forming_over_a_long_run():
    # A quiet symbol of a universe: one trade every 5 s for ten hours, a timer every few trades.
    made, delivered = builder()
    start, sizes = ms("2023-11-14 00:00:00"), []
    for index in range(7200):
        at = start + index * 5_000
        made.add_tick(tick(at, 10.0, seq=index))
        made.add_tick(tick(at, 10.0, seq=index))  # the stream repeats every frame at once
        if index % 3 == 2:
            made.on_timer(at)
            sizes.append(len(made._seen))

    assert len(delivered) == 599 and made.stats.duplicates == 7200
    # The trades of the bar forming and of the one in its grace, and the newest 16 whatever their age.
    assert max(sizes) <= 2 * 12 + 16


def test_seen_trades_forget_before_keeps_newer_trades_and_still_drops_their_repeats():
    seen = SeenTrades(16)
    ticks = [tick(ms("2023-11-14 15:13:00") + offset, 10.0, seq=offset) for offset in (0, 10, 20, 15, 30)]
    for one in ticks:
        seen.is_repeat(one)

    seen.forget_before(ms("2023-11-14 15:13:00") + 20)

    assert len(seen) == 3  # 20, then 15 (reordered behind it, forgotten later), then 30
    assert seen.is_repeat(ticks[2]) and seen.is_repeat(ticks[4])
    assert not seen.is_repeat(ticks[0])


# --- BarBuilder: the history -> live seam -----------------------------------------------------------


def test_builder_seam_ignores_trades_already_in_rest_bars_and_the_first_bar_is_complete():
    made, delivered = builder()
    # Buffered while REST was backfilling up to the bar that ends 15:13.
    made.add_tick(tick("2023-11-14 15:12:30", 50.0, seq=1))
    made.add_tick(tick("2023-11-14 15:12:59.999", 51.0, seq=2))
    made.start_after(ms("2023-11-14 15:13:00"), last_close=51.0)
    made.add_tick(tick("2023-11-14 15:12:40", 52.0, seq=3))  # replayed from the buffer after the seam
    made.add_tick(tick("2023-11-14 15:13:00", 53.0, seq=4))

    made.on_timer(ms("2023-11-14 15:14:00") + GRACE)

    assert [ohlcv(bar) for bar in delivered] == [
        (ms("2023-11-14 15:13:00"), ms("2023-11-14 15:14:00"), 53.0, 53.0, 53.0, 53.0, 1.0)
    ]
    assert made.stats.before_seam == 1


# --- BarBuilder: empty bars ---------------------------------------------------------------------------


def test_builder_skips_minutes_without_trades_by_default():
    made, delivered = builder()
    made.add_tick(tick("2023-11-14 15:13:05", 10.0, seq=1))
    made.add_tick(tick("2023-11-14 15:16:05", 11.0, seq=2))

    made.on_timer(ms("2023-11-14 15:20:00"))

    assert [bar.end for bar in delivered] == [ms("2023-11-14 15:14:00"), ms("2023-11-14 15:17:00")]


def test_builder_emit_empty_draws_flat_bars_at_the_previous_close():
    made, delivered = builder(emit_empty=True)
    made.add_tick(tick("2023-11-14 15:13:05", 10.0, seq=1))
    made.add_tick(tick("2023-11-14 15:13:06", 10.5, seq=2))
    made.add_tick(tick("2023-11-14 15:16:05", 11.0, seq=3))

    made.on_timer(ms("2023-11-14 15:17:00") + GRACE)

    assert [ohlcv(bar) for bar in delivered] == [
        (ms("2023-11-14 15:13:00"), ms("2023-11-14 15:14:00"), 10.0, 10.5, 10.0, 10.5, 2.0),
        (ms("2023-11-14 15:14:00"), ms("2023-11-14 15:15:00"), 10.5, 10.5, 10.5, 10.5, 0.0),
        (ms("2023-11-14 15:15:00"), ms("2023-11-14 15:16:00"), 10.5, 10.5, 10.5, 10.5, 0.0),
        (ms("2023-11-14 15:16:00"), ms("2023-11-14 15:17:00"), 11.0, 11.0, 11.0, 11.0, 1.0),
    ]
    assert made.stats.empty_bars == 2


def test_builder_emit_empty_closes_on_the_timer_and_never_outside_market_hours():
    made, delivered = builder(market=US_STOCKS, emit_empty=True)
    made.start_after(ms("2023-11-14 20:58:00"), last_close=100.0)  # 15:58 New York
    made.add_tick(tick("2023-11-14 20:58:10", 101.0, seq=1))

    made.on_timer(ms("2023-11-15 03:00:00"))

    assert [(bar.end, bar.close, bar.volume) for bar in delivered] == [
        (ms("2023-11-14 20:59:00"), 101.0, 1.0),
        (ms("2023-11-14 21:00:00"), 101.0, 0.0),  # 15:59-16:00, the last minute of the session
    ]
    # The next empty bar is the first minute of the next session, 09:30 New York.
    assert made.next_deadline() == ms("2023-11-15 14:31:00") + GRACE


def test_builder_emit_empty_draws_nothing_before_any_price_is_known():
    made, delivered = builder(emit_empty=True)

    made.on_timer(ms("2023-11-14 15:20:00"))

    assert delivered == []
    assert made.next_deadline() is None


# --- BarBuilder: longer bars -----------------------------------------------------------------------------


def test_builder_three_minute_bars_sit_on_the_epoch_grid():
    made, delivered = builder(bar_spec=minutes(3))
    made.add_tick(tick("2023-11-14 15:13:05", 10.0, seq=1))  # 15:12-15:15
    made.add_tick(tick("2023-11-14 15:14:59", 12.0, seq=2))
    made.add_tick(tick("2023-11-14 15:15:00", 11.0, seq=3))  # 15:15-15:18

    made.on_timer(ms("2023-11-14 15:18:00") + GRACE)

    assert [(bar.period, bar.start, bar.end, bar.open, bar.close) for bar in delivered] == [
        ("3m", ms("2023-11-14 15:12:00"), ms("2023-11-14 15:15:00"), 10.0, 12.0),
        ("3m", ms("2023-11-14 15:15:00"), ms("2023-11-14 15:18:00"), 11.0, 11.0),
    ]


def test_builder_hourly_bars_close_on_the_hour():
    made, delivered = builder(bar_spec=minutes(60))
    made.add_tick(tick("2023-11-14 15:01:00", 10.0, seq=1))
    made.add_tick(tick("2023-11-14 15:59:59", 9.0, seq=2))

    made.on_timer(ms("2023-11-14 15:59:59"))
    assert delivered == []
    made.on_timer(ms("2023-11-14 16:00:00") + GRACE)

    assert [(bar.period, bar.end, bar.low) for bar in delivered] == [("1h", ms("2023-11-14 16:00:00"), 9.0)]


@pytest.mark.parametrize(
    ("day", "close_utc", "midnight_utc"),
    [("2023-11-14", "21:00:00", "2023-11-15 05:00:00"), ("2023-07-14", "20:00:00", "2023-07-15 04:00:00")],
)
def test_builder_daily_bars_carry_the_new_york_close_and_close_when_the_date_ends(
    day, close_utc, midnight_utc
):
    made, delivered = builder(market=US_STOCKS, bar_spec=spec(tf.DAYS, 1))
    made.add_tick(tick(f"{day} 14:45:00", 100.0, seq=1))
    made.add_tick(tick(f"{day} 19:30:00", 104.0, seq=2))
    close, date_ends = ms(f"{day} {close_utc}"), ms(midnight_utc)

    made.on_timer(date_ends + GRACE - 1)
    assert delivered == []
    made.on_timer(date_ends + GRACE)

    assert [(bar.period, bar.start, bar.end, bar.open, bar.close) for bar in delivered] == [
        ("1d", made.market.day_start(close), close, 100.0, 104.0)
    ]


def test_builder_daily_bar_keeps_after_hours_trades_of_its_date():
    made, delivered = builder(market=US_STOCKS, bar_spec=spec(tf.DAYS, 1))
    made.add_tick(tick("2023-11-14 15:00:00", 100.0, seq=1))
    made.add_tick(tick("2023-11-14 21:00:00.050", 120.0, seq=2))  # 16:00:00.050 New York: a late print

    made.on_timer(ms("2023-11-15 05:00:00") + GRACE)

    assert [(bar.close, bar.high, bar.end) for bar in delivered] == [(120.0, 120.0, ms("2023-11-14 21:00"))]


def test_builder_discard_drops_the_forming_bar_instead_of_delivering_it():
    made, delivered = builder()
    made.add_tick(tick("2023-11-14 15:13:05", 10.0, seq=1))

    assert made.discard() == 1
    made.on_timer(ms("2023-11-14 15:20:00"))
    assert delivered == []


# --- combine ------------------------------------------------------------------------------------------------


def minute_bar(start: int, open_: float, high: float, low: float, close: float, volume: float) -> Kline:
    return Kline("BTCUSDT", "1m", start, start + MINUTE_MS, open_, high, low, close, volume, volume * close)


@st.composite
def minute_bars(draw):
    offsets = draw(st.lists(st.integers(0, 600), min_size=1, max_size=80, unique=True))
    base = ms("2023-11-14 15:00:00")
    out = []
    for offset in sorted(offsets):
        prices = draw(st.lists(st.integers(1, 400), min_size=4, max_size=4))
        low, high = min(prices), max(prices)
        out.append(
            minute_bar(
                base + offset * MINUTE_MS,
                prices[0] / 4,
                high / 4,
                low / 4,
                prices[3] / 4,
                float(draw(st.integers(0, 50))),
            )
        )
    return out


@settings(max_examples=60, deadline=None)
@given(klines=minute_bars(), compression=st.sampled_from([2, 3, 5, 15, 60, 120]))
def test_combine_equals_pandas_resample_of_minute_bars(klines, compression):
    frame = pd.DataFrame(
        {
            name: [getattr(bar, name) for bar in klines]
            for name in ("open", "high", "low", "close", "volume", "turnover")
        },
        index=pd.to_datetime([bar.start for bar in klines], unit="ms", utc=True),
    )
    resampler = frame.resample(f"{compression}min", label="right", closed="left", origin="epoch")
    expected = resampler.agg(
        {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum", "turnover": "sum"}
    )
    expected = expected[resampler["open"].count() > 0]

    combined = combine(klines, minutes(compression), CRYPTO)

    assert [bar.end for bar in combined] == [int(stamp.timestamp() * 1000) for stamp in expected.index]
    assert [(bar.open, bar.high, bar.low, bar.close, bar.volume, bar.turnover) for bar in combined] == [
        tuple(row)
        for row in expected[["open", "high", "low", "close", "volume", "turnover"]].itertuples(index=False)
    ]


def test_combine_labels_and_stamps_synthetic_bars():
    klines = [minute_bar(ms(f"2023-11-14 15:{m:02d}:00"), 1.0, 2.0, 0.5, 1.5, 1.0) for m in (12, 13, 14, 15)]

    combined = combine(klines, minutes(3), CRYPTO)

    assert [(bar.period, bar.start, bar.end, bar.volume) for bar in combined] == [
        ("3m", ms("2023-11-14 15:12:00"), ms("2023-11-14 15:15:00"), 3.0),
        ("3m", ms("2023-11-14 15:15:00"), ms("2023-11-14 15:18:00"), 1.0),
    ]


def test_combine_closed_drops_the_forming_synthetic_bar():
    klines = [minute_bar(ms(f"2023-11-14 15:{m:02d}:00"), 1.0, 2.0, 0.5, 1.5, 1.0) for m in (12, 13, 14, 15)]

    closed = combine_closed(klines, minutes(3), CRYPTO, now_ms=ms("2023-11-14 15:17:00"))

    assert [bar.end for bar in closed] == [ms("2023-11-14 15:15:00")]


def test_combine_two_hours_from_hourly_bars():
    hourly = [
        Kline(
            "AAPL.US",
            "1h",
            ms(f"2023-11-14 {h:02d}:00:00"),
            ms(f"2023-11-14 {h + 1:02d}:00:00"),
            10.0 + h,
            11.0 + h,
            9.0 + h,
            10.5 + h,
            100.0,
        )
        for h in (14, 15, 16)
    ]

    combined = combine(hourly, minutes(120), US_STOCKS)

    assert [(bar.period, bar.end, bar.open, bar.close, bar.volume) for bar in combined] == [
        ("2h", ms("2023-11-14 16:00:00"), 24.0, 25.5, 200.0),
        ("2h", ms("2023-11-14 18:00:00"), 26.0, 26.5, 100.0),
    ]


def test_combine_three_days_ends_at_the_last_slots_session_close_even_when_it_did_not_trade():
    def day_bar(day: str, close: float) -> Kline:
        start = US_STOCKS.day_start(ms(f"{day} 15:00:00"))
        return Kline("AAPL.US", "1d", start, ms(f"{day} 21:00:00"), close, close, close, close, 10.0)

    # Day buckets count calendar days from 1970-01-01: Nov 13-15 and Nov 16-18 are groups.
    days = [
        day_bar(day, close)
        for day, close in (
            ("2023-11-13", 1.0),
            ("2023-11-14", 2.0),
            ("2023-11-15", 3.0),
            ("2023-11-16", 4.0),
            ("2023-11-17", 5.0),
        )
    ]

    combined = combine(days, spec(tf.DAYS, 3), US_STOCKS)

    assert [(bar.period, bar.start, bar.end, bar.open, bar.close) for bar in combined] == [
        ("3d", US_STOCKS.day_start(ms("2023-11-13 15:00:00")), ms("2023-11-15 21:00:00"), 1.0, 3.0),
        ("3d", US_STOCKS.day_start(ms("2023-11-16 15:00:00")), ms("2023-11-18 21:00:00"), 4.0, 5.0),
    ]


def test_spec_period_names_every_compression():
    assert [
        s.period
        for s in (
            minutes(1),
            minutes(3),
            minutes(60),
            minutes(120),
            minutes(90),
            spec(tf.DAYS, 3),
            spec(tf.WEEKS, 1),
            spec(tf.YEARS, 1),
        )
    ] == ["1m", "3m", "1h", "2h", "90m", "3d", "1w", "12M"]


@pytest.mark.parametrize(
    ("name", "inside"),
    [
        ("1d", "2023-11-14 15:00:00"),
        ("1w", "2023-11-15 15:00:00"),
        ("1M", "2023-11-15 15:00:00"),
        ("1d", "2023-03-12 15:00:00"),
    ],
)
def test_slots_on_calendar_grids_agree_with_timeframes(name, inside):
    period = tf.get_period(name)
    slot = tf.slot_of(tf.BarSpec(period, 1, name), ms(inside), US_STOCKS)

    assert slot.start == tf.bar_start(period, ms(inside), US_STOCKS)
    assert slot.next_start == tf.next_start(period, slot.start, US_STOCKS)
    assert slot.end == tf.bar_end(period, slot.start, US_STOCKS)


# --- properties ------------------------------------------------------------------------------------


BASE = ms("2023-11-14 15:00:00")


@st.composite
def trades(draw):
    count = draw(st.integers(1, 60))
    out = []
    for seq in range(count):
        out.append(
            Tick(
                "BTCUSDT",
                BASE + draw(st.integers(0, 20 * MINUTE_MS)),
                draw(st.integers(1, 400)) / 4,
                float(draw(st.integers(1, 20))),
                seq=seq,
            )
        )
    return out


def ideal_bars(ticks: list[Tick], step_minutes: int) -> list[tuple]:
    step = step_minutes * MINUTE_MS
    groups: dict[int, list[Tick]] = {}
    for one in sorted(ticks, key=lambda t: (t.time, t.seq)):
        groups.setdefault(one.time - one.time % step, []).append(one)
    return [
        (
            start,
            start + step,
            group[0].price,
            max(t.price for t in group),
            min(t.price for t in group),
            group[-1].price,
            sum(t.volume for t in group),
        )
        for start, group in sorted(groups.items())
    ]


@settings(max_examples=80, deadline=None)
@given(ticks=trades(), step=st.sampled_from([1, 3, 5]), order=st.randoms(use_true_random=False))
def test_property_any_arrival_order_before_the_timer_gives_the_ideal_bars(ticks, step, order):
    made, delivered = builder(bar_spec=minutes(step))
    shuffled = list(ticks)
    order.shuffle(shuffled)
    for one in shuffled:
        made.add_tick(one)

    made.on_timer(BASE + 30 * MINUTE_MS)

    assert [ohlcv(bar) for bar in delivered] == ideal_bars(ticks, step)
    for bar in delivered:
        assert bar.low <= min(bar.open, bar.close) <= max(bar.open, bar.close) <= bar.high
    assert sum(bar.volume for bar in delivered) == sum(t.volume for t in ticks)
    ends = [bar.end for bar in delivered]
    assert ends == sorted(set(ends))


@settings(max_examples=80, deadline=None)
@given(
    ticks=trades(),
    step=st.sampled_from([1, 3]),
    delays=st.lists(st.integers(0, GRACE - 1), min_size=60, max_size=60),
)
def test_property_arrivals_delayed_within_grace_with_timers_in_between_lose_nothing(ticks, step, delays):
    made, delivered = builder(bar_spec=minutes(step))
    arrivals = sorted(((one.time + delay, index) for index, (one, delay) in enumerate(zip(ticks, delays))))
    for arrival, index in arrivals:
        made.on_timer(arrival)  # the feed's timer may fire between any two arrivals
        made.add_tick(ticks[index])
        made.add_tick(ticks[index])  # and the stream may repeat a frame

    made.on_timer(BASE + 30 * MINUTE_MS)

    assert [ohlcv(bar) for bar in delivered] == ideal_bars(ticks, step)
    assert (made.stats.late_ticks, made.stats.duplicates) == (0, len(ticks))


@settings(max_examples=60, deadline=None)
@given(ticks=trades(), compression=st.sampled_from([2, 3, 5, 15]))
def test_property_combine_of_minute_bars_equals_bars_built_directly(ticks, compression):
    minute_builder, minute_bars_built = builder(bar_spec=minutes(1))
    direct_builder, direct_bars = builder(bar_spec=minutes(compression))
    for one in ticks:
        minute_builder.add_tick(one)
        direct_builder.add_tick(one)
    minute_builder.on_timer(BASE + 60 * MINUTE_MS)
    direct_builder.on_timer(BASE + 60 * MINUTE_MS)

    combined = combine(minute_bars_built, minutes(compression), CRYPTO)

    assert combined == direct_bars


def test_seen_trades_knows_a_trade_by_seq_per_symbol_or_by_the_whole_trade():
    seen = SeenTrades(size=2)
    first = Tick("BTCUSDT", 1, 10.0, 1.0, seq=7)

    assert not seen.is_repeat(first)
    assert seen.is_repeat(first)
    assert not seen.is_repeat(Tick("ETHUSDT", 1, 10.0, 1.0, seq=7))  # same seq, other symbol
    assert not seen.is_repeat(Tick("BTCUSDT", 1, 10.0, 1.0))  # no seq: the whole trade is the identity
    assert not seen.is_repeat(first)  # forgotten: the memory holds only the last two
    assert len(seen) == 2


def test_a_daily_bar_holds_its_trading_dates_after_hours_trades_and_closes_when_the_date_ends():
    spec = tf.resolve(tf.DAYS, 1, ("1m", "1d"), "AAPL.US")
    bars = []
    builder = BarBuilder("AAPL.US", spec, US_STOCKS, bars.append, grace_ms=0)
    builder.add_tick(Tick("AAPL.US", _ms("2023-07-03 15:00"), 10.0, 1.0))
    builder.add_tick(Tick("AAPL.US", _ms("2023-07-03 19:00"), 11.0, 2.0))  # after the 13:00 New York close

    builder.on_timer(_ms("2023-07-03 23:00"))  # the early close has passed, the trading date has not
    assert bars == []
    builder.on_timer(_ms("2023-07-04 04:00"))  # midnight in New York

    assert [(bar.close, bar.volume, bar.end) for bar in bars] == [(11.0, 3.0, _ms("2023-07-03 17:00"))]


def test_trades_in_a_slot_the_calendar_calls_closed_make_a_bar_unless_extended_hours_are_off():
    spec = tf.resolve(tf.MINUTES, 1, ("1m", "1d"), "AAPL.US")
    overnight = _ms("2024-03-11 05:25:10")  # a Monday, 01:25 New York
    kept, left_out = [], []
    for bars, regular_only in ((kept, False), (left_out, True)):
        builder = BarBuilder("AAPL.US", spec, US_STOCKS, bars.append, grace_ms=0, regular_only=regular_only)
        builder.add_tick(Tick("AAPL.US", overnight, 191.66, 5.0))
        builder.add_tick(Tick("AAPL.US", _ms("2024-03-11 13:30:01"), 192.0, 1.0))  # the regular open
        builder.on_timer(_ms("2024-03-11 13:31"))
        if regular_only:
            assert builder.stats.offhours == 1

    assert [bar.end for bar in kept] == [_ms("2024-03-11 05:26"), _ms("2024-03-11 13:31")]
    assert [bar.end for bar in left_out] == [_ms("2024-03-11 13:31")]


def test_empty_bars_stop_at_an_early_close_and_skip_a_holiday():
    spec = tf.resolve(tf.MINUTES, 60, ("1m", "1h", "1d"), "AAPL.US")
    bars = []
    builder = BarBuilder("AAPL.US", spec, US_STOCKS, bars.append, grace_ms=0, emit_empty=True)
    builder.start_after(_ms("2023-07-03 14:00"), last_close=100.0)

    builder.on_timer(_ms("2023-07-05 16:00"))

    assert [bar.end for bar in bars] == [_ms(f"2023-07-03 {h}:00") for h in (15, 16, 17)] + [
        _ms(f"2023-07-05 {h}:00") for h in (14, 15, 16)
    ]


def _ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp() * 1000)


def test_a_re_sent_trade_of_a_closed_bar_is_a_repeat_not_a_late_trade():
    # A service re-sending its last trade while the market is closed: the bar holding it was right.
    made, delivered = builder()
    last = tick(ms("2023-11-14 15:13:20"), 10.0, seq=7)
    made.add_tick(last)
    made.on_timer(ms("2023-11-14 15:20:00"))  # minutes later: that bar is long closed

    made.add_tick(last)

    assert len(delivered) == 1 and made.stats.duplicates == 1 and made.stats.late_ticks == 0
