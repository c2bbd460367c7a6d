"""Live bars from the service: REST backfill up to the seam, then bars built from the WebSocket's trades.

The store's stream hub hands this symbol's records and its connection's statuses, and the backfill
worker its results, to the source's :class:`~.inbox.Inbox`; everything else runs on the
consumer's thread inside :meth:`StreamBars.poll` (backtrader-live-feeds.md, section e): it takes
the inbox, hands each trade and REST answer to the :class:`~backtrader_alltick.seam.Seam` (its
docstring states the invariant) stamped with the store's clock, and hands out the bars the seam
has ready through an :class:`~.inbox.Outbox`.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator

from ..backfill import Backfiller, BackfillFailed, BackfillResult
from ..bars import SeenTrades, in_regular_hours
from ..clock import wall_seconds
from ..errors import is_retryable
from ..history.newest import NewestBars
from ..notices import Notice
from ..records import Depth, Tick
from ..seam import Seam
from ..symbols import Instrument
from ..timeframes import BarSpec
from ..transport.retry import backoff
from . import COUNTERS, Event, SourceOptions
from .inbox import Inbox, Outbox, Wake
from .needs import LiveStore
from .stream_notes import StreamNotes
from .stream_rest import StreamRest

logger = logging.getLogger(__name__)

# Wall seconds between asking REST again after it failed beyond the client's retries: doubling, capped.
REST_PAUSE_S, REST_PAUSE_CAP_S, REST_PAUSE_JITTER = 1.0, 30.0, 0.2

# Wall seconds after the stream is up before a silent symbol anchors its seam: long
# enough for the coalesced subscribe (AllTick spaces requests 1 s apart) to be active.
ANCHOR_MARGIN_S = 2.0

# Wall seconds between looks at a bar due but held while its connection's reader is behind: half its
# lag, within these bounds (a reader that keeps up is behind by a chunk's parsing at most).
HOLD_MIN_S, HOLD_MAX_S = 0.005, 0.05


class StreamBars:
    """Live bars of one symbol through ``store``'s shared WebSocket, backfilled from REST.

    ``spec`` None streams every trade as a bar (``TimeFrame.Ticks``).  ``start_ms`` is the
    first bar's close to backfill from (None: the newest ``options.lookback``).  ``wake`` is
    shared by the sources one thread drives: it waits once for all of them, then polls each with 0.
    ``newest``, shared by many sources, answers the short backfills (a start's last bar, a gap's
    bars) in batches; where it cannot, ``/kline`` does.

    Example::

        source = StreamBars(store, parse_symbol("BTCUSDT"), spec, SourceOptions(lookback=10), None)
        event = source.poll(0.5)     # BarReady, StateChanged, Failed or None
        source.close()
    """

    def __init__(
        self,
        store: LiveStore,
        inst: Instrument,
        spec: BarSpec | None,
        options: SourceOptions,
        start_ms: int | None,
        *,
        wake: Wake | None = None,
        newest: NewestBars | None = None,
    ) -> None:
        self.stats = dict.fromkeys(COUNTERS, 0)
        self._notes = StreamNotes(inst, options)
        self._wake = wake = wake if wake is not None else Wake()
        self._inbox = Inbox(options.inbox_size, wake)
        self._out = Outbox()
        self.store, self.inst, self.spec, self.options = store, inst, spec, options
        self.clock = clock = store.clock
        self.family = store.wire.family(inst)
        self._rest = rest = StreamRest(store, inst, spec, options, start_ms, newest, self._put)
        self._last_tick_time: int | None = None
        self._seen = SeenTrades()
        self._probe_job: int | None = None
        self._closed = False
        self._margin_ms = int(ANCHOR_MARGIN_S * 1000 * clock.speed)
        self._grace_ms = int(options.grace * 1000 * clock.speed)
        # TimeFrame.Ticks has no seam: it is live once a trade came or the margin passed.
        self._ticks_flowing = False
        self._ticks_deadline: int | None = None
        self.backfiller = Backfiller(
            rest.fetch, clock, self._put, closed_until=rest.closed_until, next_final=rest.next_final
        )
        # A REST outage that outlasts the client's retries delays the backfill, as a dropped socket
        # delays the stream: the source asks again after these pauses, and says CONNBROKEN meanwhile.
        self._rest_pauses: Iterator[float] | None = None
        self._rest_pause_s = 0.0
        self.seam: Seam | None = None
        if spec is not None:
            self.seam = Seam(
                inst.symbol,
                spec,
                inst.market,
                request_rest=self._request_rest,
                grace_ms=self._grace_ms,
                emit_empty=options.emit_empty,
                anchor_margin_ms=self._margin_ms,
                backfill_start=options.backfill_start,
                backfill=options.backfill,
                regular_only=not options.extended_hours,
                on_reseam=self._notes.reseam,
            )
        if not options.backfill_start or spec is None:
            # Nothing to backfill, but an unknown symbol must still be reported.  A job ends at a
            # bar's close stamp: the newest bar final now.
            self._probe_job = self.backfiller.request(None, rest.closed_until(clock.now_ms()), 1)
        # Market ms the timers are due next: by the store's clock, not each source's wall reading, so
        # that sources due at one moment (the feeds of a minute) are all due once one of them is.
        self._timers_ms: float = -math.inf
        self._hold_s = 0.0  # wall seconds until a bar held for its connection's reader is tried again
        self._held_deadline: int | None = None  # the deadline of the bar held last (counted once)
        wake.attach(self._inbox, self)
        store.listen(inst, self._post, depth=options.bidask, on_status=self._put)
        if store.hub.is_connected(self.family, inst):  # another feed's socket: no "connected" will come
            self._stream_up(clock.now_ms())
        wake.schedule(self, self.due_in())

    def __repr__(self) -> str:
        return f"StreamBars({self.inst.symbol}, {self.spec.period if self.spec else 'ticks'}, {self.state})"

    @property
    def state(self) -> str:
        """``delayed``, ``live``, ``connbroken`` or ``over``."""
        return self._out.state

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.store.unlisten(self.inst, self._post, depth=self.options.bidask, on_status=self._put)
        self._wake.detach(self._inbox, self)
        self._inbox.close()
        self.backfiller.stop()

    @property
    def history_until(self) -> int | None:
        """While bars still come from REST, the close stamp of the last one handed out; else None."""
        if self.state == "live" and self._caught_up():
            return None
        return self.seam.last_end if self.seam is not None else None

    # -- the socket thread --------------------------------------------------------------------------

    def _put(self, item: object) -> None:
        # Statuses, backfill results and notices share the trades' inbox; an overflow resets the seam.
        self._inbox.put(item)

    def _post(self, record: object) -> None:
        # Never block the socket thread; ticks lost to a full inbox are rebuilt from REST.
        if not self._inbox.put(record):
            self.stats["overflows"] += 1

    # -- the consumer's thread -----------------------------------------------------------------------

    def poll(self, timeout: float) -> Event | None:
        """The next event, waiting at most ``timeout`` wall seconds (0 with a shared wake); None: none yet."""
        deadline = time.monotonic() + timeout
        while True:
            self.take_input()
            event = self._out.take(self._caught_up())
            remaining = deadline - time.monotonic()
            if event is not None or remaining <= 0 or self._out.state == "over":
                return event
            self._wake.wait(min(remaining, self.due_in()))

    def has_pending(self) -> bool:
        """True when :meth:`poll` has an event ready or input waiting."""
        if self._out.state == "over":
            return self._out.has_pending(self._caught_up())
        return self._out.has_pending(self._caught_up()) or not self._inbox.empty()

    def has_events(self) -> bool:
        """True when :meth:`poll` has an event ready without taking more input."""
        return self._out.has_pending(self._caught_up())

    def due_in(self) -> float:
        """Wall seconds until :meth:`poll` has timed work even without new input (inf: none)."""
        if self._out.state == "over":
            return math.inf
        # A bar held for its connection's reader is looked at again after a while, not in a spin.
        return max(wall_seconds(self.clock, self._timers_moment()), self._hold_s)

    def timers_due(self) -> bool:
        """True when :meth:`poll` has timed work now, or a bar waits for its connection's reader.

        A held bar is asked about at each poll (the wake backs off between its own polls): when
        another feed of the connection finds the reader through, this one hands its bar out in the
        same pass of Cerebro instead of after its own pause.
        """
        return self._hold_s > 0 or self.clock.now_ms() >= self._timers_ms

    def _timers_moment(self) -> float:
        """Market ms at which the timers have work next (-inf: at once)."""
        deadline = self.seam.next_deadline() if self.seam is not None else self._ticks_deadline
        check = self._notes.closure_check_ms
        return check if deadline is None else min(deadline, check)

    def _caught_up(self) -> bool:
        return self.seam.done if self.seam is not None else self._ticks_flowing

    def take_input(self) -> bool:
        """Take what the threads put and run the timers due; True when an event is then ready."""
        if self._take_input():
            self._timers_ms = self._timers_moment()
            self._wake.schedule(self, self.due_in())
        return self._out.has_pending(self._caught_up())

    def _take_input(self) -> bool:
        # Returns whether anything was done: a quiet source polled between its timers costs a lookup.
        handled, seam = self._take_queued(), self.seam
        if self._out.state == "over":
            return True
        if not handled and not self.timers_due():
            return False
        self._run_timers()
        if seam is not None:
            for bar, source in seam.take():
                self._out.bar(bar, quoted=source == "bars_live")
            self.stats.update(seam.stats)
            if seam.first_offhours is not None:
                self._notes.offhours_trade(seam.first_offhours)
            if self.stats["late_ticks"]:
                self._notes.late_trade()
        return True

    def _take_queued(self) -> bool:
        inbox, seam = self._inbox, self.seam
        handled = inbox.overflowed
        if handled:
            inbox.overflowed = False
            if seam is not None:
                seam.on_overflow(self.clock.now_ms())
        for item in inbox.take_all():
            if self._out.state == "over":
                break  # what is still queued no longer matters
            self._handle(item)
            handled = True
        return handled

    def _run_timers(self) -> None:
        now = self.clock.now_ms()
        self._notes.market_closure(now)
        seam = self.seam
        if seam is not None:
            # A trade sent before a bar's end plus grace may still be unread in the socket (its reader
            # waits for the CPU), or still on its way from a service that sends late: the bar closes
            # once the connection has been read past that moment, by the service's lag.  What was read
            # through it is queued by now, so it is taken first.  Asked only when something is due: the
            # timers also run at each trade, on the relay's busiest path.
            through = now
            due = seam.next_deadline()
            if due is not None and due <= now:
                # Between the consumer's passes (its wake driving), a fresh answer: a held bar goes
                # as soon as the reader is through, and the pass after agrees with it.
                through = self.store.hub.read_through(
                    self.family, self.inst, now, self._grace_ms, fresh=self._wake.driving
                )
                self._take_queued()
            seam.on_timer(now, through)
            held = False
            if through < now:  # the reader was behind: is a bar still due, held for it?
                deadline = seam.next_deadline()
                if deadline is not None and deadline <= now:
                    held = True
                    self._count_held(deadline, now)
            self._hold_s = (
                min(max((now - through) / 2000 / self.clock.speed, HOLD_MIN_S), HOLD_MAX_S) if held else 0.0
            )
        elif self._ticks_deadline is not None and now >= self._ticks_deadline:
            self._ticks_flowing, self._ticks_deadline = True, None

    def _count_held(self, deadline: int, now: int) -> None:
        if deadline != self._held_deadline:
            self._held_deadline = deadline
            self.stats["held_bars"] += 1
        self._notes.held((now - deadline) / 1000 / self.clock.speed)

    def _handle(self, item) -> None:
        if isinstance(item, Tick):
            self._on_tick(item)
        elif isinstance(item, Depth):
            self._out.book(item)
        elif isinstance(item, BackfillResult):
            self._rest_pauses = None  # REST answers again
            if item.job != self._probe_job and self.seam is not None:
                self.seam.on_rest(item.job, item.bars, item.done)
                if self.seam.offhours_bars:
                    self._notes.offhours_bars()
        elif isinstance(item, BackfillFailed):
            self._on_backfill_failed(item)
        elif isinstance(item, Notice):
            item.show()  # noticed on the backfill worker: shown from the consumer's call
        elif getattr(item, "kind", None) is not None:
            self._on_status(item)

    def _request_rest(self, after_ms: int | None, upto_ms: int) -> int:
        pause, self._rest_pause_s = self._rest_pause_s, 0.0
        self._rest.anchor_fetch = True
        return self.backfiller.request(after_ms, upto_ms, delay_s=pause)

    def _on_backfill_failed(self, failed: BackfillFailed) -> None:
        error = failed.error
        if not is_retryable(error):
            self._out.fail(error)
            return
        if self._rest_pauses is None:
            self._rest_pauses = backoff(REST_PAUSE_S, REST_PAUSE_CAP_S, jitter=REST_PAUSE_JITTER)
        pause = next(self._rest_pauses)
        if failed.job == self._probe_job:
            self._probe_job = self.backfiller.request(
                None, self._rest.closed_until(self.clock.now_ms()), 1, delay_s=pause
            )
        else:
            # The seam asks again through _request_rest, which takes this pause once.
            self._rest_pause_s = pause
            asked = self.seam is not None and self.seam.on_rest_failed(failed.job)
            self._rest_pause_s = 0.0
            if not asked:  # a superseded job: the seam waits for another
                return
        logger.warning(
            "%s: the REST backfill failed after the client's retries (%s); the bars wait "
            "and REST is asked again in %.1f s",
            self.inst.symbol,
            error,
            pause,
        )
        if self._out.state == "live" or self._out.state == "delayed":
            self._out.note("connbroken")

    def _on_tick(self, tick: Tick) -> None:
        stats = self.stats
        stats["ticks"] += 1
        if self.seam is not None:
            self.seam.on_trade(tick, self.clock.now_ms())
            return
        # TimeFrame.Ticks: every trade is a bar; drop repeats and trades older than the last.
        self._ticks_flowing, self._ticks_deadline = True, None
        if self._seen.is_repeat(tick):
            stats["duplicates"] += 1
            return
        if self._last_tick_time is not None and tick.time < self._last_tick_time:
            stats["late_ticks"] += 1
            return
        self._last_tick_time = tick.time
        if not self.options.extended_hours and not in_regular_hours(tick.time, self.inst.market):
            stats["offhours_trades"] += 1  # the session policy, as the seam applies it to bars
            self._notes.offhours_trade(tick)
            return
        self._out.bar(tick, quoted=True)

    def _on_status(self, status) -> None:
        now = self.clock.now_ms()
        if status.kind == "fatal":
            self._out.fail(status.error)
        elif status.kind == "disconnected":
            self.stats["reconnects"] += 1
            self._out.note("connbroken")  # bars come from REST until the new seam is done
            if self.seam is not None:
                self.seam.on_stream_down(now)
            self._ticks_flowing, self._ticks_deadline = False, None
        elif status.kind == "dropped" and self.inst.symbol in status.symbols:
            self._out.fail(status.error)
        elif status.kind == "malformed" and self.seam is not None:
            # The skipped frame may have carried one of our trades: rebuild the bars in progress.
            self.seam.on_malformed(now)
        elif status.kind == "connected" and not self._anchored:
            self._out.note("delayed")
            self._stream_up(now)

    def _stream_up(self, now: int) -> None:
        if self.seam is not None:
            self.seam.on_stream_up(now)
        else:
            self._ticks_deadline = now + self._margin_ms

    @property
    def _anchored(self) -> bool:
        return self.seam.anchored if self.seam is not None else self._ticks_flowing
