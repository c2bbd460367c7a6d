"""What a live source tells its user, each thing once: a quiet market, trades or bars the session
policy left out, a trade too late for its bar, a gap live-only bars leave, bars held for the stream.

Conditions the user must act on are warnings (:func:`~backtrader_alltick.notices.warn_user`);
operational detail goes to the log.  The counts themselves live in the source's ``stats``.
"""

from __future__ import annotations

import logging
import math

from ..errors import LateTradeWarning, LiveOnlyWarning, MarketClosedWarning, SessionPolicyWarning
from ..markets import MINUTE_MS
from ..notices import warn_user
from ..records import Tick, format_utc
from ..symbols import Instrument
from . import SourceOptions

logger = logging.getLogger("backtrader_alltick.sources.stream")

# Wall seconds a bar may be held past its grace before the log says why bars come late (once).
HOLD_NOTE_S = 5.0


class StreamNotes:
    """The once-per-feed messages of one live source of ``inst``.

    Example::

        notes = StreamNotes(parse_symbol("AAPL.US"), SourceOptions(extended_hours=False))
        notes.market_closure(clock.now_ms())   # at each timer run: says a closure once
        notes.offhours_trade(tick)             # the first trade the session policy left out
    """

    def __init__(self, inst: Instrument, options: SourceOptions) -> None:
        self.inst, self.options = inst, options
        self._offhours_trades = self._offhours_bars = self._reseam = self._late = self._held = False
        self._closure: str | None = None
        self.closure_check_ms: float = -math.inf  # the first check, at the first poll, warns the user

    def late_trade(self) -> None:
        # A bar already handed out lacks this trade: it differs from the service's K-line.  Said once,
        # since Backtrader cannot take a bar back; the count goes on in stats.
        if self._late:
            return
        self._late = True
        warn_user(
            f"{self.inst.symbol}: a trade came after its live bar was handed out, so that bar lacks it "
            f"(grace={self.options.grace} s); counted in stats['late_ticks']; pass a larger grace to "
            "wait longer for late trades",
            LateTradeWarning,
        )

    def market_closure(self, now: int) -> None:
        # Said once per closure (a night, a holiday, an early close): a quiet feed then is expected,
        # not a fault.  Checked once a market minute, which is often enough for a log line.
        if now < self.closure_check_ms:
            return
        starting = self.closure_check_ms == -math.inf
        self.closure_check_ms = now + MINUTE_MS
        closed = self.inst.market.closed_note(now)
        if closed and closed != self._closure:
            # The calendar says when to expect bars, never that a trade does not exist.
            until = (
                "bars only from trades the service still sends"
                if self.options.extended_hours
                else "no bars until then (extended_hours=False)"
            )
            if starting:  # a script started at night would otherwise look hung
                warn_user(
                    f"{self.inst.symbol}: {closed}; {until}, so the live feed may stay quiet",
                    MarketClosedWarning,
                )
            else:
                logger.info("%s: %s; %s", self.inst.symbol, closed, until)
        self._closure = closed

    def offhours_trade(self, tick: Tick) -> None:
        if self._offhours_trades:
            return
        self._offhours_trades = True
        warn_user(
            f"{self.inst.symbol}: trades outside the regular session are left out (extended_hours="
            f"False), the first at {format_utc(tick.time)}; counted in stats['offhours_trades']; pass "
            "extended_hours=True to keep them",
            SessionPolicyWarning,
        )
        if tick.session == 0:
            # The service says regular session where our calendar says closed: the calendar is behind.
            warn_user(
                f"{self.inst.symbol}: the service marks a trade at {format_utc(tick.time)} as regular-"
                f"session trading while the {self.inst.market.name} calendar says closed; the calendar "
                "may be out of date (upgrade the calendars extra) or pass extended_hours=True",
                SessionPolicyWarning,
            )

    def offhours_bars(self) -> None:
        if self._offhours_bars:
            return
        self._offhours_bars = True
        warn_user(
            f"{self.inst.symbol}: REST bars outside the regular session are left out "
            "(extended_hours=False), counted in stats['offhours_bars']; pass "
            "extended_hours=True to keep them",
            SessionPolicyWarning,
        )

    def reseam(self, why: str, last_end: int, seam: int, from_rest: bool) -> None:
        # Once per feed: the user chose live-only bars, and this is what that choice costs or ignores.
        if self._reseam or (from_rest and self.options.backfill_start):
            return
        self._reseam = True
        symbol = self.inst.symbol
        if from_rest:
            warn_user(
                f"{symbol}: {why}; the bars it cut are rebuilt from REST (backfill=True) although "
                "backfill_start=False; pass backfill=False as well for bars from the stream only "
                "(a drop then leaves a gap)",
                LiveOnlyWarning,
            )
        else:
            warn_user(
                f"{symbol}: {why}; with backfill=False the bars closing after {format_utc(last_end)} "
                f"up to {format_utc(seam)} are not rebuilt from REST, so the feed has a gap there; "
                "pass backfill=True to fill such gaps",
                LiveOnlyWarning,
            )

    def held(self, waited_s: float) -> None:
        # Holding keeps a bar complete; what it costs is latency, said once when large.
        if self._held or waited_s < HOLD_NOTE_S:
            return
        self._held = True
        logger.warning(
            "%s: a bar has waited %.0f s past its grace for the stream's trades (the reader is "
            "behind, or the service sends late); bars stay complete but come late; counted in "
            "stats['held_bars']",
            self.inst.symbol,
            waited_s,
        )
