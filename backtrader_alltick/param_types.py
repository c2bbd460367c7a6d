"""Keyword arguments of ``AllTickStore``, ``AllTickData`` and ``store.getdata``, for type checkers.

Backtrader's metaclass takes a class's ``params`` out of the call before ``__init__`` runs, so
``__init__`` itself is called without them.  The classes declare ``**params: Unpack[...]`` with
these dictionaries so that a type checker accepts ``AllTickStore(plan="premium")`` and refuses
a misspelt keyword, as Backtrader refuses it at run time.

Example::

    from backtrader_alltick.param_types import StoreParams

    settings: StoreParams = {"plan": "basic", "cache": False}
    store = AllTickStore(**settings)
"""

from __future__ import annotations

from datetime import date, datetime, time, tzinfo
from os import PathLike
from typing import TYPE_CHECKING, Any, TypedDict

if TYPE_CHECKING:
    from .clock import Clock
    from .plans import Plan
    from .store import AllTickStore


class StoreOptions(TypedDict, total=False):
    """``AllTickStore``'s parameters but the service's (``AllTickStore.from_simulator`` takes these)."""

    plan: str | Plan | None
    cache: bool | str | PathLike[str] | None
    quota_url: str | None
    clock: Clock | None
    timeout: float
    ratelimit_timeout: float
    reconnect: bool
    reconnections: int
    reconntimeout: float | None
    heartbeat: float | None
    stale_after: float | None
    extended_hours: bool


class StoreParams(StoreOptions, total=False):
    """``AllTickStore``'s parameters (its docstring says what each means)."""

    token: str | None
    dialect: str | None
    rest_url: str | None
    ws_url: str | None


class FeedParams(TypedDict, total=False):
    """``store.getdata(...)``'s parameters: Backtrader's own feed parameters and ``AllTickData``'s."""

    # Backtrader's (bt.feed.DataBase)
    dataname: str
    name: str
    compression: int
    timeframe: int
    fromdate: datetime | date | str | None
    todate: datetime | date | str | None
    sessionstart: time | datetime | None
    sessionend: time | datetime | None
    filters: list[Any]  # Backtrader's filters are classes or objects of no common type
    tz: str | tzinfo | None
    tzinput: str | tzinfo | None
    qcheck: float
    calendar: Any  # a name, or a Backtrader or pandas_market_calendars calendar
    # AllTickData's
    region: str | None
    historical: bool
    backfill_start: bool
    backfill: bool
    lookback: int
    grace: float
    emit_empty: bool
    extended_hours: bool | None
    bidask: bool
    inbox_size: int
    source: str | None
    source_url: str | None


class DataParams(FeedParams, total=False):
    """``AllTickData(...)``'s parameters: those of ``getdata`` and the store it reads from."""

    store: AllTickStore | None
