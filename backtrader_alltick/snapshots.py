"""The service's answers of the moment: latest trades, order books, quotes, and the symbol check.

Mixed into :class:`~backtrader_alltick.store.AllTickStore`, which provides ``rest`` (the REST
client), ``wire`` (the dialect), ``rest_url`` and ``p.dialect``.
"""

from __future__ import annotations

from collections.abc import Iterable
from types import ModuleType
from typing import TYPE_CHECKING, Any

from .errors import SymbolNotFound
from .records import Depth, Quote, Tick
from .symbols import Instrument, parse_symbol

if TYPE_CHECKING:
    from .transport.rest import RestClient

# A symbol list: Instrument values or names, or one comma-separated string.
Symbols = Iterable[Instrument | str] | str


class SnapshotQueries:
    """A store's REST snapshots, for scripts and notebooks.

    Symbols are a list or one comma-separated string.

    Example::

        store.latest_trades("AAPL.US,TSLA.US")
        store.depth(["BTCUSDT"])
    """

    # Provided by the store this is mixed into.
    wire: ModuleType
    rest_url: str
    p: Any

    if TYPE_CHECKING:

        @property
        def rest(self) -> RestClient: ...

    def latest_trades(self, symbols: Symbols) -> list[Tick]:
        """Return the latest trade of each symbol (the seed article's scenario 1).

        An unknown symbol raises SymbolNotFound naming only the unknown ones: AllTick refuses
        a whole batch for one bad code (``ret 600``), so the batch is halved until they are found.
        """
        insts = _instruments(symbols)
        try:
            return self.rest.latest_trades(insts)
        except SymbolNotFound as refused:
            unknown = self._unknown_among(insts) if len(insts) > 1 else insts
            if 0 < len(unknown) < len(insts):
                try:
                    self.rest.latest_trades(unknown)
                except SymbolNotFound as named:  # the service's own words, naming exactly those
                    raise named from None
            raise refused

    def _unknown_among(self, refused: list[Instrument]) -> list[Instrument]:
        # ``refused`` is a batch the service refused: halve it until each unknown code stands alone.
        if len(refused) == 1:
            return refused
        half = len(refused) // 2
        found: list[Instrument] = []
        for part in (refused[:half], refused[half:]):
            try:
                self.rest.latest_trades(part)
            except SymbolNotFound:
                found += self._unknown_among(part)
        return found

    def check_symbols(self, symbols: Symbols) -> list[Tick]:
        """Return the latest trade of each symbol; raise SymbolNotFound naming every one without.

        Services leave unknown codes out of batch answers and subscriptions without an error
        (iTick), so a symbol missing from the answer is one the service does not know.

        Example::

            store.check_symbols(["AAPL.US", "TSLA.US"])   # SymbolNotFound if either is unknown
        """
        insts = _instruments(symbols)
        ticks = self.latest_trades(insts)
        answered = {self.wire.wire_code(tick.symbol) for tick in ticks}
        missing = [inst.symbol for inst in insts if self.wire.wire_code(inst) not in answered]
        if missing:
            raise SymbolNotFound(
                f"the {self.p.dialect} service at {self.rest_url} does not know "
                f"{', '.join(missing)} (its latest-trade answer leaves them out); check "
                "the symbol against the service's product list",
                symbol=missing[0],
            )
        return ticks

    def depth(self, symbols: Symbols) -> list[Depth]:
        """Return the latest order book of each symbol."""
        return self.rest.depth(_instruments(symbols))

    def quotes(self, symbols: Symbols) -> list[Quote]:
        """Return quote snapshots (itick dialect only)."""
        return self.rest.quotes(_instruments(symbols))


def _instruments(symbols: Symbols) -> list[Instrument]:
    if isinstance(symbols, str):
        symbols = [s for s in symbols.split(",") if s.strip()]
    return [parse_symbol(s) for s in symbols]
