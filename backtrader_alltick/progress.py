"""How a long ``fetch_klines`` shows that it is working: a log line per page, your callback, a tqdm bar.

On the Free plan 3,000 one-minute bars take six requests 10 s apart; without a word for a
minute a script looks hung.  :class:`PageReporter` is what ``fetch_klines`` hands the history
loader as ``on_progress``: each page is logged at INFO on the ``backtrader_alltick`` logger,
passed to the caller's own ``on_progress`` (a :class:`~backtrader_alltick.history.Progress`),
and with ``progress=True`` drawn as a tqdm bar on stderr (``pip install
'backtrader-alltick[progress]'``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .errors import ConfigError

if TYPE_CHECKING:
    from .history.walk import Progress

logger: logging.Logger = logging.getLogger(__name__)


class PageReporter:
    """Report each page of a K-line download: log, ``on_progress``, and a tqdm bar if ``bar``.

    Example::

        reporter = PageReporter(lambda p: print(p.requests, p.bars), bar=True)
        try:
            loader.load(..., on_progress=reporter)
        finally:
            reporter.close()
    """

    def __init__(self, on_progress: Callable[[Progress], object] | None = None, *, bar: bool = False) -> None:
        if not isinstance(bar, bool):
            raise ConfigError(f"progress must be True or False, was {bar!r}")
        self.on_progress = on_progress
        self._tqdm = _tqdm() if bar else None
        self._bar: Any = None  # a tqdm bar once the first page is drawn (tqdm ships no types)

    def __call__(self, progress: Progress) -> None:
        fraction = progress.fraction
        logger.info(
            "%s %s: request %d, %d bars so far%s",
            progress.symbol,
            progress.period,
            progress.requests,
            progress.bars,
            "" if fraction is None else f" ({fraction:.0%} of the range)",
        )
        if self._tqdm is not None:
            self._draw(self._tqdm, progress, fraction)
        if self.on_progress is not None:
            self.on_progress(progress)

    def close(self) -> None:
        """End the bar (a line of its own on stderr); nothing else to do without one."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def _draw(self, tqdm: Callable[..., Any], progress: Progress, fraction: float | None) -> None:
        if self._bar is None:
            # Percent of the range when it is known (fromdate given), else a count of bars.
            self._bar = tqdm(
                total=100 if fraction is not None else None,
                unit="%" if fraction is not None else " bars",
                desc=f"{progress.symbol} {progress.period}",
                leave=True,
            )
        done = round(fraction * 100) if fraction is not None else progress.bars
        self._bar.update(max(0, done - self._bar.n))
        self._bar.set_postfix(requests=progress.requests, bars=progress.bars, refresh=True)


def _tqdm() -> Callable[..., Any]:
    try:
        from tqdm.auto import tqdm
    except ImportError:
        raise ConfigError(
            "progress=True draws a tqdm bar, and tqdm is not installed: pip install "
            "'backtrader-alltick[progress]' (or pip install tqdm), or pass on_progress= "
            "a function of your own"
        ) from None
    return tqdm
