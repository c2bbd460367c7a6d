"""The data-quality report as one self-contained HTML page: summary, an inline SVG chart, findings.

Pure: returns text.  The page loads nothing (no scripts, fonts, styles or images from
elsewhere), so it opens in any browser without network access.  The chart plots the close
by bar number (nights and weekends take no room) and marks each finding with a line in
its kind's colour; hovering a mark shows its detail.
"""

from __future__ import annotations

import json
from html import escape

import numpy as np

from ..records import format_utc
from .checks import KINDS, BarSeries, QualityReport

WIDTH, HEIGHT, PAD = 1000, 320, 40
MAX_POINTS = 2000
COLOURS = dict(
    zip(
        KINDS,
        ("#d62728", "#9467bd", "#8c564b", "#e377c2", "#000000", "#ff7f0e", "#1f77b4", "#7f7f7f", "#2ca02c"),
    )
)
STYLE = """body{font-family:sans-serif;margin:2em;color:#222}table{border-collapse:collapse}
td,th{padding:2px 10px;text-align:left;border-bottom:1px solid #ddd}.swatch{display:inline-block;
width:10px;height:10px;margin-right:4px}svg{border:1px solid #ccc;background:#fff}"""


def render_html(report: QualityReport, series: BarSeries) -> str:
    """Return the page for ``report`` over the bars it checked (``series``, any order)."""
    order = np.argsort(series.end, kind="stable")
    ends, closes = series.end[order], series.close[order]
    title = f"Data quality: {report.symbol} {report.period}"
    counts = report.to_dict()["counts"]
    rows = "".join(
        f"<tr><td><span class='swatch' style='background:{COLOURS.get(kind, '#444')}'></span>"
        f"{escape(kind)}</td><td>{count}</td></tr>"
        for kind, count in counts.items()
    )
    findings = (
        "".join(
            f"<tr><td>{escape(format_utc(f.time))}</td><td>{escape(f.kind)}</td><td>{f.bars}</td>"
            f"<td>{escape(f.detail)}</td></tr>"
            for f in report.findings
        )
        or "<tr><td colspan=4>none</td></tr>"
    )
    first, last = report.first, report.last  # None in a report of no bars
    span = "no bars" if first is None or last is None else f"{format_utc(first)} .. {format_utc(last)}"
    thresholds = ", ".join(f"{name} {value}" for name, value in report.to_dict()["thresholds"].items())
    return (
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{escape(title)}</title>"
        f"<style>{STYLE}</style></head><body><h1>{escape(title)}</h1>"
        f"<p>{report.bars} bars, {escape(span)} (bar close, UTC); calendar {escape(report.market)}; "
        f"thresholds: {escape(thresholds)}.</p>{_chart(report, ends, closes)}"
        f"<h2>Counts</h2><table>{rows}</table>"
        f"<h2>Findings ({len(report.findings)})</h2><table><tr><th>bar close (UTC)</th><th>kind</th>"
        f"<th>bars</th><th>detail</th></tr>{findings}</table>"
        f"<script type='application/json' id='report'>{_embedded(report)}</script></body></html>"
    )


def _embedded(report: QualityReport) -> str:
    # The JSON report rides along as data (never executed) so the page is the whole record.
    return json.dumps(report.to_dict()).replace("</", "<\\/")


def _chart(report: QualityReport, ends: np.ndarray, closes: np.ndarray) -> str:
    if not len(ends):
        return ""
    finite = np.isfinite(closes) & (closes > 0)
    low, high = (float(closes[finite].min()), float(closes[finite].max())) if finite.any() else (0.0, 1.0)
    high = high if high > low else low + 1.0
    last = max(len(ends) - 1, 1)

    def x(index: float) -> float:
        return PAD + (WIDTH - 2 * PAD) * index / last

    def y(price: float) -> float:
        return HEIGHT - PAD - (HEIGHT - 2 * PAD) * (price - low) / (high - low)

    points = " ".join(f"{x(i):.1f},{y(closes[i]):.1f}" for i in _thinned(closes, finite))
    marks = []
    for finding in report.findings:
        index = min(int(np.searchsorted(ends, finding.time)), len(ends) - 1)
        colour = COLOURS.get(finding.kind, "#444")
        tip = escape(f"{format_utc(finding.time)} {finding.kind}: {finding.detail}")
        marks.append(
            f"<line x1='{x(index):.1f}' x2='{x(index):.1f}' y1='{PAD / 2}' y2='{HEIGHT - PAD}' "
            f"stroke='{colour}' stroke-width='2' opacity='0.7'><title>{tip}</title></line>"
        )
    labels = (
        f"<text x='{PAD}' y='{HEIGHT - 10}' font-size='11'>{escape(format_utc(int(ends[0])))}</text>"
        f"<text x='{WIDTH - PAD}' y='{HEIGHT - 10}' font-size='11' text-anchor='end'>"
        f"{escape(format_utc(int(ends[-1])))}</text>"
        f"<text x='4' y='{PAD - 4}' font-size='11'>{high:g}</text>"
        f"<text x='4' y='{HEIGHT - PAD + 12}' font-size='11'>{low:g}</text>"
    )
    return (
        f"<svg width='{WIDTH}' height='{HEIGHT}' viewBox='0 0 {WIDTH} {HEIGHT}' role='img' "
        f"aria-label='close price with findings marked'>"
        f"<polyline fill='none' stroke='#333' stroke-width='1' points='{points}'/>"
        f"{''.join(marks)}{labels}</svg>"
    )


def _thinned(closes: np.ndarray, finite: np.ndarray) -> list[int]:
    # Long series: keep each bucket's lowest and highest close, in time order, so spikes stay visible.
    indices = np.flatnonzero(finite)
    if len(indices) <= MAX_POINTS:
        return indices.tolist()
    kept: list[int] = []
    for bucket in np.array_split(indices, MAX_POINTS // 2):
        values = closes[bucket]
        kept.extend(sorted({int(bucket[np.argmin(values)]), int(bucket[np.argmax(values)])}))
    return kept
