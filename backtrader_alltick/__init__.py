"""AllTick market data for Backtrader: cached REST K-lines for backtests, live bars from ticks.

Example::

    import backtrader as bt
    from backtrader_alltick import AllTickStore

    store = AllTickStore()                       # token from ALLTICK_TOKEN
    data = store.getdata(dataname="AAPL.US", timeframe=bt.TimeFrame.Minutes, historical=True)
"""

import logging

# First: in an `alltick-bt stream` process a stop signal during the heavy imports below exits 0.
from . import _starting  # noqa: F401
from ._version import __version__
from .errors import (
    AllTickError,
    AllTickWarning,
    APIError,
    AuthError,
    BarLengthWarning,
    CacheError,
    CacheWarning,
    ConfigError,
    ConnectError,
    FeedEndedWarning,
    HistoryLimitWarning,
    InvalidSymbol,
    LateTradeWarning,
    LiveOnlyWarning,
    MarketClosedWarning,
    NoBarsWarning,
    PlanLimitError,
    ProtocolError,
    RateLimited,
    RateLimitWarning,
    SessionPolicyWarning,
    SymbolNotFound,
    Timeout,
    TransportError,
    UnsupportedTimeframe,
)
from .feed import AllTickData
from .quality.analyzer import DataQuality
from .relay import Relay
from .store import AllTickStore

__all__ = [
    "AllTickData",
    "AllTickStore",
    "APIError",
    "AllTickError",
    "AllTickWarning",
    "AuthError",
    "BarLengthWarning",
    "LateTradeWarning",
    "CacheError",
    "CacheWarning",
    "ConfigError",
    "ConnectError",
    "DataQuality",
    "FeedEndedWarning",
    "HistoryLimitWarning",
    "InvalidSymbol",
    "LiveOnlyWarning",
    "MarketClosedWarning",
    "NoBarsWarning",
    "PlanLimitError",
    "ProtocolError",
    "RateLimited",
    "RateLimitWarning",
    "Relay",
    "SessionPolicyWarning",
    "SymbolNotFound",
    "Timeout",
    "TransportError",
    "UnsupportedTimeframe",
    "__version__",
]

logging.getLogger(__name__).addHandler(logging.NullHandler())
