"""The HTML report page: self-contained, escaped, and the chart keeps spikes on long series."""

from __future__ import annotations

import re
from dataclasses import replace

from backtrader_alltick.markets import CRYPTO
from backtrader_alltick.quality import check_bars
from backtrader_alltick.quality.bar_series import series_from_klines
from backtrader_alltick.quality.html import MAX_POINTS, render_html
from backtrader_alltick.sim.market import MarketModel

MINUTE = 60_000
FRIDAY = 1_709_251_200_000  # 2024-03-01 00:00 UTC


def minute_bars(count: int):
    model = MarketModel(seed=4, symbols=["BTCUSDT"], history_start_ms=FRIDAY)
    return model.klines_between("BTCUSDT", "1m", FRIDAY, FRIDAY + count * MINUTE, FRIDAY + 30 * 86_400_000)


def test_render_html_long_series_is_thinned_but_keeps_the_spike():
    klines = minute_bars(20_000)
    top = klines[12_345].close * 1.2
    klines[12_345] = replace(klines[12_345], close=top, high=top)
    series = series_from_klines(klines)
    report = check_bars(series, CRYPTO, "1m", "BTCUSDT")

    html = render_html(report, series)

    points = re.search(r"points='([^']*)'", html).group(1).split()
    assert len(points) <= MAX_POINTS
    assert min(float(point.split(",")[1]) for point in points) == 40.0  # the spike is the top of the chart
    assert html.count("<line ") == len(report.findings) == 1


def test_render_html_escapes_text_and_loads_nothing():
    series = series_from_klines(minute_bars(50))
    report = check_bars(series, CRYPTO, "1m", "<b>X</b>")

    html = render_html(report, series)

    assert "<b>X</b>" not in html and "&lt;b&gt;X&lt;/b&gt;" in html
    assert not re.search(r"https?:|url\(|@import|src=", html)
    assert ">none<" in html  # no findings: the table says so


def test_render_html_without_bars_has_no_chart():
    series = series_from_klines([])

    html = render_html(check_bars(series, CRYPTO, "1m", "BTCUSDT"), series)

    assert "<svg" not in html and "no bars" in html
