"""K-line flaws the simulator can put into its REST replies, for testing data-quality checks.

``Faults.kline_flaws`` maps a bar's start (epoch ms) to one flaw name; every period's bar
that starts there carries it, in both dialects.  Only K-line replies change: trades, the
WebSocket stream and ``Simulator.klines`` (the ground truth) stay clean.  Each flaw passes
the wire validation (prices stay finite and positive), as a vendor's bad bar would.

Example::

    sim.faults.kline_flaws = {bar_start: "spike", other_start: "gap"}
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from ..errors import ConfigError
from ..records import Kline

if TYPE_CHECKING:
    from .simulator import Simulator

KLINE_FLAWS = {
    "gap": "the bar is left out",
    "repeat": "the bar carries the previous bar's open, high, low, close and volume",
    "spike": "the close jumps 5% (the high with it) for this one bar",
    "stale": "the bar is flat at the last close before it, with no volume",
    "volume_spike": "the volume is 100 times larger",
    "ohlc": "the high is set to the low, below the open or close",
}
SPIKE_FACTOR = 1.05
VOLUME_FACTOR = 100.0

# (symbol, period, start) -> the clean bar before ``start``, or None at the start of history.
PreviousBar = Callable[[str, str, int], "Kline | None"]


def check_kline_flaws(flaws: dict[int, str]) -> None:
    """Raise ConfigError unless every value of ``flaws`` is a known flaw name."""
    for start, name in flaws.items():
        if name not in KLINE_FLAWS:
            raise ConfigError(f"kline_flaws[{start}] must be one of {', '.join(KLINE_FLAWS)}, was {name!r}")


def apply_kline_flaws(
    bars: list[Kline],
    flaws: dict[int, str],
    previous_bar: PreviousBar,
    on_flaw: Callable[[str], None] = lambda name: None,
) -> list[Kline]:
    """Return ``bars`` with the flaws of ``flaws`` applied; ``on_flaw`` hears each one used."""
    if not flaws:
        return bars
    check_kline_flaws(flaws)
    out: list[Kline] = []
    for bar in bars:
        flaw = flaws.get(bar.start)
        if flaw is None:
            out.append(bar)
            continue
        on_flaw(flaw)
        if flaw == "gap":
            continue
        out.append(_flawed(bar, flaw, flaws, previous_bar))
    return out


def _flawed(bar: Kline, flaw: str, flaws: dict[int, str], previous_bar: PreviousBar) -> Kline:
    if flaw == "spike":
        close = bar.close * SPIKE_FACTOR
        return replace(bar, close=close, high=max(bar.high, close))
    if flaw == "volume_spike":
        return replace(bar, volume=bar.volume * VOLUME_FACTOR, turnover=bar.turnover * VOLUME_FACTOR)
    if flaw == "ohlc":
        return replace(bar, high=bar.low)
    before = previous_bar(bar.symbol, bar.period, bar.start)
    if before is None:
        return bar
    if flaw == "repeat":
        return replace(
            bar,
            open=before.open,
            high=before.high,
            low=before.low,
            close=before.close,
            volume=before.volume,
            turnover=before.turnover,
        )
    # stale: walk back over earlier stale bars to the last close the feed really had
    while flaws.get(before.start) == "stale":
        earlier = previous_bar(bar.symbol, bar.period, before.start)
        if earlier is None:
            break
        before = earlier
    price = before.close
    return replace(bar, open=price, high=price, low=price, close=price, volume=0.0, turnover=0.0)


def served_klines(sim: Simulator, bars: list[Kline]) -> list[Kline]:
    """``bars`` as a running simulator serves them: with ``sim.faults.kline_flaws`` applied."""
    flaws = sim.faults.kline_flaws
    if not flaws:
        return bars
    now = sim.clock.now_ms()

    def previous_bar(symbol: str, period: str, start: int) -> Kline | None:
        found = sim.model.latest_klines(symbol, period, 1, start - 1, now)
        return found[-1] if found else None

    return apply_kline_flaws(bars, flaws, previous_bar, lambda name: sim.counters_store.fault("kline_flaws"))
