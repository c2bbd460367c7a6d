"""``AllTickData``: the Backtrader feed, historical (REST K-lines) and live (ticks built into bars).

Live state machine (DESIGN.md, backtrader-live-feeds.md b6)::

    START -> BACKFILL (DELAYED) -> LIVE <-> CONNBROKEN -> BACKFILL -> LIVE ... -> OVER (DISCONNECTED)

Where a live feed's bars come from -- REST up to the seam, the stream's trades after it, REST
again for what a drop or a skipped frame cut -- is decided by :class:`~backtrader_alltick.seam.Seam`,
whose docstring states the rules; the feed reads a :class:`~backtrader_alltick.sources.BarSource`
and turns its events into Backtrader states, lines and notifications.

Every live feed of a store shares one :class:`~backtrader_alltick.sources.inbox.Wake`: in
Cerebro's pass over its feeds the first feed with nothing new waits (at most ``qcheck``) until
any feed of the store has an event, taking every feed's input and running their timers meanwhile,
and the feeds after it answer at once.
"""

from __future__ import annotations

import logging
import math
import time
import weakref
from collections import deque
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import backtrader as bt
from backtrader.utils.date import num2date

from . import sessions, timeframes
from .clock import CLOSE_LAG_S
from .errors import (
    AllTickError,
    AllTickWarning,
    ConfigError,
    FeedEndedWarning,
    SymbolNotFound,
    UnsupportedTimeframe,
)
from .history import Window
from .notices import warn_no_bars, warn_user
from .param_checks import as_moment, check_order, is_empty_window, whole_number
from .records import Kline, Tick
from .sessions import ms_to_num, num_to_ms
from .sources import COUNTERS, BarReady, BarSource, Failed, SourceOptions, StateChanged
from .sources.inbox import Wake
from .store import AllTickStore
from .symbols import Instrument, parse_symbol
from .timeframes import BarSpec

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from .param_types import DataParams

logger: logging.Logger = logging.getLogger(__name__)

_ST_START, _ST_HISTORBACK, _ST_BACKFILL, _ST_LIVE, _ST_OVER = range(5)


class AllTickData(bt.feed.DataBase):
    """A Backtrader data feed over AllTick K-lines (backtests) and trade ticks (live).

    Params (besides Backtrader's ``dataname``, ``timeframe``, ``compression``,
    ``fromdate``, ``todate``, ``tz``, ``sessionstart``, ``sessionend``):

      - ``region`` (default ``None``): region for a bare ``dataname`` ("AAPL" + "US").
      - ``historical`` (default ``False``): backtest only; the feed ends after the last closed bar.
      - ``backfill_start`` (default ``True``): live feeds first deliver closed REST bars.
      - ``backfill`` (default ``True``): after a reconnect, rebuild missed bars from REST.
      - ``lookback`` (default ``500``): bars to load when ``fromdate`` is not given.
      - ``qcheck`` (default ``0.5``): the longest wall seconds one of Cerebro's passes waits for
        live data.  Every live feed of a store shares one wake-up, so a bar, a state change
        (DELAYED, LIVE, CONNBROKEN) or a failure of any of them ends the wait at once: ``qcheck``
        does not delay bars.  It bounds how late Backtrader's own work runs while nothing comes
        (store notifications, a resampler closing a bar by the clock, a stop asked from another
        thread).  A pass in which a feed has nothing new costs it little: a Cerebro of 50 silent
        feeds idles at about 0.2 % of a core (``benchmarks/bench_many_feeds.py``).
      - ``grace`` (default ``0.25``): wall seconds after a bar's end before it closes,
        so trades stamped just before the boundary still count.
      - ``emit_empty`` (default ``False``): emit flat, zero-volume bars for minutes
        without trades while the market is open.
      - ``extended_hours`` (default ``None``: the store's, ``True`` unless set there): the
        session policy.  ``True``: a bar for every slot the service has trades in, whatever
        the calendar says; ``False``: only bars of slots with a regular session.  Either way
        a delivered bar holds every trade of its slot (README "Trading outside the regular
        session"); what the policy leaves out is counted in ``stats``.  It applies to what a
        relay wrote too (``source="redis"``), and to trades of a ``TimeFrame.Ticks`` feed.
      - ``bidask`` (default ``False``): subscribe depth and fill the ``bid``/``ask`` lines.
      - ``source`` (default ``None``): where bars come from.  ``None``: the service
        (REST and WebSocket through the store).  ``"redis"``: live bars a relay
        (``alltick-bt record``) writes into Redis, same states and seam guarantees.
        ``"influx"`` (with ``historical=True``): bars from a relay's InfluxDB archive,
        built from archived bars or ticks when the period was not recorded.
      - ``source_url`` (default ``None``): the Redis or InfluxDB URL for ``source``, e.g.
        ``redis://127.0.0.1:6379/0`` or ``http://127.0.0.1:8086/alltick``.

    Sessions (README "Sessions and calendars"): daily and longer bars are stamped with their
    trading date at ``sessionend`` (default end of day), so markets line up by date.  An
    intraday feed without ``sessionstart``/``sessionend`` takes its market's session (in its
    ``tz``), ends each day at the calendar's close, and ``resampledata`` to days gives the
    native daily bars; a ``date`` ``fromdate``/``todate`` means that trading day's open/close.

    ``data.stats`` counts trades, REST and tick-built bars, late and duplicate trades, inbox
    overflows and reconnects; ``data.last_error`` holds the error that ended the feed, if any.

    Example::

        store = AllTickStore()
        data = store.getdata(dataname="BTCUSDT", timeframe=bt.TimeFrame.Minutes, compression=5)
        cerebro.adddata(data)
    """

    # Backtrader's metaclass turns this tuple into a class of lines and each feed's ``lines`` into an
    # object of it, with one attribute per line (datetime, open, ... bid, ask): no static type has them.
    lines: Any = ("turnover", "bid", "ask")

    # Turned by Backtrader's metaclass into a class of parameters, read as ``self.p.<name>``.
    params: Any = (
        ("store", None),
        ("region", None),
        ("historical", False),
        ("backfill_start", True),
        ("backfill", True),
        ("lookback", 500),
        ("qcheck", 0.5),
        ("grace", 0.25),
        ("emit_empty", False),
        ("extended_hours", None),
        ("bidask", False),
        ("inbox_size", 200_000),
        ("source", None),
        ("source_url", None),
    )

    def __init__(self, **params: Unpack[DataParams]) -> None:
        # Backtrader's metaclass has already taken the params out of the call into self.p, so
        # ``params`` is always empty here; it is declared for type checkers (param_types).
        super().__init__()
        if self.p.store is None:
            raise ConfigError("AllTickData needs a store: use AllTickStore(...).getdata(...)")
        self._store: AllTickStore = self.p.store
        # Backtrader turns these into numbers later; refuse what it could not read, accept ISO strings.
        self.p.fromdate = as_moment("fromdate", self.p.fromdate)
        self.p.todate = as_moment("todate", self.p.todate)
        check_order(self.p.fromdate, self.p.todate)
        whole_number("lookback", self.p.lookback)
        # The session policy, the store's unless the feed says otherwise; refused now if not True/False.
        self._extended_hours = self._store.extended_hours(self.p.extended_hours)
        self._setup_error: AllTickError | None = None
        self.inst: Instrument | None = None
        self.spec: BarSpec | None = None
        try:
            _check_source(self.p.source, self.p.source_url, self.p.historical)
            self.inst = parse_symbol(self.p.dataname, self.p.region)
            if self.p.timeframe != bt.TimeFrame.Ticks:
                self.spec = self._store.resolve_timeframe(
                    self.inst, self.p.timeframe, self.p.compression, live=not self.p.historical
                )
            elif self.p.historical:
                raise UnsupportedTimeframe(
                    "Ticks",
                    self.inst.symbol,
                    timeframes.describe_supported(self._store.wire.native_periods(self.inst)),
                    "neither service offers historical trades; use a live feed",
                )
        except ConfigError as e:
            if self.p.historical:
                raise
            self._setup_error = e  # a live feed reports it as a notification at start
        self._by_date = self.spec is not None and not self.spec.native.is_intraday
        self._market_sessions = (
            self.inst is not None
            and not self._by_date
            and self.p.sessionstart is None
            and self.p.sessionend is None
        )
        if self._market_sessions and self.inst is not None:
            sessions.take_market_sessions(self.p, self.inst)
        self._state = _ST_START
        self._source: BarSource | None = None
        self._history: deque[Kline] = deque()
        self.stats: dict[str, int] = dict.fromkeys(COUNTERS, 0)
        self.last_error: AllTickError | None = None

    # -- Backtrader contract -----------------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        # cerebro.optstrategy(maxcpus=N) pickles the feed into worker processes: a historical feed
        # travels with its bars (or reloads them there from the store's configuration and cache).
        if not self.p.historical:
            raise ConfigError(
                f"{self.p.dataname}: a live feed cannot be sent to other processes; optimise "
                "with historical=True, or run cerebro.optstrategy with maxcpus=1, "
                "was historical=False"
            )
        state = self.__dict__.copy()
        state["_source"] = None
        return state

    def islive(self) -> bool:
        return not self.p.historical

    def haslivedata(self) -> bool:
        return bool(self._history) or (self._source is not None and self._source.has_pending())

    def do_qcheck(self, onoff: bool, qlapse: float) -> None:
        super().do_qcheck(onoff, qlapse)
        # Cerebro may call _load again in the same pass (datamaster retry); wait only
        # once per pass so several feeds do not add up their waits.
        self._may_wait = True
        self._pass_start = time.monotonic() - qlapse

    def _timeoffset(self) -> timedelta:
        # Backtrader's resampler closes a bar by wall clock (plus this offset) when no data
        # moved.  Our base bar for a boundary arrives up to grace + backfill lag + qcheck
        # after it, so "now" is reported that much earlier; while backfilling it is the end
        # of the last bar delivered, so the resampler never closes a bar ahead of history.
        clock = self._store.clock
        lag_s = self.p.grace + CLOSE_LAG_S + self.p.qcheck
        target = clock.now_ms() - lag_s * 1000 * clock.speed
        reach = None if self._source is None else self._source.history_until
        if reach is not None:
            target = min(target, reach)
        return timedelta(milliseconds=target - time.time() * 1000)

    def _getnexteos(self):
        # Where the trading day of the current bar ends, by the market's calendar (holidays,
        # early closes, daylight saving time), in Backtrader's form: (naive UTC, float).
        if not self._market_sessions or not len(self):
            return super()._getnexteos()
        eos = ms_to_num(self.inst.market.next_close(num_to_ms(self.lines.datetime[0])))
        return num2date(eos), eos

    def resample(self, **kwargs: Any) -> None:
        self.addfilter(sessions.resampler_for(self._market_sessions, kwargs), **kwargs)

    def clone(self, **kwargs: Any) -> _AllTickClone:
        # Backtrader's clone (adddata + resampledata of one feed) reads the wall clock; ours
        # must read the store's clock, or a resampler on the clone closes bars at the wrong time.
        return _AllTickClone(dataname=self, **kwargs)

    def setenvironment(self, env: Any) -> None:  # a bt.Cerebro
        super().setenvironment(env)
        # Cerebro then starts and stops the store with the run and hands its messages to
        # notify_store; stopping it closes the shared socket and the REST session.
        env.addstore(self._store)

    def _gettz(self):
        zone = sessions.localizable_zone(self.p.tz)
        return zone if zone is not None else super()._gettz()

    def start(self) -> None:
        super().start()
        self._store.start(data=self)
        self._start_finish()
        self._may_wait = True
        self._pass_start = math.inf  # until Cerebro's first pass tells when it began
        self._source = None
        # Cerebro starts a feed again for each run of optstrategy on one core.  A run may end
        # with bars unread (Backtrader's filter stops at the first past todate, and daily bars
        # are loaded a little wider): every start begins from nothing, or they would come first.
        self._history = deque()
        self.stats = dict.fromkeys(COUNTERS, 0)
        self.last_error = None
        if self._setup_error is not None:
            self._fail(self._setup_error)
            return
        asked_from = start_ms = None if self.fromdate == float("-inf") else num_to_ms(self.fromdate)
        asked_to = end_ms = None if self.todate == float("inf") else num_to_ms(self.todate)
        if self._by_date:
            # Backtrader's filter keeps a bar by its date stamp, not by its close: load a little
            # wider on both sides and let the filter decide.
            start_ms, end_ms, _ = timeframes.date_load_window(start_ms, end_ms)
        if self.p.historical:
            self.put_notification(self.DELAYED)
            # Dates in order around no trading day (a weekend, a holiday) hold no bar.
            bars = [] if is_empty_window(asked_from, asked_to) else self._load_history(start_ms, end_ms)
            if not bars:
                self._warn_empty(asked_from, asked_to)
            self._history.extend(bars)
            self.stats["bars_rest"] = len(bars)
            self._state = _ST_HISTORBACK
            return
        self._source = self._open_source(start_ms)
        self.stats = self._source.stats
        self.put_notification(self.DELAYED)
        self._state = _ST_BACKFILL

    def stop(self) -> None:
        self._close_source()
        super().stop()

    def _instrument(self) -> Instrument:
        # Only None when the setup failed, and a failed setup ends the feed at start, before any use.
        assert self.inst is not None, "the feed's setup failed"
        return self.inst

    def _bar_spec(self) -> BarSpec:
        # Only None for a live feed of ticks or a failed setup: neither loads or stamps bars.
        assert self.spec is not None, "the feed has no bar period"
        return self.spec

    def _open_source(self, start_ms: int | None) -> BarSource:
        p = self.p
        options = SourceOptions(
            lookback=p.lookback,
            backfill_start=p.backfill_start,
            backfill=p.backfill,
            grace=p.grace,
            emit_empty=p.emit_empty,
            extended_hours=self._extended_hours,
            bidask=p.bidask,
            inbox_size=p.inbox_size,
            url=p.source_url,
        )
        wake = _WAKES.setdefault(self._store, Wake())
        if p.source == "redis":
            from .sources.redis import RedisBars

            return RedisBars(self._store, self._instrument(), self.spec, options, start_ms, wake=wake)
        from .sources.stream import StreamBars

        # The store's live feeds share one batch answerer: feeds starting or reconnecting together ask once.
        return StreamBars(
            self._store,
            self._instrument(),
            self.spec,
            options,
            start_ms,
            wake=wake,
            newest=self._store.newest,
        )

    def _close_source(self) -> None:
        if self._source is not None:
            self._source.close()
            self._source = None

    def _load_history(self, start_ms: int | None, end_ms: int | None) -> list[Kline]:
        count = None if start_ms is not None else self.p.lookback
        window = Window(start_ms, end_ms, count)
        return self._store.history.get_range(
            self._instrument(),
            self._bar_spec(),
            window,
            source=self.p.source,
            source_url=self.p.source_url,
            extended_hours=self._extended_hours,
            stats=self.stats,
        ).bars

    def _warn_empty(self, start_ms: int | None, end_ms: int | None) -> None:
        # Backtrader's own feeds end silently on an empty range, and its indicators then fail with an
        # IndexError far from the cause: say which range was empty, where the user sees it.
        warn_no_bars(
            self._instrument().symbol,
            self._bar_spec().period,
            start_ms,
            end_ms,
            self.p.lookback,
            "the feed ends without bars and indicators have nothing to read",
        )

    def load(self):
        # Backtrader's load moves every line forward and back for a call that brings nothing: in each
        # of Cerebro's passes that was most of a quiet live feed's cost, times the feeds.
        if self._quiet():
            return None
        return super().load()

    def _quiet(self) -> bool:
        """True when this live feed has nothing to hand out now and may not wait for it."""
        source = self._source
        return (
            source is not None
            and (self._state == _ST_LIVE or self._state == _ST_BACKFILL)
            and not self._will_wait()
            and not self._barstack
            and not self._barstash
            and not source.has_pending()
            and not source.timers_due()
        )

    def _will_wait(self) -> bool:
        # Once per pass for every feed of the store: the first with nothing new waits, and when an
        # event ends that wait the feeds after it answer at once, quiet ones too (they would wait
        # out the rest of qcheck again, holding back the bars the pass has taken).
        return self._may_wait and self._qcheck > 0 and _WAKES[self._store].waited_until < self._pass_start

    def _load(self):
        if self._state == _ST_OVER:
            return False
        if self._state == _ST_HISTORBACK:
            if self._history:
                self._fill(self._history.popleft())
                return True
            self.put_notification(self.DISCONNECTED)
            self._state = _ST_OVER
            return False
        if self._source is None:
            return False
        wait = self._qcheck if self._will_wait() else 0.0
        self._may_wait = False
        event = self._poll()
        if event is None and wait > 0:
            # One wait for every feed of the store: it takes every feed's input and runs their
            # timers until one has an event, then this feed answers at once, and so do the feeds
            # after it in Cerebro's pass (those with an event hand it out).
            _WAKES[self._store].wait_for_events(wait)
            event = self._poll()
        while True:
            if event is None:
                return None
            if isinstance(event, BarReady):
                self._fill(event.bar, event.bid, event.ask)
                return True
            if isinstance(event, Failed):
                self._fail(event.error)
                return False
            self._on_state(event)
            event = self._poll()

    def _poll(self):
        try:
            return self._source.poll(0.0)
        except AllTickWarning:  # escalated by the user's filter: the run ends, and the feed with it
            self._state = _ST_OVER
            self._close_source()
            raise

    def _on_state(self, event: StateChanged) -> None:
        if event.state == "live":
            self._state = _ST_LIVE
            self.put_notification(self.LIVE)
        elif event.state == "connbroken":
            self._state = _ST_BACKFILL  # until the source has caught up again
            self.put_notification(self.CONNBROKEN)
        else:
            self.put_notification(self.DELAYED)

    # -- lines and failures (Cerebro's thread) -------------------------------------------

    def _fill(self, bar: Kline | Tick, bid: float = math.nan, ask: float = math.nan) -> None:
        """Put ``bar`` in the lines, with the book that belongs to it (NaN: none, as for history)."""
        lines = self.lines
        if isinstance(bar, Tick):
            lines.datetime[0] = ms_to_num(bar.time)
            lines.open[0] = lines.high[0] = lines.low[0] = lines.close[0] = bar.price
            lines.volume[0] = bar.volume
            lines.turnover[0] = bar.turnover
        else:
            lines.datetime[0] = self._stamp(bar.end)
            lines.open[0] = bar.open
            lines.high[0] = bar.high
            lines.low[0] = bar.low
            lines.close[0] = bar.close
            lines.volume[0] = bar.volume
            lines.turnover[0] = bar.turnover
        lines.openinterest[0] = 0.0
        lines.bid[0], lines.ask[0] = bid, ask

    def _stamp(self, end_ms: int) -> float:
        """Line value of a bar closing at ``end_ms``: intraday that instant; daily and longer
        the trading date at ``sessionend`` in the feed's ``tz``, as Backtrader's own feeds."""
        if not self._by_date:
            return ms_to_num(end_ms)
        return timeframes.date_stamp(self, end_ms, self._instrument().market, self.p.sessionend)

    def _fail(self, error: AllTickError) -> None:
        self.last_error = error
        # Said once as a warning (the user's script shows it); the log keeps the detail for applications.
        logger.info("%s: %s", self.p.dataname, error)
        if isinstance(error, UnsupportedTimeframe):
            status = self.NOTSUPPORTED_TF
        elif isinstance(error, (SymbolNotFound, ConfigError)):
            status = self.NOTSUBSCRIBED
        else:  # a rejected token or a stream that gave up: nothing more will come
            status = self.DISCONNECTED
        self.put_notification(status)
        # notify_store too: a strategy watching the store learns why (a rejected token ends every feed).
        self._store.put_notification(f"{self.p.dataname}: {self._getstatusname(status)}", error)
        self._state = _ST_OVER
        self._close_source()
        # Last: a user who escalates warnings gets the exception with the feed already wound down.
        warn_user(f"{self.p.dataname}: the feed ended: {error} (data.last_error holds it)", FeedEndedWarning)


def _check_source(source: str | None, source_url: str | None, historical: bool) -> None:
    if source not in (None, "redis", "influx"):
        raise ConfigError(f"source must be None (the service), 'redis' or 'influx', was {source!r}")
    if source is not None and not source_url:
        raise ConfigError(
            f"source={source!r} needs source_url (e.g. redis://127.0.0.1:6379/0 or "
            f"http://127.0.0.1:8086/alltick), was {source_url!r}"
        )
    if source == "redis" and historical:
        raise ConfigError(
            "source='redis' serves live bars from a relay; for a backtest use source='influx' "
            "or no source, was historical=True"
        )
    if source == "influx" and not historical:
        raise ConfigError(
            "source='influx' serves archived history only; pass historical=True, or "
            "source='redis' for live bars, was historical=False"
        )


# The wake-up every live feed of a store shares (the store, a layer below, knows nothing of it).
_WAKES: weakref.WeakKeyDictionary[AllTickStore, Wake] = weakref.WeakKeyDictionary()


class _AllTickClone(bt.DataClone):
    def _timeoffset(self) -> timedelta:
        return self.data._timeoffset()

    def resample(self, **kwargs: Any) -> None:
        self.addfilter(sessions.resampler_for(self.data._market_sessions, kwargs), **kwargs)


AllTickStore.DataCls = AllTickData
