"""``AllTickStore``: owns the transports, the cache and the clock; feeds listen through its stream hub.

One store holds one REST session with one rate limiter, one K-line cache, and one
WebSocket connection per endpoint family shared by every live feed of the store.
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from datetime import date, datetime
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn

import backtrader as bt
import pandas as pd

from . import config, timeframes
from .clock import ServiceClock
from .errors import CacheError, CacheWarning, ConfigError, check_token, mask_token
from .frames import window_frame, window_to_load
from .notices import warn_user
from .param_checks import bar_window, timeframe_and_compression, whole_number
from .plans import Plan, get_plan
from .progress import PageReporter
from .records import Kline
from .redaction import protect
from .snapshots import SnapshotQueries
from .symbols import Instrument, parse_symbol
from .token_seal import open_token, seal_token
from .transport.stream_settings import check_ws_url
from .wire import get_dialect

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from .cache import KlineCache
    from .feed import AllTickData
    from .history import History, HistoryLoader
    from .history.newest import NewestBars
    from .param_types import FeedParams, StoreOptions, StoreParams
    from .sim.simulator import Simulator
    from .transport.rest import RestClient
    from .transport.stream_hub import StreamHub

logger: logging.Logger = logging.getLogger(__name__)

# What put_notification keeps: (message, args, kwargs), handed to the strategy's notify_store.
_Notification = tuple[Any, tuple[Any, ...], dict[str, Any]]


class _NoSingleton(bt.Store.__class__):
    # bt.Store is a MetaSingleton: a second store with other params would silently be
    # the first one (backtrader-live-feeds.md, pain point 11).  Each call builds a store.
    def __call__(cls, *args, **kwargs):
        return bt.metabase.MetaParams.__call__(cls, *args, **kwargs)


class AllTickStore(bt.Store, SnapshotQueries, metaclass=_NoSingleton):
    """Connection to AllTick (or an iTick-shaped service) for Backtrader feeds and scripts.

    Params:

      - ``token`` (default ``None``): API token; falls back to ``ALLTICK_TOKEN``, then to the
        file named by ``ALLTICK_TOKEN_FILE`` or the config file's ``token_file``.
      - ``dialect`` (default ``"alltick"``): ``"alltick"`` or ``"itick"``.
      - ``plan`` (default ``"free"``): ``free``, ``basic``, ``premium``, ``professional``
        or ``unlimited``, or a ``plans.Plan`` of your own; sets request spacing and subscription caps.
      - ``rest_url`` / ``ws_url`` (default ``None``): service roots; fall back to
        ``ALLTICK_REST_URL`` / ``ALLTICK_WS_URL``, then to the dialect's real service.
      - ``cache`` (default ``True``): ``True`` for the user cache directory, a path for a
        file of your own, ``False`` for no cache.  The token's request quota is counted in
        ``quota.sqlite`` beside it, shared by every process that uses the same directory.  A file
        of your own that cannot be used raises ``CacheError``; the default one is a ``CacheWarning``,
        and the store runs without a cache.
      - ``quota_url`` (default ``None``): a Redis URL (``redis://host:port/db``) that holds the
        token's request quota for every machine naming it; falls back to ``ALLTICK_QUOTA_URL``.
      - ``clock`` (default ``None``): our clock; a simulator's clock runs a trading hour in a
        minute.  Default: wall-clock UTC.  The store's ``clock`` is a ``ServiceClock`` on top of
        it: the service's time is learnt from its answers (HTTP ``Date``, the newest bar of a
        page, trade stamps) and decides when a bar has closed, however far ours is off.
      - ``timeout`` (default ``30.0``): REST read timeout in seconds.
      - ``extended_hours`` (default ``True``): bars of every slot the service has trades in,
        whatever the calendar says (pre-market, after hours, overnight, auctions, late prints);
        ``False``: only bars of slots with a regular session (README "Trading outside the
        regular session").  A feed's own ``extended_hours`` overrides it.
      - ``ratelimit_timeout`` (default ``120.0``): seconds one REST call may spend waiting out
        the service's rate-limit answers (HTTP 429, AllTick 605) before it raises ``RateLimited``.
      - ``reconnect`` (default ``True``): reconnect the shared WebSocket after a drop.
      - ``reconnections`` (default ``-1``): attempts per outage before giving up; -1 is forever.
      - ``reconntimeout`` (default ``None``): seconds between attempts at least; ``None`` is the
        plan's minimum (AllTick: 10 s Free, 3 s paid).  Later attempts back off with jitter.
      - ``heartbeat`` (default ``None``): seconds between heartbeats; ``None`` is the dialect's
        (AllTick 10 s, iTick 20 s).
      - ``stale_after`` (default ``None``): seconds without a heartbeat answer before the
        connection counts as dead and is replaced; ``None`` is the dialect's (30 s, 60 s).

      ``dialect``, ``plan``, ``cache``, ``rest_url`` and ``ws_url`` left out (or None) come
      from ``ALLTICK_DIALECT``, ``ALLTICK_PLAN``, ``ALLTICK_CACHE``, ... or the config file
      before the defaults above (:mod:`backtrader_alltick.config`: argument > environment >
      file > default).

    Example::

        store = AllTickStore(plan="basic")
        data = store.getdata(dataname="AAPL.US", timeframe=bt.TimeFrame.Minutes,
                             historical=True, fromdate=datetime(2024, 3, 1))
        df = store.fetch_klines("BTCUSDT", bt.TimeFrame.Minutes, 5, count=100)
    """

    # Turned by Backtrader's metaclass into a class of parameters, read as ``self.p.<name>``.
    params: Any = (
        ("token", None),
        ("dialect", None),  # None: the environment, the config file, then the documented default
        ("plan", None),
        ("rest_url", None),
        ("ws_url", None),
        ("cache", None),
        ("quota_url", None),
        ("clock", None),
        ("timeout", 30.0),
        ("ratelimit_timeout", 120.0),
        ("reconnect", True),
        ("reconnections", -1),
        ("reconntimeout", None),
        ("heartbeat", None),
        ("stale_after", None),
        ("extended_hours", True),
    )

    def __init__(self, **params: Unpack[StoreParams]) -> None:
        # Backtrader's metaclass has already taken the params out of the call into self.p, so
        # ``params`` is always empty here; it is declared for type checkers (param_types).
        super().__init__()
        if self.p.token is not None and not isinstance(self.p.token, str):
            # Never quote the value: it is the token.
            raise ConfigError(f"token must be a string, was a value of type {type(self.p.token).__name__}")
        self._token = config.token(self.p.token)
        self.p.token = None  # keep the token out of params dumps and reprs
        protect(self._token, self)  # and out of every log record, urllib3's and websocket-client's included
        # Resolved once, into the params, so a pickled copy in a worker process uses the same settings.
        for name in ("dialect", "plan", "cache"):
            setattr(self.p, name, config.setting(name, getattr(self.p, name)))
        self._open()
        self.rest_url: str = config.setting("rest_url", self.p.rest_url) or self.wire.DEFAULT_REST_URL
        # A URL that can never connect fails here, not later on a socket thread.
        ws_url = config.setting("ws_url", self.p.ws_url) or self.wire.DEFAULT_WS_URL
        self.ws_url: str = check_ws_url(ws_url, "ws_url" if self.p.ws_url else "ALLTICK_WS_URL", self._token)

    def _open(self) -> None:
        # Everything built from the configuration: run at creation and again in a worker process.
        self.wire: ModuleType = get_dialect(self.p.dialect)
        self.plan: Plan = get_plan(self.p.dialect, self.p.plan)
        # Our clock (the wall, or the one given) only measures time; the service's answers and trades
        # tell its time, and that decides when a bar has closed.
        given = self.p.clock
        self.clock: ServiceClock = given if isinstance(given, ServiceClock) else ServiceClock(given)
        self.notifs: collections.deque[_Notification | None] = collections.deque()
        self._lock = threading.Lock()
        self._rest: RestClient | None = None
        self._cache: KlineCache | None = None
        self._history: History | None = None
        self._hub: StreamHub | None = None
        self._newest: NewestBars | None = None
        self._last_stream_stats: dict[str, dict[str, Any]] = {}

    def __getstate__(self) -> dict[str, Any]:
        # Optimisation on several cores pickles the store into every worker: it travels as its
        # configuration (no module, lock, session, socket or cache handle) and reopens there on
        # first use.  The token travels sealed for this run's processes only (token_seal).
        return {
            "params": self.p,
            "rest_url": self.rest_url,
            "ws_url": self.ws_url,
            "sealed_token": seal_token(self._token),
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.params = self.p = state["params"]
        self.rest_url, self.ws_url = state["rest_url"], state["ws_url"]
        self._token = open_token(state["sealed_token"])
        if self._token is None:
            if state["sealed_token"] is not None:
                logger.warning(
                    "the pickled store's token was sealed by another run and cannot be read "
                    "here; using ALLTICK_TOKEN if set"
                )
            self._token = config.token()
        self._started = False
        protect(self._token, self)  # a worker process logs too
        self._open()

    def __repr__(self) -> str:
        return (
            f"AllTickStore(dialect={self.p.dialect!r}, plan={self.plan.name!r}, "
            f"rest_url={self.rest_url!r}, token={mask_token(self._token)!r})"
        )

    @classmethod
    def from_simulator(cls, sim: Simulator, **kwargs: Unpack[StoreOptions]) -> AllTickStore:
        """Build a store that talks to a running :class:`~backtrader_alltick.sim.Simulator`."""
        kwargs.setdefault("plan", sim.plan.name)
        kwargs.setdefault("clock", sim.clock)
        return cls(token=sim.token, dialect=sim.dialect, rest_url=sim.rest_url, ws_url=sim.ws_url, **kwargs)

    # -- Backtrader store protocol -------------------------------------------------

    @classmethod
    def getbroker(cls, *args: Any, **kwargs: Any) -> NoReturn:
        """Refuse: AllTick serves market data only; orders go to Backtrader's own broker."""
        raise ConfigError(
            "AllTickStore provides market data only and has no broker; paper trading uses "
            "Backtrader's broker (bt.brokers.BackBroker, cerebro's default): leave "
            "cerebro.broker as it is, or cerebro.setbroker(bt.brokers.BackBroker(cash=...))"
        )

    # The feed class registers itself here when feed.py is imported (as Backtrader's IB and Oanda
    # feeds do), so the store never imports the layer above it.
    DataCls: ClassVar[type[AllTickData]]

    def getdata(self, **params: Unpack[FeedParams]) -> AllTickData:
        """Return an ``AllTickData`` feed bound to this store (same params as the class)."""
        return self.DataCls(store=self, **params)

    def start(self, data: AllTickData | None = None, broker: None = None) -> None:
        if not self._started:
            self._started = True
            self.datas: list[AllTickData] = []
            self.broker: None = None  # market data only: no broker (getbroker)
        if data is not None:
            self.datas.append(data)

    def stop(self) -> None:
        # Cerebro stops the feeds before the store, but not when a run raised: a feed's live source
        # (its backfill worker, its subscriptions) then outlived the store, and reopened the store's
        # REST client on its next job, never to close it.  Stopping a feed twice is harmless.
        if self._started:
            for data in self.datas:
                data.stop()
        with self._lock:
            hub, rest, cache = self._hub, self._rest, self._cache
            self._hub = self._rest = self._cache = self._history = None
        if hub is not None:
            hub.stop()
            self._last_stream_stats = hub.stats
        if rest is not None:
            rest.close()
            rest.limiter.close()
        if cache is not None:
            cache.close()
        self._started = False

    def put_notification(self, msg: Any, *args: Any, **kwargs: Any) -> None:
        self.notifs.append((msg, args, kwargs))

    def get_notifications(self) -> list[_Notification]:
        self.notifs.append(None)
        out = []
        while (item := self.notifs.popleft()) is not None:
            out.append(item)
        return out

    # -- Transports, built on first use ---------------------------------------------

    @property
    def has_token(self) -> bool:
        """True when the store has a token (the token itself never leaves the store but to its transports)."""
        return self._token is not None

    def _checked_token(self) -> str:
        return check_token(self._token)

    @property
    def stream_stats(self) -> dict[str, dict[str, Any]]:
        """Counters of the shared WebSocket per family (frames, malformed, reconnects...); kept after stop."""
        hub = self._hub
        return hub.stats if hub is not None else self._last_stream_stats

    @property
    def rest(self) -> RestClient:
        token = self._checked_token()
        with self._lock:
            if self._rest is None:
                from .cache import cache_directory
                from .transport.quota_ledger import open_ledger, quota_key
                from .transport.ratelimit import RateLimiter
                from .transport.rest import RestClient

                # The quota is the token's: every process on the cache directory (or the Redis
                # of quota_url) counts in one ledger.
                try:
                    ledger = open_ledger(
                        self.plan,
                        quota_key(self.p.dialect, self.rest_url, token),
                        directory=cache_directory(self.p.cache),
                        url=self.p.quota_url,
                    )
                except CacheError as e:
                    if self.p.cache is not True:
                        raise
                    self._refuse_default_cache(e, "counting its requests in this process only")
                    ledger = None
                limiter = RateLimiter(self.plan, ledger=ledger)
                try:
                    self._rest = RestClient(
                        self.wire,
                        token,
                        self.rest_url,
                        self.plan,
                        limiter=limiter,
                        timeout=(5.0, float(self.p.timeout)),
                        ratelimit_timeout=float(self.p.ratelimit_timeout),
                        clock=self.clock,
                    )
                except BaseException:
                    limiter.close()
                    raise
            return self._rest

    @property
    def cache(self) -> KlineCache | None:
        with self._lock:
            if self._cache is None and self.p.cache:
                from .cache import KlineCache

                if self.p.cache is not True:
                    self._cache = KlineCache(Path(self.p.cache))
                else:
                    try:
                        self._cache = KlineCache(None)
                    except CacheError as e:
                        self._refuse_default_cache(e, "so every bar comes from the service")
            return self._cache

    def _refuse_default_cache(self, error: CacheError, meaning: str) -> None:
        # A file the user named is theirs to fix before anything runs (CacheError); the one in the user
        # cache directory is ours, and a run can go on without it once the user is told.
        self.p.cache = False
        warn_user(f"{error}; this store goes on without a cache, {meaning}", CacheWarning)

    @property
    def history(self) -> History:
        """Closed bars of a window (:meth:`History.get_range`), from the service or a relay's archive."""
        with self._lock:
            if self._history is None:
                from .history import History

                self._history = History(self._open_native_bars, self.clock, self.p.dialect)
            return self._history

    def _open_native_bars(self) -> HistoryLoader:
        # Built when History first asks the service (a relay's archive needs no token): the REST client
        # and the cache, under a namespace that keeps a simulator's or another host's bars apart.
        from .history import HistoryLoader, cache_namespace

        return HistoryLoader(
            self.rest, self.cache, self.wire, self.clock, namespace=cache_namespace(self.wire, self.rest_url)
        )

    @property
    def newest(self) -> NewestBars | None:
        """What gathers the short backfills of this store's live sources (the feeds' and a relay's)
        into ``/batch-kline`` calls: those starting or reconnecting together share one call per plan
        group size.  None where the dialect has no such endpoint: each asks ``/kline``."""
        if not hasattr(self.wire, "batch_kline_request"):
            return None
        with self._lock:
            if self._newest is None:
                from .history.newest import NewestBars

                self._newest = NewestBars(self._batch_newest, self.clock)
            return self._newest

    def _batch_newest(self, insts: Sequence[Instrument], period: str) -> dict[str, list[Kline]]:
        # The answer's closed bars go into the cache as a /kline page's do.
        from .history import cache_namespace, cache_newest_bars
        from .history.newest import ANSWER_BARS

        sent = self.clock.mark()
        found = self.rest.batch_klines(insts, period, ANSWER_BARS)
        cache = self.cache
        if cache is not None:
            try:
                namespace = cache_namespace(self.wire, self.rest_url)
                cache_newest_bars(cache, namespace, self.clock, found, period, sent)
            except CacheError as e:  # the bars are good: only keeping them failed
                logger.warning("the newest bars of %d symbols were not cached: %s", len(found), e)
        return found

    @property
    def hub(self) -> StreamHub:
        token = self._checked_token()
        with self._lock:
            if self._hub is None:
                from .transport.stream_hub import StreamHub

                self._hub = StreamHub(
                    self.wire,
                    self.ws_url,
                    token,
                    self.plan,
                    clock=self.clock,
                    on_status=self._on_stream_status,
                    reconnect=self.p.reconnect,
                    reconnections=self.p.reconnections,
                    min_reconnect_interval=self._reconnect_floor(),
                    heartbeat_interval=self.p.heartbeat,
                    stale_after=self.p.stale_after,
                )
                self._hub.start()
            return self._hub

    def _reconnect_floor(self) -> float | None:
        # Never faster than the plan allows, whatever the user asked for.
        wanted = self.p.reconntimeout
        return None if wanted is None else max(self.plan.reconnect_interval, float(wanted))

    # -- Records from the shared WebSocket ---------------------------------------------

    def check_capacity(self, symbols: Iterable[str | Instrument], *, depth: bool = False) -> None:
        """Raise ConfigError when the plan's connections cannot serve ``symbols`` live (on top of
        what is already subscribed); opens nothing.

        The plan gives each endpoint family (AllTick: stocks, everything else) a number of
        connections of so many codes; the service silently ignores codes past them.

        Example::

            store = AllTickStore(plan="premium")
            store.check_capacity(universe)    # ConfigError for the 601st stock code
        """
        self.hub.check([parse_symbol(symbol) for symbol in symbols], depth=depth)

    def listen(
        self,
        symbol: str | Instrument,
        on_record: Callable[[Any], None],
        *,
        depth: bool = False,
        on_status: Callable[[Any], None] | None = None,
        region: str | None = None,
    ) -> None:
        """Deliver every record of ``symbol`` to ``on_record`` and the changes of the connection that
        carries it to ``on_status`` (both called on a socket thread; they must not block).
        Past the plan's codes it raises ConfigError and subscribes nothing.

        ``symbol`` is read as :meth:`fetch_klines` reads it (``"AAPL.US"``, or ``"AAPL"`` with
        ``region="US"``); an :class:`~backtrader_alltick.symbols.Instrument` is taken as it is.
        """
        self.hub.subscribe(
            parse_symbol(symbol, region), trades=True, depth=depth, on_record=on_record, on_status=on_status
        )

    def unlisten(
        self,
        symbol: str | Instrument,
        on_record: Callable[[Any], None],
        *,
        depth: bool = False,
        on_status: Callable[[Any], None] | None = None,
        region: str | None = None,
    ) -> None:
        """Undo :meth:`listen` (the same arguments)."""
        with self._lock:
            hub = self._hub
        if hub is not None:
            hub.unsubscribe(
                parse_symbol(symbol, region),
                trades=True,
                depth=depth,
                on_record=on_record,
                on_status=on_status,
            )

    def _on_stream_status(self, status: Any) -> None:
        self.put_notification(f"stream {status.connection}: {status.kind}", status)

    # -- Plain-Python helpers for scripts and notebooks -------------------------------

    def fetch_klines(
        self,
        symbol: str,
        timeframe: int | str = bt.TimeFrame.Minutes,
        compression: int = 1,
        fromdate: datetime | date | str | None = None,
        todate: datetime | date | str | None = None,
        count: int | None = None,
        *,
        region: str | None = None,
        on_progress: Callable[..., None] | None = None,
        source: str | None = None,
        source_url: str | None = None,
        extended_hours: bool | None = None,
        progress: bool = False,
    ) -> pd.DataFrame:
        """Return closed K-lines as a DataFrame indexed by bar close time (UTC); daily and longer
        bars by their trading date (naive, midnight), as the feed stamps them.

        ``timeframe`` is a ``bt.TimeFrame`` value or a period name such as ``"1m"``, ``"1h"``,
        ``"1d"``.  Columns: open, high, low, close, volume, turnover.  ``fromdate`` and
        ``todate`` are datetimes, dates, pandas Timestamps or ISO strings (naive means UTC;
        a date alone is the trading day, as the feed reads it) and, as in Backtrader, both keep
        a bar stamped exactly at them.  ``source="influx"`` with ``source_url="http://host:8086[/database]"``
        reads a relay's InfluxDB archive instead of the service (bars built from archived
        bars or ticks where needed).  ``extended_hours`` (default: the store's) is the session
        policy, as for a feed.

        A download of many pages (the Free plan allows one request every 10 s) reports each page:
        at INFO on the ``backtrader_alltick`` logger, to ``on_progress`` (called with a
        :class:`~backtrader_alltick.history.Progress`: ``requests``, ``bars``, ``fraction``) and,
        with ``progress=True``, as a tqdm bar on stderr (``pip install 'backtrader-alltick[progress]'``).
        """
        inst = parse_symbol(symbol, region)
        spec = self.resolve_timeframe(inst, timeframe, compression)
        start_ms, end_ms = bar_window(inst.market, spec.native.is_intraday, fromdate, todate)
        count = whole_number("count", count, optional=True)
        policy = self.extended_hours(extended_hours)
        pages = PageReporter(on_progress, bar=progress)
        from .history import Window

        asked = window_to_load(spec, start_ms, end_ms, count)
        try:
            bars = (
                []
                if asked is None
                else self.history.get_range(
                    inst,
                    spec,
                    Window(*asked),
                    source=source,
                    source_url=source_url,
                    on_progress=pages,
                    extended_hours=policy,
                ).bars
            )
        finally:
            pages.close()
        frame = window_frame(bars, inst.market, spec, start_ms, end_ms, count)
        if frame.empty:
            from .notices import warn_no_bars

            warn_no_bars(inst.symbol, spec.period, start_ms, end_ms, count, "the frame is empty")
        return frame

    def latest_bars(
        self, symbols: Iterable[str | Instrument], timeframe: int | str = "1m", compression: int = 1
    ) -> dict[str, Kline | None]:
        """Return ``{symbol: newest closed bar}`` of a universe in as few requests as the plan allows
        (AllTick ``/batch-kline``: up to 500 symbols a call on the top plans); see :mod:`.universe`."""
        from .universe import latest_closed_bars

        return latest_closed_bars(self, symbols, timeframe, compression)

    def extended_hours(self, asked: bool | None = None) -> bool:
        """The session policy for a caller that asked for ``asked`` (None: the store's own)."""
        policy = self.p.extended_hours if asked is None else asked
        if not isinstance(policy, bool):
            raise ConfigError(f"extended_hours must be True or False, was {policy!r}")
        return policy

    def resolve_timeframe(
        self, inst: Instrument, timeframe: int | str, compression: int = 1, *, live: bool = False
    ) -> timeframes.BarSpec:
        """The native period and multiple serving ``(timeframe, compression)``; live feeds also take Ticks."""
        timeframe, compression = timeframe_and_compression(timeframe, compression)
        natives = self.wire.native_periods(inst)
        return timeframes.resolve(timeframe, compression, natives, inst.symbol, live=live)
