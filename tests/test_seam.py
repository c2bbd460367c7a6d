"""The seam without a socket: every ordering of stream and REST events, against bars built from the trades.

A small world (``World``) makes trades, streams them when the connection is up, loses them
when it is down or when their frame is malformed, replays stale ones, and answers REST
from the trades that closed.  Whatever happened, the bars the seam delivers must be the
bars computed directly from every trade made.
"""

from __future__ import annotations

import copy
import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backtrader_alltick.markets import CRYPTO, MINUTE_MS
from backtrader_alltick.records import Kline, Tick
from backtrader_alltick.seam import Seam
from backtrader_alltick.timeframes import PERIODS, BarSpec

SPEC = BarSpec(PERIODS["1m"], 1, "1 Minutes")
START = 1_700_000_040_000  # a minute boundary
STEP_MS = 300
GRACE_MS = 250
MARGIN_MS = 2000


def bars_from_trades(trades: list[Tick]) -> list[Kline]:
    """1-minute bars computed straight from trades (no builder involved)."""
    by_minute: dict[int, list[Tick]] = {}
    for trade in sorted(trades, key=lambda t: (t.time, t.seq)):
        by_minute.setdefault(trade.time - trade.time % MINUTE_MS, []).append(trade)
    return [Kline("BTCUSDT", "1m", start, start + MINUTE_MS, group[0].price, max(t.price for t in group),
                  min(t.price for t in group), group[-1].price, sum(t.volume for t in group),
                  sum(t.turnover for t in group))
            for start, group in sorted(by_minute.items())]


class World:
    """Market, stream and REST around one :class:`Seam`, on a hand-driven clock."""

    def __init__(self, skew_ms: int = 0) -> None:
        self.skew_ms = skew_ms  # how far the exchange's clock runs ahead of ours
        self.now = START + 10_000
        self.trades: list[Tick] = []
        self.pushed: list[Tick] = []
        self.up = False
        self.jobs: list[list] = []  # [job, after, upto, reached] in the order REST serves them
        self.delivered: list[tuple[Kline, str]] = []
        self.seam = Seam("BTCUSDT", SPEC, CRYPTO, request_rest=self._request, deliver=self._deliver,
                         grace_ms=GRACE_MS, anchor_margin_ms=MARGIN_MS)

    def _request(self, after: int | None, upto: int) -> int:
        job = len(self.jobs) + 1000
        self.jobs.append([job, after, upto, after])
        return job

    def _deliver(self, bar: Kline, source: str) -> None:
        self.delivered.append((bar, source))

    # -- what happens ------------------------------------------------------------------------------

    def tick(self) -> None:
        """Time passes a little; timers run."""
        self.now += STEP_MS
        self.seam.on_timer(self.now)

    def trade(self, *, malformed: bool = False) -> None:
        """A trade happens now; the stream pushes it if it is up (a malformed frame loses it)."""
        seq = len(self.trades) + 1
        price = 100.0 + (seq * 7919 % 101) / 10
        volume = 0.5 + seq % 3
        trade = Tick("BTCUSDT", self.now + self.skew_ms, price, volume, price * volume, seq=seq)
        self.trades.append(trade)
        if not self.up:
            return
        if malformed:
            self.seam.on_malformed(self.now)
        else:
            self.pushed.append(trade)
            self.seam.on_trade(trade, self.now)

    def malformed(self) -> None:
        self.trade(malformed=True)

    def drop(self) -> None:
        if self.up:
            self.up = False
            self.seam.on_stream_down(self.now)

    def reconnect(self) -> None:
        if not self.up:
            self.up = True
            self.seam.on_stream_up(self.now)

    def resend(self) -> None:
        """Replay the last trade pushed before this minute (else the last one pushed): same seq."""
        if not self.up or not self.pushed:
            return
        exchange_now = self.now + self.skew_ms
        minute = exchange_now - exchange_now % MINUTE_MS
        older = [t for t in self.pushed if t.time < minute]
        self.seam.on_trade(older[-1] if older else self.pushed[-1], self.now)

    def boundary(self) -> None:
        """The clock reaches the next minute boundary exactly; a trade happens on it."""
        self.now += MINUTE_MS - self.now % MINUTE_MS
        self.seam.on_timer(self.now)
        self.trade()

    def overflow(self) -> None:
        if self.up:
            self.seam.on_overflow(self.now)

    def rest(self) -> None:
        """REST serves its jobs in order, each with the bars closed by now."""
        while self.jobs:
            job, after, upto, reached = self.jobs[0]
            exchange_now = self.now + self.skew_ms
            until = min(upto, exchange_now - exchange_now % MINUTE_MS)
            since = START if reached is None else reached
            bars = bars_from_trades([t for t in self.trades if since <= t.time < until])
            self.jobs[0][3] = until
            done = until >= upto
            self.seam.on_rest(job, bars, done)
            if not done:
                return
            self.jobs.pop(0)

    def run(self, events) -> None:
        for event in events:
            self.tick()
            getattr(self, event)()

    def warm_up(self) -> None:
        """Connected, seam done, two minutes of live bars: the stale trades are already delivered."""
        self.reconnect()
        while self.now < START + 2 * MINUTE_MS + 55_000:
            self.tick()
            self.trade()
            self.tick()
            self.tick()
            self.rest()
        assert self.seam.done and any(source == "bars_live" for _, source in self.delivered)

    def settle(self) -> None:
        """Back up, then three quiet minutes of trades and REST answers: every bar has closed."""
        self.reconnect()
        until = self.now - self.now % MINUTE_MS + 3 * MINUTE_MS
        while self.now < until:
            self.tick()
            self.trade()
            self.tick()
            self.tick()
            self.rest()
        self.last_closed = self.now - self.now % MINUTE_MS - MINUTE_MS  # well past every grace

    def check(self) -> None:
        bars = [bar for bar, _ in self.delivered]
        ends = [bar.end for bar in bars]
        assert ends == sorted(set(ends)), "a bar was delivered twice or out of order"
        truth = [bar for bar in bars_from_trades(self.trades) if bar.end <= self.last_closed]
        got = [bar for bar in bars if bar.end <= self.last_closed]
        assert got == truth


EVENTS = ("drop", "malformed", "resend", "boundary", "rest", "trade", "reconnect")


SKEWS = (0, 900, -GRACE_MS + 50)  # a clock behind the exchange's by more than grace loses trades
_WARM = {skew: World(skew) for skew in SKEWS}
for _world in _WARM.values():
    _world.warm_up()


def _run(events, skew_ms: int = 0) -> World:
    world = copy.deepcopy(_WARM[skew_ms])
    world.run(events)
    world.settle()
    world.check()
    return world


@pytest.mark.parametrize("first", EVENTS)
def test_every_ordering_of_seam_events_delivers_each_trade_in_exactly_one_bar(first):
    rest = [event for event in EVENTS if event != first]
    for order in itertools.permutations(rest):
        _run((first, *order))


@pytest.mark.parametrize("lead", ["drop", "malformed"])
def test_a_replayed_trade_of_the_last_minute_after_a_reset_does_not_anchor_the_seam(lead):
    # The two cases: a drop just before a boundary, or a malformed frame just after one,
    # then the server replays the previous minute's last trade before anything fresh.
    if lead == "drop":
        events = ("trade", "drop", "boundary", "trade", "reconnect", "resend", "trade", "rest")
    else:
        events = ("trade", "boundary", "trade", "malformed", "resend", "trade", "rest")
    world = _run(events)
    assert any(source == "bars_live" for _, source in world.delivered[-3:])


def test_a_stale_trade_that_is_not_a_repeat_does_not_anchor_the_seam_either():
    # A late trade of the previous minute never seen before, first after a reconnect.
    world = World()
    world.warm_up()
    world.run(["trade", "drop", "boundary", "trade", "trade", "reconnect"])
    late = Tick("BTCUSDT", world.now - world.now % MINUTE_MS - 1, 100.0, 1.0, 100.0, seq=None)
    world.trades.append(late)
    world.seam.on_trade(late, world.now)
    world.settle()
    world.check()


EVENT_ALPHABET = st.sampled_from(EVENTS + ("tick", "overflow"))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(EVENT_ALPHABET, max_size=40), st.sampled_from(SKEWS))
def test_random_event_sequences_keep_the_seam_invariant(events, skew_ms):
    _run(events, skew_ms)


def test_the_first_seam_backfills_then_builds_and_a_silent_symbol_anchors_after_the_margin():
    world = World()
    world.reconnect()
    for _ in range(MARGIN_MS // STEP_MS + 1):
        world.tick()
    assert world.seam.anchored and world.jobs == [[1000, None, START + MINUTE_MS, None]]
    world.settle()
    world.check()
    sources = [source for _, source in world.delivered]
    assert sources[0] == "bars_rest" and sources[-1] == "bars_live"


def test_a_reset_just_before_a_boundary_on_our_clock_keeps_the_exchange_time_trades_it_threw_away():
    # The exchange's clock runs 900 ms ahead: trades of the next minute arrive before our boundary.
    world = copy.deepcopy(_WARM[900])
    while (world.now + 900) % MINUTE_MS >= 400 or world.now % MINUTE_MS < 59_000:
        world.tick()
    world.trade()  # stamped just after the boundary, ours is still before it
    world.run(["malformed", "resend", "trade", "rest"])
    world.settle()
    world.check()
