"""AllTick market data for Backtrader: cached REST K-lines for backtests, live bars from ticks.

Example::

    import backtrader as bt
    from backtrader_alltick import AllTickStore

    store = AllTickStore()                       # token from ALLTICK_TOKEN
    data = store.getdata(dataname="AAPL.US", timeframe=bt.TimeFrame.Minutes, historical=True)
"""

import logging

from ._version import __version__
from .errors import (
    AllTickError,
    APIError,
    AuthError,
    CacheError,
    ConfigError,
    ConnectError,
    InvalidSymbol,
    PlanLimitError,
    ProtocolError,
    RateLimited,
    SymbolNotFound,
    Timeout,
    TransportError,
    UnsupportedTimeframe,
)
from .feed import AllTickData
from .quality_analyzer import DataQuality
from .store import AllTickStore

__all__ = [
    "AllTickData",
    "AllTickStore",
    "APIError",
    "AllTickError",
    "AuthError",
    "CacheError",
    "ConfigError",
    "ConnectError",
    "DataQuality",
    "InvalidSymbol",
    "PlanLimitError",
    "ProtocolError",
    "RateLimited",
    "SymbolNotFound",
    "Timeout",
    "TransportError",
    "UnsupportedTimeframe",
    "__version__",
]

logging.getLogger(__name__).addHandler(logging.NullHandler())
