"""Data-quality report speed: time per 100,000 one-minute bars, against a plain pandas pass.

Run standalone: ``python benchmarks/bench_quality.py [--bars 100000] [--symbol BTCUSDT] [--repeat 5]``.

The bars come from the simulator's market model (not timed).  Four figures, best of
``--repeat`` runs each, all measured in this run:

- baseline: one plain pandas pass over the same DataFrame (returns, duplicated index,
  high < low, a volume-over-median test): the least any check of this data costs;
- ``check_frame`` on that DataFrame (every check, calendar included);
- ``check_klines`` on the K-line records (adds the conversion to arrays);
- ``render_html`` of the report (the page with its chart).

Each is printed as seconds per 100,000 bars and as a ratio to the baseline.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from backtrader_alltick.frames import klines_frame
from backtrader_alltick.quality import check_bars, check_frame, check_klines
from backtrader_alltick.quality.bar_series import series_from_klines
from backtrader_alltick.quality.html import render_html
from backtrader_alltick.sim.market import MarketModel
from backtrader_alltick.symbols import parse_symbol

START = 1_709_251_200_000  # 2024-03-01 00:00 UTC
MINUTE = 60_000


def make_klines(symbol: str, bars: int):
    market = parse_symbol(symbol).market
    model = MarketModel(seed=1, symbols=[symbol], history_start_ms=START)
    step_days = 1 + bars // 1000
    out, end = [], START
    while len(out) < bars:  # a closed market has fewer bars per day: take days until there are enough
        following = end + step_days * 86_400_000
        out += model.klines_between(symbol, "1m", end, following, now_ms=following)
        end = following
    return out[:bars], market


def plain_pandas_pass(frame: pd.DataFrame) -> int:
    returns = frame["close"].pct_change()
    volume = frame["volume"]
    return int(
        (returns.abs() > 0.05).sum()
        + frame.index.duplicated().sum()
        + (frame["high"] < frame["low"]).sum()
        + (volume > 20 * volume.median()).sum()
    )


def best_of(repeat: int, action) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=100_000)
    parser.add_argument("--symbol", default="BTCUSDT")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    klines, market = make_klines(args.symbol, args.bars)
    frame = klines_frame(klines)
    series = series_from_klines(klines)
    report = check_bars(series, market, "1m", args.symbol)
    per = 100_000 / len(klines)

    baseline = best_of(args.repeat, lambda: plain_pandas_pass(frame))
    figures = {
        "check_frame (DataFrame in)": best_of(args.repeat, lambda: check_frame(frame, market, "1m")),
        "check_klines (records in)": best_of(args.repeat, lambda: check_klines(klines, market, "1m")),
        "render_html (page out)": best_of(args.repeat, lambda: render_html(report, series)),
    }
    breaks = np.count_nonzero(np.diff(series.end) != MINUTE)
    print(
        f"{len(klines):,} bars of {args.symbol} 1m ({market.name} calendar), {breaks} session breaks, "
        f"{len(report.findings)} findings"
    )
    print(f"baseline (plain pandas pass): {baseline * per * 1000:8.1f} ms per 100,000 bars")
    for name, seconds in figures.items():
        print(
            f"{name:<28}: {seconds * per * 1000:8.1f} ms per 100,000 bars, "
            f"ratio to baseline {seconds / baseline:6.1f}"
        )


if __name__ == "__main__":
    main()
