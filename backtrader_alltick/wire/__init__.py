"""Wire formats, one pure package per dialect: ``wire.alltick`` (default) and ``wire.itick``.

A dialect package is the only place that knows its vendor's JSON.  It builds requests
and parses responses and frames into :mod:`records`; it does no I/O and reads no
clock.  Inside it, ``codes`` names instruments, ``rest`` holds the requests and answers,
``stream`` the WebSocket frames, and one module the record objects both carry.
Both packages expose the same names:

=========================  ========  =====================================================
name                       required  what it does
=========================  ========  =====================================================
``NAME``                   yes       ``"alltick"`` or ``"itick"``
``DEFAULT_REST_URL``       yes       root of the real REST service
``DEFAULT_WS_URL``         yes       root of the real WebSocket service
``KLINE_LIMIT``            yes       most bars one K-line request returns
``native_periods(inst)``   yes       period names served natively for this instrument
``can_page_back(inst)``    yes       whether K-line requests accept an end time
``family(inst)``           yes       endpoint family (one WebSocket per family)
``wire_code(inst)``        yes       the code as the vendor spells it
``request_groups(insts)``  yes       split symbols into groups one latest-request can serve
``kline_request``          yes       ``(inst, period, count, end_ms=None, trace=None) -> HttpRequest``
``trades_request``         yes       ``(insts) -> HttpRequest``, latest trade per code
``depth_request``          yes       ``(insts) -> HttpRequest``, latest book per code
``authorize``              yes       ``(request, token) -> HttpRequest`` with the token placed
``parse_klines``           yes       ``(status, payload, inst, period) -> list[Kline]``
``parse_trades``           yes       ``(status, payload, insts=()) -> list[Tick]``
``parse_depth``            yes       ``(status, payload, insts=()) -> list[Depth]``
``error_for``              yes       ``(status, code, message, symbol=None, family=None) -> APIError``
``ws_connect``             yes       ``(ws_root, family, token) -> (url, headers)``
``subscribe_messages``     yes       ``(family, trades, depth, seq) -> list[str]``; send in order
``heartbeat_message``      yes       ``(now_ms, seq) -> str``
``parse_frame``            yes       ``(text) -> list[event]``: records or control events below
``quote_request``          no        ``(insts) -> HttpRequest`` (itick only)
``parse_quotes``           no        ``(status, payload, insts=()) -> list[Quote]`` (itick only)
=========================  ========  =====================================================

Notes on the table:

- ``inst``/``insts`` accept :class:`~backtrader_alltick.symbols.Instrument` values or
  strings.  Records carry the canonical ``Instrument.symbol`` (``AAPL.US``, ``GOLD``),
  never the wire spelling.  iTick's REST answers name bare codes (``700``), so pass the
  requested ``insts`` to ``parse_trades``/``parse_depth``/``parse_quotes`` to get
  ``700.HK``; AllTick ignores the argument beyond naming the subject of errors.
- ``parse_klines`` keeps the vendor's bar start in ``Kline.start``, adds the close stamp
  ``Kline.end``, sorts and de-duplicates, and does not drop the forming bar.
- ``subscribe_messages``: AllTick returns ``[22004 trades, 22002 depth]`` (an empty list
  becomes its 22006 cancel; space them >= 1 s); iTick returns one additive ``subscribe``
  (or ``[]``).  Traces are derived from ``seq`` and the command, so pass a new ``seq``
  per call.
- Dialect extras: ``alltick.batch_kline_request(items, trace=None)`` and
  ``alltick.parse_batch_klines(status, payload, wanted)`` for ``/batch-kline``;
  ``itick.ws_symbol(inst)`` (``AAPL$US``).  iTick has no native ``15m``: kType 3 means
  15 min in current docs and 10 min in old ones, and a response cannot tell which.

Example (the same for either dialect)::

    dialect = get_dialect("alltick")
    inst = parse_symbol("AAPL.US")
    request = dialect.authorize(dialect.kline_request(inst, "1m", 500), token)
    bars = dialect.parse_klines(response.status_code, response.json(), inst, "1m")

Parsers raise :class:`~backtrader_alltick.errors.APIError` subclasses for error
envelopes and :class:`~backtrader_alltick.errors.ProtocolError` for malformed ones, for
input of any unexpected shape, and for records that cannot be true (``_decode``: times
outside 1970..2200, prices not finite and above 0, negative volumes, a bar outside its
own high and low); never another exception.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from types import ModuleType
from typing import TypeAlias

from ..records import Record

NAMED_AT_MOST = 3  # symbols a message names before it says "and N more"


@dataclass(frozen=True)
class HttpRequest:
    """A REST request before the token is placed; ``endpoint`` names its rate-limit bucket and
    ``subject`` the symbols it asks for, for messages (a long wait for the plan names them)."""

    method: str
    path: str
    endpoint: str
    params: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    subject: str = ""

    def with_params(self, **params: str) -> HttpRequest:
        return replace(self, params={**self.params, **params})

    def with_headers(self, **headers: str) -> HttpRequest:
        return replace(self, headers={**self.headers, **headers})


def subject_of(symbols: list[str]) -> str:
    """The symbols a request asks for, as a message names them.

    Example::

        subject_of(["BTCUSDT", "ETHUSDT", "EURUSD", "GOLD"])   # 'BTCUSDT, ETHUSDT, EURUSD and 1 more'
    """
    unique = list(dict.fromkeys(symbols))
    if len(unique) <= NAMED_AT_MOST:
        return ", ".join(unique)
    return f"{', '.join(unique[:NAMED_AT_MOST])} and {len(unique) - NAMED_AT_MOST} more"


@dataclass(frozen=True)
class Ack:
    """The server accepted or refused a request on the socket (subscribe, cancel)."""

    action: str
    ok: bool
    message: str = ""
    seq: int | None = None


@dataclass(frozen=True)
class Pong:
    """Answer to our heartbeat; ``echo`` is what we sent, when the dialect echoes it."""

    echo: str | None = None


@dataclass(frozen=True)
class AuthResult:
    """The server's verdict on the token (iTick sends one after connecting)."""

    ok: bool
    message: str = ""


@dataclass(frozen=True)
class Connected:
    """The server's greeting after the upgrade (iTick)."""

    message: str = ""


@dataclass(frozen=True)
class ServerError:
    """An error frame; ``fatal`` when the server will close the connection (AllTick 606)."""

    code: int | str | None
    message: str
    fatal: bool = False


# What ``parse_frame`` returns: records, or the control events above.
Event: TypeAlias = Record | Ack | Pong | AuthResult | Connected | ServerError


def get_dialect(name: str) -> ModuleType:
    """Return the wire package (its public surface) for a dialect name."""
    from ..errors import ConfigError

    if name == "alltick":
        from . import alltick

        return alltick
    if name == "itick":
        from . import itick

        return itick
    raise ConfigError(f"dialect must be one of alltick, itick, was {name!r}")
