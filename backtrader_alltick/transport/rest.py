"""REST transport: one ``requests.Session``, the plan's rate limiter, retries and error mapping.

The wire module of the dialect builds each request and parses each answer; this module
only moves bytes.  It places the token (``dialect.authorize``), waits on the limiter,
sends, decodes JSON and hands ``(status, payload)`` to the parser, then decides:

- rate limited (HTTP 429, AllTick ``ret`` 605): wait ``Retry-After`` (seconds or an HTTP
  date, capped) or the backoff, push the shared limiter back, retry; give up with
  RateLimited once the waits of one call would pass ``ratelimit_timeout``;
- HTTP 5xx, timeouts, refused connections: bounded retries with exponential backoff and
  jitter;
- everything else (auth, unknown symbol, plan limits, other 4xx): raise at once.

Exceptions of ``requests`` and ``urllib3`` are translated in exactly one place,
:func:`http_errors.map_errors`, and cut from the chain (``redaction.detached``) before they leave
:meth:`RestClient.call`: their text embeds the full URL, and AllTick carries the token in
the query string.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import timezone
from email.utils import parsedate_to_datetime
from types import ModuleType
from typing import Any, TypeVar
from urllib.parse import urlsplit

import requests

from .._version import __version__
from ..errors import (
    AllTickError,
    APIError,
    ConfigError,
    ProtocolError,
    RateLimited,
    TransportError,
    check_token,
    is_retryable,
    mask_token,
    redact,
)
from ..plans import Plan, get_plan
from ..records import Depth, Kline, Quote, Tick
from ..redaction import detached, protect
from ..symbols import Instrument, parse_symbol
from ..wire import HttpRequest, get_dialect
from .http_errors import map_errors, parse_retry_after
from .ratelimit import WARN_AFTER_S, RateLimiter
from .retry import backoff_delay
from .worker_stop import current_stop

logger: logging.Logger = logging.getLogger(__name__)

T = TypeVar("T")
# Consecutive 429 / 605 answers tolerated for one call; each one already waited as asked.
MAX_RATE_LIMITED = 30
# Seconds one call may spend waiting out 429 / 605 answers before it gives up.
RATELIMIT_TIMEOUT = 120.0
RETRY_JITTER = 0.5  # each retry waits 50-100 % of its doubled delay


@dataclass
class RestStats:
    """Counters of one client: what a cold and a warm backtest cost.

    Example::

        before = client.stats.snapshot()
        loader.load("BTCUSDT", "1m", count=100_000)
        sent = client.stats.requests - before.requests   # 200 cold, 0 warm
    """

    requests: int = 0  # HTTP requests sent (every attempt)
    retries: int = 0  # attempts repeated after a retryable failure
    rate_limited: int = 0  # 429 / 605 answers received
    waited: float = 0.0  # seconds spent waiting: limiter, Retry-After and backoff

    def snapshot(self) -> RestStats:
        """Return a copy, to subtract from later readings."""
        return replace(self)


class RestClient:
    """HTTP client of one store: token placement, rate limits, retries, error mapping.

    Parameters
    ----------
    dialect : module or str
        The wire module (``wire.get_dialect("alltick")``) or its name.
    token : str
        The API token; never shown in messages, logs or reprs.
    base_url : str
        Service root (scheme and host); the dialect appends its paths.
    plan : plans.Plan or str
        The token's plan; it sizes the default limiter and request chunks.
    limiter : RateLimiter, optional
        Shared limiter; default one of the plan's own.
    timeout : (float, float)
        Connect and read timeouts in seconds.
    max_retries : int
        Retries after 5xx answers and network failures before the error is raised.
    backoff_initial, backoff_cap : float
        First backoff delay and its ceiling, in seconds.
    retry_after_cap : float
        Longest ``Retry-After`` honoured, in seconds.
    ratelimit_timeout : float
        Most seconds one call waits out rate-limit answers in all before it raises RateLimited.
    session : requests.Session, optional
        A session to use; the client closes only a session it created.
    clock : clock.ServiceClock, optional
        Learns the service's time from the HTTP ``Date`` of every answer (the store's clock).

    Example::

        client = RestClient("alltick", token, "https://quote.alltick.co", "free")
        bars = client.klines("BTCUSDT", "1m", 500)
        client.close()
    """

    def __init__(
        self,
        dialect: Any,
        token: str,
        base_url: str,
        plan: Plan | str,
        *,
        limiter: RateLimiter | None = None,
        timeout: tuple[float, float] = (5.0, 30.0),
        max_retries: int = 5,
        backoff_initial: float = 0.5,
        backoff_cap: float = 30.0,
        retry_after_cap: float = 120.0,
        ratelimit_timeout: float = RATELIMIT_TIMEOUT,
        session: requests.Session | None = None,
        clock: Any = None,
    ) -> None:
        self.dialect: ModuleType = get_dialect(dialect) if isinstance(dialect, str) else dialect
        self.plan: Plan = get_plan(self.dialect.NAME, plan) if isinstance(plan, str) else plan
        token = check_token(token)
        try:
            parts = urlsplit(str(base_url))
            parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
        except ValueError:  # "http://[::1": an unclosed IPv6 bracket
            parts = None
        if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(
                f"base_url must be an http(s) root such as {self.dialect.DEFAULT_REST_URL!r}, "
                f"was {redact(str(base_url), token)!r}"
            )
        if max_retries < 0:
            raise ConfigError(f"max_retries must be 0 or more, was {max_retries!r}")
        if not ratelimit_timeout >= 0:
            raise ConfigError(f"ratelimit_timeout must be 0 or more seconds, was {ratelimit_timeout!r}")
        self._token = token
        self._secrets = (token,)  # redact() matches every spelling of it: raw, percent- or JSON-escaped
        protect(token, self)  # urllib3 logs each request URL, token included, at DEBUG
        self.base_url: str = str(base_url).rstrip("/")
        self.limiter: RateLimiter = limiter if limiter is not None else RateLimiter(self.plan)
        self.timeout: tuple[float, float] = timeout
        self.max_retries: int = max_retries
        self.backoff_initial: float = backoff_initial
        self.backoff_cap: float = backoff_cap
        self.retry_after_cap: float = retry_after_cap
        self.ratelimit_timeout: float = ratelimit_timeout
        self._owns_session = session is None
        self.session: requests.Session = session if session is not None else requests.Session()
        self.session.headers.setdefault("User-Agent", f"backtrader-alltick/{__version__}")
        self.session.headers["Accept"] = "application/json"
        self.clock: Any = clock
        self.stats: RestStats = RestStats()
        self._stats_lock = threading.Lock()
        self._closed = threading.Event()
        # The cancel events of calls guarded by a worker's stop (worker_stop.py): close() sets them too.
        self._guarded: set[threading.Event] = set()

    def __repr__(self) -> str:
        return (
            f"RestClient(dialect={self.dialect.NAME!r}, base_url={self.base_url!r}, "
            f"plan={self.plan.name!r}, token={mask_token(self._token)!r})"
        )

    def __enter__(self) -> RestClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- The one request path ----------------------------------------------------------

    def call(self, request: HttpRequest, parse: Callable[[int, Any], T]) -> T:
        """Send ``request`` (token placed here) and return ``parse(status, payload)``, retrying as allowed.

        ``payload`` is the decoded JSON, or None when the body is not JSON.  A call made inside
        :meth:`~.worker_stop.WorkerStop.guarding` also gives up once that stop is set.
        """
        stop = current_stop()
        if stop is None:
            return self._call(request, parse, self._closed)
        cancel = threading.Event()

        def cut() -> None:
            cancel.set()
            self.limiter.wake()

        forget = stop.on_set(cut)
        with self._stats_lock:
            self._guarded.add(cancel)
        if self._closed.is_set():
            cancel.set()
        try:
            return self._call(request, parse, cancel)
        finally:
            forget()
            with self._stats_lock:
                self._guarded.discard(cancel)

    def _call(self, request: HttpRequest, parse: Callable[[int, Any], T], cancel: threading.Event) -> T:
        request = self.dialect.authorize(request, self._token)
        failures = 0
        limited = 0
        limited_wait = 0.0
        while True:
            waited = self.limiter.acquire(request.endpoint, cancel=cancel, subject=request.subject)
            if waited < 0 or cancel.is_set():
                raise self._cancelled()
            self._count(waited=waited)
            status: int | None = None
            headers: Any = {}
            try:
                try:
                    status, headers, payload = self._send(request)
                finally:
                    self.limiter.finished(request.endpoint)
                return _parsed(parse, status, payload, request)
            except AllTickError as e:
                error = self._scrubbed(e)
            if isinstance(error, RateLimited) or status == 429:
                limited += 1
                self._count(rate_limited=1)
                delay = parse_retry_after(headers.get("Retry-After"))
                if delay is None:
                    delay = getattr(error, "retry_after", None)
                if delay is None:
                    delay = backoff_delay(
                        limited, self.backoff_initial, self.backoff_cap, jitter=RETRY_JITTER
                    )
                delay = min(delay, self.retry_after_cap)
                if limited > MAX_RATE_LIMITED or limited_wait + delay > self.ratelimit_timeout:
                    raise _gave_up(
                        error,
                        limited,
                        f", {limited_wait:.1f} s waited; the store's "
                        f"ratelimit_timeout={self.ratelimit_timeout:g} allows "
                        "longer waits",
                    )
                limited_wait += delay
                # A wait past WARN_AFTER_S is the limiter's RateLimitWarning: logged here once, not twice.
                logger.log(
                    logging.INFO if delay > WARN_AFTER_S else logging.WARNING,
                    "%s %s: rate limited by the service (%s); retrying in %.2f s",
                    request.method,
                    request.endpoint,
                    status,
                    delay,
                )
                # The shared limiter holds every feed back, and this call waits in acquire().
                self.limiter.penalize(delay, request.endpoint)
            elif is_retryable(error) or (status is not None and status >= 500):
                failures += 1
                if failures > self.max_retries:
                    logger.error(
                        "%s %s: giving up after %d attempts: %s",
                        request.method,
                        request.endpoint,
                        failures,
                        error,
                    )
                    raise _gave_up(error, failures)
                delay = backoff_delay(failures, self.backoff_initial, self.backoff_cap, jitter=RETRY_JITTER)
                logger.warning(
                    "%s %s failed (%s); retry %d of %d in %.2f s",
                    request.method,
                    request.endpoint,
                    error,
                    failures,
                    self.max_retries,
                    delay,
                )
                self._pause(delay, cancel)
            else:
                raise error
            self._count(retries=1)

    def _send(self, request: HttpRequest) -> tuple[int, Any, Any]:
        url = self.base_url + request.path
        where = f"{request.method} {url}"  # no query string: the token may ride there
        with map_errors(where, self._secrets):
            prepared = self.session.prepare_request(
                requests.Request(
                    request.method, url, params=request.params, headers=request.headers, data=request.body
                )
            )
            if logger.isEnabledFor(logging.DEBUG):
                logger.debug("%s %s", request.method, redact(prepared.url or url, *self._secrets))
            settings = self.session.merge_environment_settings(prepared.url, {}, None, None, None)
            self._count(requests=1)
            response = self.session.send(prepared, timeout=self.timeout, **settings)
            content = response.content
        self._learn_time(response.headers.get("Date"))
        logger.debug("%s answered HTTP %d, %d bytes", where, response.status_code, len(content))
        return response.status_code, response.headers, _decode(content)

    # -- Endpoint helpers -------------------------------------------------------------

    def klines(
        self, inst: Instrument | str, period: str, count: int, end_ms: int | None = None
    ) -> list[Kline]:
        """Return up to ``count`` bars (at most ``KLINE_LIMIT``): the newest, or those up to ``end_ms``.

        The newest bar may still be forming; :class:`history.HistoryLoader` filters it.
        """
        inst = parse_symbol(inst)
        request = self.dialect.kline_request(inst, period, count, end_ms)
        return self.call(
            request, lambda status, payload: self.dialect.parse_klines(status, payload, inst, period)
        )

    def batch_klines(
        self, insts: Iterable[Instrument | str], period: str, count: int = 2
    ) -> dict[str, list[Kline]]:
        """Return ``{symbol: newest count bars}`` (count 1 or 2) in as few ``/batch-kline`` calls as the
        plan's groups per request allow (alltick.md 4.2: Free 5, Basic 100, Premium 200, top tiers 500).

        The newest bar may still be forming.  Only the alltick dialect has the endpoint.
        """
        if not hasattr(self.dialect, "batch_kline_request"):
            raise ConfigError(
                f"batch K-lines are served by the alltick dialect only, was dialect {self.dialect.NAME!r}"
            )
        out: dict[str, list[Kline]] = {}
        size = max(1, self.plan.batch_groups)
        for group in self._groups(insts):
            for first in range(0, len(group), size):
                chunk = group[first : first + size]
                request = self.dialect.batch_kline_request([(inst, period, count) for inst in chunk])
                wanted = [(inst, period) for inst in chunk]

                def parse_batch(
                    status: int, payload: Any, wanted: list[tuple[Instrument, str]] = wanted
                ) -> dict[tuple[str, str], list[Kline]]:
                    return self.dialect.parse_batch_klines(status, payload, wanted)

                found = self.call(request, parse_batch)
                out.update({symbol: bars for (symbol, _), bars in found.items()})
        return out

    def latest_trades(self, insts: Iterable[Instrument | str]) -> list[Tick]:
        """Return the latest trade of each symbol (as many requests as families and chunks need)."""
        return self._fan_out(insts, self.dialect.trades_request, self.dialect.parse_trades)

    def depth(self, insts: Iterable[Instrument | str]) -> list[Depth]:
        """Return the latest order book of each symbol."""
        return self._fan_out(insts, self.dialect.depth_request, self.dialect.parse_depth)

    def quotes(self, insts: Iterable[Instrument | str]) -> list[Quote]:
        """Return a quote snapshot of each symbol (the itick dialect only)."""
        if not hasattr(self.dialect, "quote_request"):
            raise ConfigError(
                f"quotes are served by the itick dialect only; use latest_trades() or "
                f"dialect='itick', was dialect {self.dialect.NAME!r}"
            )
        return self._fan_out(insts, self.dialect.quote_request, self.dialect.parse_quotes)

    def close(self) -> None:
        """Stop waiting retries and close the session (if this client created it)."""
        self._closed.set()
        with self._stats_lock:
            guarded = list(self._guarded)
        for cancel in guarded:
            cancel.set()
        self.limiter.wake()
        if self._owns_session:
            self.session.close()

    # -- Internals ----------------------------------------------------------------------

    def _fan_out(
        self, insts: Iterable[Instrument | str], build: Callable[..., HttpRequest], parse: Callable[..., list]
    ) -> list:
        out: list = []
        for group in self._groups(insts):
            size = max(1, self.plan.codes_per_request)
            for first in range(0, len(group), size):
                chunk = group[first : first + size]

                def parse_chunk(status: int, payload: Any, chunk: tuple[Instrument, ...] = chunk) -> list:
                    return parse(status, payload, chunk)

                out.extend(self.call(build(chunk), parse_chunk))
        return out

    def _groups(self, insts: Iterable[Instrument | str]) -> list[tuple[Instrument, ...]]:
        insts = [parse_symbol(inst) for inst in insts]
        if not insts:
            raise ConfigError("pass at least one symbol, was []")
        return [tuple(group) for group in self.dialect.request_groups(insts)]

    def _learn_time(self, date: str | None) -> None:
        # The service's own clock, to the second: whether a bar has closed is its decision, not ours.
        served = parse_http_date(date)
        if served is not None and self.clock is not None:
            self.clock.observe_server_clock(served)

    def _pause(self, seconds: float, cancel: threading.Event) -> None:
        if cancel.wait(seconds):
            if self._closed.is_set():
                raise TransportError(f"the REST client for {self.base_url} was closed while waiting to retry")
            raise self._cancelled()
        self._count(waited=seconds)

    def _cancelled(self) -> TransportError:
        if self._closed.is_set():
            return TransportError(f"the REST client for {self.base_url} is closed; create a new store")
        return TransportError(f"a REST call to {self.base_url} was given up: the worker making it stopped")

    def _count(self, requests: int = 0, retries: int = 0, rate_limited: int = 0, waited: float = 0.0) -> None:
        with self._stats_lock:
            self.stats.requests += requests
            self.stats.retries += retries
            self.stats.rate_limited += rate_limited
            self.stats.waited += waited

    def _scrubbed(self, error: AllTickError) -> AllTickError:
        # Parsers quote payloads; a service that echoes the request must not leak the token.  The
        # foreign exception the error was raised during (its text holds the URL) is cut off.
        detached(error)
        text = str(error)
        clean = redact(text, *self._secrets)
        if clean != text:
            error.args = (clean,)
            if isinstance(error, APIError):
                error.message = redact(error.message, *self._secrets)
        return error


def parse_http_date(value: str | None) -> int | None:
    """Epoch ms of an HTTP ``Date`` header (``Tue, 05 Mar 2024 15:01:00 GMT``); None if absent or unread."""
    if not value:
        return None
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if moment.tzinfo is None:  # "-0000": UTC, origin unknown (RFC 5322)
        moment = moment.replace(tzinfo=timezone.utc)
    return int(moment.timestamp()) * 1000


def _decode(content: bytes) -> Any:
    if not content:
        return None
    try:
        return json.loads(content)
    except ValueError:  # includes UnicodeDecodeError
        return None


def _gave_up(error: AllTickError, attempts: int, detail: str = "") -> AllTickError:
    note = f" (gave up after {attempts} attempts{detail})"
    error.args = (str(error) + note,)
    if isinstance(error, APIError):
        error.message += note
    return error


def _parsed(parse: Callable[[int, Any], T], status: int, payload: Any, request: HttpRequest) -> T:
    # The dialect parsers check the documented shapes; JSON of another shape must still surface as
    # a ProtocolError, never as a KeyError from deep inside a parser.
    try:
        return parse(status, payload)
    except AllTickError:
        raise
    except (KeyError, IndexError, TypeError, AttributeError, ValueError) as e:
        raise ProtocolError(
            f"{request.method} {request.endpoint} answered JSON of an unexpected shape "
            f"(HTTP {status}, {type(e).__name__}: {e}); the response was skipped"
        ) from None
