"""What a live source needs from its store, declared.

The store builds its collaborators and hands itself to the sources it makes; a source reads
nothing else of it.  ``AllTickStore`` satisfies :class:`LiveStore`, and so does any stand-in a
test builds (``tests/sources/test_stream_bars.py``'s ``HandStore``).

Example::

    def build(store: LiveStore) -> StreamBars:
        return StreamBars(store, parse_symbol("BTCUSDT"), spec, SourceOptions(), None)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Protocol

from ..clock import Clock
from ..history import BarRange, Window
from ..records import Tick
from ..symbols import Instrument
from ..timeframes import BarSpec


class Connections(Protocol):
    """Whether the stream of an endpoint family, or the connection that carries a symbol, is up, and
    how far that connection has been read (the store's ``hub``)."""

    def is_connected(self, family: str, inst: Instrument | str | None = None) -> bool: ...

    def read_through(
        self, family: str, inst: Instrument | str, now_ms: int, grace_ms: int = 0, *, fresh: bool = False
    ) -> int: ...


class Dialect(Protocol):
    """The part of a wire dialect a source reads: which endpoint family serves a symbol."""

    def family(self, inst: Instrument) -> str: ...


class BarHistory(Protocol):
    """Closed bars of a window (the store's ``history``)."""

    def get_range(self, inst: Instrument, spec: BarSpec, window: Window, **options: Any) -> BarRange: ...


class LiveStore(Protocol):
    """Everything :class:`~backtrader_alltick.sources.stream.StreamBars` uses of its store."""

    clock: Clock

    @property
    def wire(self) -> Dialect: ...

    @property
    def history(self) -> BarHistory: ...

    @property
    def hub(self) -> Connections: ...

    def listen(
        self,
        symbol: str | Instrument,
        on_record: Callable[[Any], None],
        *,
        depth: bool = False,
        on_status: Callable[[Any], None] | None = None,
        region: str | None = None,
    ) -> None: ...

    def unlisten(
        self,
        symbol: str | Instrument,
        on_record: Callable[[Any], None],
        *,
        depth: bool = False,
        on_status: Callable[[Any], None] | None = None,
        region: str | None = None,
    ) -> None: ...

    def resolve_timeframe(
        self, inst: Instrument, timeframe: int | str, compression: int = 1, *, live: bool = False
    ) -> BarSpec: ...

    def check_symbols(self, symbols: Iterable[str | Instrument]) -> list[Tick]: ...
