"""The relay: one process holds the upstream connection and fans the data out through Redis and InfluxDB.

AllTick Free and Basic allow one WebSocket per token, so several strategies (or machines)
need one process that holds it.  The relay subscribes every symbol once through the
store, writes each raw tick, quote and book into Redis (and ticks into InfluxDB when
asked), and builds closed bars per configured timeframe with the live feed's own bar
source, :class:`~backtrader_alltick.sources.stream.StreamBars`: the same seam, REST
backfill, timer-closed bars and reconnect rebuild as ``AllTickData``.  Each bar goes to
Redis (stream ID = bar end, so a restarted relay rewriting a bar does not repeat it) and
to InfluxDB.

Why sources polled by one thread rather than a headless Cerebro: Cerebro delivers the bars
of all its feeds in one time order, so a feed that is still backfilling or whose market is
closed would hold back the bars of the others, its line buffers grow with the run, and the
bar would have to be rebuilt from float lines.  A source hands over the exact
:class:`~backtrader_alltick.records.Kline` it built.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from .bars import SeenTrades
from .errors import AllTickError, ConfigError, TransportError
from .records import KIND_OF, PUSHED_KINDS, Kline, Tick
from .sources import BarReady, BarSource, Failed, SourceOptions, StateChanged
from .sources.inbox import Wake
from .sources.stream import StreamBars
from .symbols import Instrument, parse_symbol
from .timeframes import BarSpec, parse_period

if TYPE_CHECKING:
    from .sinks.buffer import BufferedWriter
    from .sinks.influx import InfluxSink
    from .sinks.recording import RecordingSink
    from .sinks.redis import RedisSink
    from .store import AllTickStore
    from .transport.stream_hub import StreamStatus

logger: logging.Logger = logging.getLogger(__name__)

# How long the bar thread waits at most before checking whether the relay stops.
_DISPATCH_WAIT_S = 0.25
# How often the bar thread polls every source anyway.
_SWEEP_S = 5.0


class Relay:
    """Hold one upstream connection per endpoint family and write everything it brings to Redis and InfluxDB.

    Parameters
    ----------
    store : AllTickStore
        The connection to the service (or a simulator); the relay does not stop it.
    symbols : iterable of str
        Symbols to record, e.g. ``["AAPL.US", "BTCUSDT"]``.
    redis_url, influx_url : str or None
        Where to write (at least one of these or ``recording``).  ``influx_url`` may end in
        ``/<database>`` (default database ``alltick``).
    recording : str or Path or None
        A recording directory (:mod:`backtrader_alltick.recording`) that receives every
        trade, and the books when ``types`` has ``depth``; appended to if it exists.  Bars
        are built only when Redis or InfluxDB is written too.
    timeframes : iterable of str
        Bar lengths to build and write: ``1m``, ``5m``, ``3m``, ``1h``, ``2h``, ``1d`` ...
    types : iterable of str
        Raw records to write into Redis: ``tick``, ``quote`` (itick dialect), ``depth``.
    archive_ticks : bool
        Also write every tick into InfluxDB (AllTick keeps no historical ticks).
    lookback : int
        Bars to backfill per timeframe when Redis holds none of them yet; otherwise the
        relay resumes after the newest bar in Redis (within ``lookback`` bars).
    prefix : str
        First part of every Redis key.
    grace : float
        Wall seconds after a bar's end before it closes (see ``AllTickData``).
    redis_options, influx_options, recording_options : dict or None
        Extra keyword arguments for :class:`RedisSink` / :class:`InfluxSink` /
        :class:`RecordingSink` (buffer bounds, batch sizes, retry pacing).

    Example::

        store = AllTickStore()
        with Relay(store, ["BTCUSDT"], redis_url="redis://127.0.0.1:6379/0", timeframes=("1m", "5m")):
            stop_event.wait()
    """

    def __init__(
        self,
        store: AllTickStore,
        symbols: Iterable[str | Instrument],
        *,
        redis_url: str | None = None,
        influx_url: str | None = None,
        timeframes: Iterable[str] = ("1m",),
        types: Iterable[str] = ("tick",),
        archive_ticks: bool = False,
        lookback: int = 500,
        prefix: str = "alltick",
        grace: float = 0.25,
        redis_options: dict[str, Any] | None = None,
        influx_options: dict[str, Any] | None = None,
        recording: str | os.PathLike[str] | None = None,
        recording_options: dict[str, Any] | None = None,
    ) -> None:
        if redis_url is None and influx_url is None and recording is None:
            raise ConfigError(
                "Relay needs somewhere to write: pass redis_url, influx_url and/or recording, was none"
            )
        self.store: AllTickStore = store
        self.instruments: list[Instrument] = _unique(parse_symbol(symbol) for symbol in symbols)
        if not self.instruments:
            raise ConfigError("Relay needs at least one symbol, was none")
        self.types: frozenset[str] = frozenset(types)
        if self.types - set(PUSHED_KINDS):
            raise ConfigError(
                f"types must be a subset of {', '.join(PUSHED_KINDS)}, was {sorted(self.types)}"
            )
        if not isinstance(lookback, int) or lookback < 1:
            raise ConfigError(f"lookback must be a whole number of 1 or more bars, was {lookback!r}")
        periods = [parse_period(text) for text in timeframes]
        if not periods:
            raise ConfigError("Relay needs at least one timeframe, was none")
        self.specs: dict[str, list[BarSpec]] = {
            inst.symbol: [store.resolve_timeframe(inst, *period) for period in periods]
            for inst in self.instruments
        }
        self.redis_url: str | None = redis_url
        self.influx_url: str | None = influx_url
        self.archive_ticks: bool = archive_ticks
        self.lookback: int = lookback
        self.prefix: str = prefix
        self.grace: float = grace
        self.redis_options: dict[str, Any] = dict(redis_options or {})
        self.influx_options: dict[str, Any] = dict(influx_options or {})
        self.recording_path: str | os.PathLike[str] | None = recording
        self.recording_options: dict[str, Any] = dict(recording_options or {})
        self.redis: RedisSink | None = None
        self.influx: InfluxSink | None = None
        self.recording: RecordingSink | None = None
        self.errors: list[AllTickError] = []
        self._counts: Counter = Counter()
        self._counts_lock = threading.Lock()
        self._seen = SeenTrades()  # guarded by _counts_lock
        self._bars: _BarDispatcher | None = None
        self._stop = threading.Event()
        self._started = False

    def __repr__(self) -> str:
        symbols = ",".join(inst.symbol for inst in self.instruments)
        return f"Relay({symbols}, redis={self.redis is not None}, influx={self.influx is not None})"

    # -- lifecycle ------------------------------------------------------------------------------------

    def start(self) -> Relay:
        """Open the sinks, subscribe every symbol and start building bars; return self."""
        if self._started:
            return self
        depth = bool(self.types & {"quote", "depth"})
        # A universe past the plan's connections fails here, before a sink opens or a socket connects.
        self.store.check_capacity(self.instruments, depth=depth)
        self._started = True
        self._stop.clear()
        if self.redis_url is not None:
            from .sinks.redis import RedisSink

            self.redis = RedisSink(self.redis_url, prefix=self.prefix, **self.redis_options)
        if self.influx_url is not None:
            from .sinks.influx import InfluxSink
            from .transport.influx_client import split_influx_url

            root, database = split_influx_url(self.influx_url)
            self.influx = InfluxSink(root, database, dialect=self.store.p.dialect, **self.influx_options)
        if self.recording_path is not None:
            from .sinks.recording import RecordingSink

            self.recording = RecordingSink(
                self.recording_path, dialect=self.store.p.dialect, **self.recording_options
            )
        resume = self._resume_points()
        builds_bars = self.redis is not None or self.influx is not None
        depth = bool(self.types & {"quote", "depth"})
        for inst, told in zip(self.instruments, self._status_listeners()):
            self.store.listen(inst, self._on_record, depth=depth, on_status=told)
        if builds_bars:
            self._bars = _BarDispatcher(self, resume)
        logger.info(
            "relay: recording %s (bars %s, raw %s) into %s",
            ", ".join(inst.symbol for inst in self.instruments),
            ", ".join(sorted({s.period for specs in self.specs.values() for s in specs})),
            ", ".join(sorted(self.types)) or "none",
            " and ".join(name for name, sink in self._sinks(("Redis", "InfluxDB", "a recording"))),
        )
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop building bars, unsubscribe, and flush the sinks (waiting up to ``timeout`` each)."""
        if not self._started:
            return
        self._started = False
        self._stop.set()
        depth = bool(self.types & {"quote", "depth"})
        for inst, told in zip(self.instruments, self._status_listeners()):
            self.store.unlisten(inst, self._on_record, depth=depth, on_status=told)
        if self._bars is not None:
            self._bars.join()
            self._bars = None
        for _, sink in self._sinks():
            sink.close(timeout)

    def __enter__(self) -> Relay:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every sink has confirmed everything written so far; False on timeout."""
        return all(sink.flush(timeout) for _, sink in self._sinks())

    def _sinks(
        self, names: tuple[str, str, str] = ("redis", "influx", "file")
    ) -> list[tuple[str, BufferedWriter]]:
        """(name, sink) of the sinks this relay writes to."""
        return [
            (name, sink)
            for name, sink in zip(names, (self.redis, self.influx, self.recording))
            if sink is not None
        ]

    @property
    def stats(self) -> dict[str, Any]:
        """Counters: records seen per kind, bars per period, sink totals, upstream connections."""
        with self._counts_lock:
            counts = dict(self._counts)
        out = {
            "ticks": counts.get("tick", 0),
            "quotes": counts.get("quote", 0),
            "depth": counts.get("depth", 0),
            "bars": {key[4:]: value for key, value in counts.items() if key.startswith("bar:")},
            "upstream_connects": counts.get("connected", 0),
            "upstream_drops": counts.get("disconnected", 0),
            "errors": len(self.errors),
        }
        for name, sink in self._sinks():
            out[name] = {
                "written": sink.written,
                "pending": sink.pending,
                "dropped": sink.dropped,
                "rejected": sink.rejected,
            }
        if self.redis is not None:
            out["redis"]["duplicates"] = self.redis.duplicates
        return out

    # -- socket threads: never block ----------------------------------------------------------------

    def _on_record(self, record: object) -> None:
        kind = KIND_OF.get(type(record))
        recorded = kind == "tick" or kind == "depth" and kind in self.types
        if (
            kind is None
            or kind not in self.types
            and not (kind == "tick" and (self.archive_ticks or self.recording is not None))
        ):
            return
        # One lock per record for both: one reader thread per endpoint family calls in.
        with self._counts_lock:
            # A trade the service sent twice is written once, as the direct feed counts it once.
            if type(record) is Tick and self._seen.is_repeat(record):
                return
            self._counts[kind] += 1
        if self.redis is not None and kind in self.types:
            self.redis.write((record,))
        if self.influx is not None and kind == "tick" and self.archive_ticks:
            self.influx.write((record,))
        if self.recording is not None and recorded:
            self.recording.write((record,))

    def _status_listeners(self) -> list[Callable[[StreamStatus], None] | None]:
        # Statuses come per connection, to the listeners of the symbols it carries (the hub tells a
        # listener of several of them once): listen with every symbol.
        return [self._on_status] * len(self.instruments)

    def _on_status(self, status: StreamStatus) -> None:
        self._count(status.kind)
        if status.kind == "fatal":
            logger.error("relay: upstream %s gave up: %s", status.connection, status.error)
            self.errors.append(status.error or AllTickError(f"upstream {status.connection} gave up"))
        elif status.kind == "disconnected":
            logger.warning(
                "relay: upstream %s dropped; reconnecting (bars are rebuilt from REST)", status.connection
            )
        elif status.kind == "malformed":
            logger.warning(
                "relay: upstream %s sent a malformed frame (%s); bars in progress are rebuilt from REST",
                status.connection,
                status.error,
            )
        else:
            logger.info("relay: upstream %s connected", status.connection)

    # -- the bar thread -------------------------------------------------------------------------------

    def _on_bar(self, label: str, bar: Kline) -> None:
        if bar.period != label:
            bar = dataclasses.replace(bar, period=label)
        self._count(f"bar:{label}")
        for sink in (self.redis, self.influx):
            if sink is not None:
                sink.write((bar,))

    def _on_error(self, inst: Instrument, label: str, error: AllTickError) -> None:
        self.errors.append(error)
        logger.error("relay: %s %s bars stopped: %s", inst.symbol, label, error)

    def _count(self, key: str) -> None:
        with self._counts_lock:
            self._counts[key] += 1

    def _resume_points(self) -> dict[tuple[str, str], int]:
        # Resume each bar stream after its newest bar, so a restart fills exactly the gap.
        if self.redis_url is None:
            return {}
        from .transport.redis_reader import RedisReader

        points: dict[tuple[str, str], int] = {}
        now = self.store.clock.now_ms()
        try:
            with RedisReader(self.redis_url, self.prefix, reconnect_timeout=0) as source:
                for inst in self.instruments:
                    latest = source.last(inst.symbol).bars
                    for spec in self.specs[inst.symbol]:
                        bar = latest.get(spec.period)
                        reach = self.lookback * spec.native.millis * spec.multiple
                        if bar is not None and now - bar.end <= reach:
                            points[(inst.symbol, spec.period)] = bar.end
        except TransportError as e:
            logger.warning(
                "relay: cannot read where the bars stopped (%s); backfilling %d bars instead",
                e,
                self.lookback,
            )
        return points


class _BarDispatcher:
    """One thread for every (symbol, timeframe): polls a bar source when it has input or its timer is due.

    With a universe, polling every source at each wake-up cost the thread O(symbols) per tick: the
    sources share a :class:`~.sources.inbox.Wake`, which hands back only those with input or a timer due.
    """

    def __init__(self, relay: Relay, resume: dict[tuple[str, str], int]) -> None:
        self.relay = relay
        self._wake = Wake()
        options = SourceOptions(
            grace=relay.grace, lookback=relay.lookback, extended_hours=relay.store.extended_hours()
        )
        self._sources: dict[BarSource, tuple[Instrument, str]] = {}
        newest = relay.store.newest  # the start's and each reconnect's short backfills, in batches
        for inst in relay.instruments:
            for spec in relay.specs[inst.symbol]:
                label = spec.period
                source = StreamBars(
                    relay.store,
                    inst,
                    spec,
                    options,
                    _after(resume.get((inst.symbol, label))),
                    wake=self._wake,
                    newest=newest,
                )
                self._sources[source] = (inst, label)
        self._thread = threading.Thread(target=self._run, name="alltick-relay", daemon=True)
        self._thread.start()

    def join(self) -> None:
        self._thread.join()
        for source in self._sources:
            source.close()

    def _run(self) -> None:
        stop = self.relay._stop
        try:
            due = list(self._sources)  # every source once, to learn its first timer
            sweep_at = time.monotonic() + _SWEEP_S
            while not stop.is_set() and self._sources:
                for source in due:
                    if source in self._sources:
                        self._drain(source)
                now = time.monotonic()
                if now >= sweep_at:  # a safety net: every source is polled now and then
                    due = list(self._sources)
                    sweep_at = now + _SWEEP_S
                else:
                    due = self._wake.drive(min(_DISPATCH_WAIT_S, sweep_at - now))
        except Exception as e:  # a bug must not end the bars silently: record stops with an error
            logger.exception("relay: building bars crashed")
            self.relay.errors.append(AllTickError(f"building bars crashed: {e!r}"))

    def _drain(self, source: BarSource) -> None:
        inst, label = self._sources[source]
        while (event := source.poll(0.0)) is not None:
            if isinstance(event, BarReady):
                # The relay's timeframes are periods (parse_period), never ticks: its sources build bars.
                assert isinstance(event.bar, Kline), f"a bar source delivered {event.bar!r}"
                self.relay._on_bar(label, event.bar)
            elif isinstance(event, StateChanged):
                logger.info("relay: %s %s bars %s", inst.symbol, label, event.state.upper())
            elif isinstance(event, Failed):
                self.relay._on_error(inst, label, event.error)
                source.close()
                del self._sources[source]
                return


def _after(newest_end: int | None) -> int | None:
    # The newest bar in Redis was closed when written: backfill from the one after it, so a restart a
    # bar later fits one /batch-kline answer rather than one /kline per symbol.
    return None if newest_end is None else newest_end + 1


def _unique(instruments: Iterable[Instrument]) -> list[Instrument]:
    seen: dict[str, Instrument] = {}
    for inst in instruments:
        seen.setdefault(inst.symbol, inst)
    return list(seen.values())
