"""``alltick-bt quality``: check closed K-lines for gaps, repeats, impossible values and outliers.

Prints a one-screen summary (or, with ``--json``, the report as one JSON object) and can
write the self-contained HTML page (``--html FILE``).  The checks are in
:mod:`backtrader_alltick.quality`; this module only fetches, prints and writes.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .. import timeframes
from ..errors import ConfigError
from ..markets import Market
from ..param_checks import bar_window
from ..quality.checks import QualityReport, Thresholds, check_bars, series_from_frame
from ..quality.html import render_html
from ..records import format_utc
from ..symbols import parse_symbol
from ..timeframes import Period
from . import arguments
from .console import ProgressLine
from .service import common_options, open_store

SHOWN_FINDINGS = 15


def register(subparsers: arguments.Subparsers) -> None:
    """Add ``quality`` to ``alltick-bt``'s subparsers."""
    sub = subparsers.add_parser(
        "quality",
        parents=[common_options()],
        help="check closed K-lines for gaps, repeats and outliers",
        description="Fetch closed K-lines and report missing bars inside sessions (by the market's "
        "calendar), bars outside sessions, repeated timestamps and bars, impossible prices, "
        "OHLC inconsistencies, outlier returns, stale runs and volume spikes.",
    )
    sub.add_argument("symbol", type=arguments.symbol, help="e.g. AAPL.US, EURUSD, BTCUSDT")
    arguments.add_bar_selection(sub, default_count=1000)
    sub.add_argument("--json", action="store_true", help="print the report as one JSON object")
    sub.add_argument("--html", default=None, metavar="FILE", help="also write the report as an HTML page")
    defaults = Thresholds()
    sub.add_argument(
        "--outlier-z",
        type=arguments.positive_float,
        default=defaults.outlier_z,
        help=f"robust z-score above which a return is an outlier (default {defaults.outlier_z:g})",
    )
    sub.add_argument(
        "--stale-bars",
        type=arguments.positive_int,
        default=defaults.stale_bars,
        help=f"bars with one close that make a stale run (default {defaults.stale_bars})",
    )
    sub.add_argument(
        "--volume-z",
        type=arguments.positive_float,
        default=defaults.volume_z,
        help=f"robust z-score of log volume above which a bar is a spike (default {defaults.volume_z:g})",
    )
    sub.set_defaults(func=run_quality)


def run_quality(args: argparse.Namespace) -> int:
    count = arguments.bar_count(args)
    if args.html and not Path(args.html).resolve().parent.is_dir():
        raise ConfigError(f"--html must be in an existing folder, was {args.html!r}")
    thresholds = Thresholds(args.outlier_z, args.stale_bars, args.volume_z)
    inst = parse_symbol(args.symbol)
    period = timeframes.grid_period(args.timeframe.timeframe, args.timeframe.compression, "quality checks")
    progress = ProgressLine()
    with open_store(args) as store:
        store.rest.limiter.on_wait = progress.waiting  # the plan's waits show on the progress line
        # The bars `alltick-bt klines` writes for the same arguments, dates read the same way.
        frame = store.fetch_klines(
            inst.symbol,
            args.timeframe.timeframe,
            args.timeframe.compression,
            args.fromdate,
            args.todate,
            count,
            on_progress=progress,
        )
        span = _asked_span(args, inst.market, period, store.clock.now_ms())
    progress.finish()
    series = series_from_frame(frame, inst.market, period)
    report = check_bars(series, inst.market, period, inst.symbol, thresholds, span)
    if args.html:
        Path(args.html).write_text(render_html(report, series), encoding="utf-8")
    print(json.dumps(report.to_dict()) if args.json else format_summary(report))
    return 0


def _asked_span(
    args: argparse.Namespace, market: Market, period: Period, now_ms: int
) -> tuple[int, int] | None:
    # With --from the range is known at both ends, so bars missing at its edges are findings too.
    # A bar counts as missing only once a whole period has passed since its close (a service
    # may publish a closed bar a little late); -n N says nothing about where the bars should start.
    if args.fromdate is None or not period.is_intraday:
        return None
    start_ms, to_ms = bar_window(market, True, args.fromdate, args.todate)
    if start_ms is None:  # not with a --from given; this says so to the type checker
        return None
    end_ms = now_ms - period.millis if to_ms is None else min(now_ms - period.millis, to_ms)
    # An instant inside the first bar: the one whose close is at or after --from.
    return start_ms - 1, end_ms


def format_summary(report: QualityReport) -> str:
    """The report as a few dozen lines of text: span, thresholds, counts, the first findings."""
    first, last = report.first, report.last  # None in a report of no bars
    span = "no bars" if first is None or last is None else f"{format_utc(first)} .. {format_utc(last)}"
    t = report.thresholds
    lines = [
        f"{report.symbol} {report.period}: {report.bars} bars, {span} (bar close, UTC), "
        f"{report.market} calendar",
        f"thresholds: outlier return |robust z| > {t.outlier_z:g}, stale run >= {t.stale_bars} bars, "
        f"volume spike robust z > {t.volume_z:g}",
    ]
    counts = report.to_dict()["counts"]
    lines += [f"  {kind:<20} {count:>8}" for kind, count in counts.items()]
    if report.is_clean:
        lines.append("no findings")
        return "\n".join(lines)
    lines.append(
        f"findings: {len(report.findings)}"
        + (f" (first {SHOWN_FINDINGS})" if len(report.findings) > SHOWN_FINDINGS else "")
    )
    for finding in report.findings[:SHOWN_FINDINGS]:
        until = f" (to {format_utc(finding.end)})" if finding.end not in (None, finding.time) else ""
        lines.append(f"  {format_utc(finding.time)}  {finding.kind:<18} {finding.detail}{until}")
    return "\n".join(lines)
