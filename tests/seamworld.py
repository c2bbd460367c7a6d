"""A hand-driven world around one :class:`~backtrader_alltick.seam.Seam`, shared by the seam tests.

``World`` makes trades, streams them when the connection is up, loses them when it is down
or when their frame is malformed, replays stale ones, and answers REST from the trades that
closed; ``check`` compares the delivered bars with bars computed straight from the trades.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Iterable

from backtrader_alltick.markets import CRYPTO, MINUTE_MS, Market
from backtrader_alltick.records import Kline, Tick
from backtrader_alltick.seam import Seam
from backtrader_alltick.timeframes import PERIODS, BarSpec

SPEC = BarSpec(PERIODS["1m"], 1, "1 Minutes")
START = 1_700_000_040_000  # a minute boundary: Tuesday 2023-11-14 22:14 UTC, after the US close
STEP_MS = 300
GRACE_MS = 250
MARGIN_MS = 2000


def bars_from_trades(trades: list[Tick]) -> list[Kline]:
    """1-minute bars computed straight from trades (no builder involved)."""
    by_minute: dict[int, list[Tick]] = {}
    for trade in sorted(trades, key=lambda t: (t.time, t.seq)):
        by_minute.setdefault(trade.time - trade.time % MINUTE_MS, []).append(trade)
    return [
        Kline(
            "BTCUSDT",
            "1m",
            start,
            start + MINUTE_MS,
            group[0].price,
            max(t.price for t in group),
            min(t.price for t in group),
            group[-1].price,
            running_sum(t.volume for t in group),
            running_sum(t.turnover for t in group),
        )
        for start, group in sorted(by_minute.items())
    ]


def running_sum(values: Iterable[float]) -> float:
    """Add in trade order, as a forming bar does; ``sum()`` compensates its rounding since Python 3.12,
    so its total can differ from the bar's in the last bit."""
    return functools.reduce(operator.add, values, 0.0)


class World:
    """Market, stream and REST around one :class:`Seam`, on a hand-driven clock."""

    def __init__(self, skew_ms: int = 0, market: Market = CRYPTO) -> None:
        self.skew_ms = skew_ms  # how far the exchange's clock runs ahead of ours
        self.now = START + 10_000
        self.trades: list[Tick] = []
        self.pushed: list[Tick] = []
        self.up = False
        self.jobs: list[list] = []  # [job, after, upto, reached] in the order REST serves them
        self.jobs_asked = 0
        self._delivered: list[tuple[Kline, str]] = []
        self.seam = Seam(
            "BTCUSDT", SPEC, market, request_rest=self._request, grace_ms=GRACE_MS, anchor_margin_ms=MARGIN_MS
        )

    @property
    def delivered(self) -> list[tuple[Kline, str]]:
        """Every bar the seam has handed out so far, with its source."""
        self._delivered.extend(self.seam.take())
        return self._delivered

    def _request(self, after: int | None, upto: int) -> int:
        # Job ids are unique, as the backfill worker's are: a served job's id is never reused.
        job = 1000 + self.jobs_asked
        self.jobs_asked += 1
        self.jobs.append([job, after, upto, after])
        return job

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
        if self.up:
            self.push(trade, malformed=malformed)

    def push(self, trade: Tick, *, malformed: bool = False) -> None:
        """The stream hands the trade over (a malformed frame loses it, and says so)."""
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
        self.push_again(older[-1] if older else self.pushed[-1])

    def push_again(self, trade: Tick) -> None:
        """The stream sends ``trade`` once more, as it sent it the first time."""
        self.seam.on_trade(trade, self.now)

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
