"""``alltick-bt quality`` against the simulator: injected K-line flaws are reported exactly, clean
data is clean."""

from __future__ import annotations

import json
import re

import pytest
from test_cli import run, service

from backtrader_alltick.records import format_utc

MINUTE = 60_000


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch, tmp_path):
    for name in ("ALLTICK_TOKEN", "ALLTICK_REST_URL", "ALLTICK_WS_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


def inject_every_flaw(sim) -> list[tuple[str, int, int]]:
    """Put one of each K-line flaw into BTCUSDT's last 300 minutes; return the expected (kind, time, bars)."""
    bars = sim.klines("BTCUSDT", "1m", sim.start_ms - 300 * MINUTE, sim.start_ms)
    start = [k.start for k in bars]
    end = [k.end for k in bars]
    sim.faults.kline_flaws = {
        start[50]: "gap",
        start[51]: "gap",
        start[100]: "spike",
        start[150]: "repeat",
        start[200]: "volume_spike",
        start[250]: "ohlc",
        **{s: "stale" for s in start[261:280]},
    }
    return [
        ("missing_bars", end[50], 2),
        ("outlier_return", end[100], 1),
        ("repeated_bar", end[150], 1),
        ("volume_spike", end[200], 1),
        ("ohlc_inconsistent", end[250], 1),
        ("stale_run", end[260], 20),
    ]


def test_quality_json_lists_exactly_the_injected_flaws(capsys, sim):
    expected = inject_every_flaw(sim)

    code, out, err = run(capsys, "quality", "BTCUSDT", "-n", "330", "--json", *service(sim))

    assert code == 0, err
    report = json.loads(out)
    assert [(f["kind"], f["time_ms"], f["bars"]) for f in report["findings"]] == expected
    assert all(f["time"] == format_utc(f["time_ms"]) for f in report["findings"])
    assert report["counts"] == {
        "missing_bars": 2,
        "outside_session": 0,
        "repeated_timestamp": 0,
        "repeated_bar": 1,
        "impossible_value": 0,
        "ohlc_inconsistent": 1,
        "outlier_return": 1,
        "stale_run": 20,
        "volume_spike": 1,
    }
    assert report["thresholds"] == {"outlier_z": 10.0, "stale_bars": 15, "volume_z": 6.0}
    assert (report["symbol"], report["period"], report["market"]) == ("BTCUSDT", "1m", "CRYPTO")
    assert report["bars"] >= 320  # the newest 330 minutes but the two left out


def test_quality_text_summary_states_thresholds_counts_and_findings(capsys, alltick_sim):
    expected = inject_every_flaw(alltick_sim)

    code, out, _ = run(capsys, "quality", "BTCUSDT", "-n", "330", *service(alltick_sim))

    assert code == 0
    assert "outlier return |robust z| > 10, stale run >= 15 bars, volume spike robust z > 6" in out
    assert re.search(r"missing_bars +2\n", out) and re.search(r"stale_run +20\n", out)
    assert "findings: 6" in out
    listed = re.findall(r"^  (\S+Z)  (\w+)", out, re.MULTILINE)
    assert listed == [(format_utc(time), kind) for kind, time, _ in expected]
    assert len(out.splitlines()) <= 25  # one screen


def test_quality_html_is_self_contained_and_marks_every_finding(capsys, alltick_sim, tmp_path):
    expected = inject_every_flaw(alltick_sim)
    page = tmp_path / "report.html"

    code, out, _ = run(capsys, "quality", "BTCUSDT", "-n", "330", "--html", str(page), *service(alltick_sim))

    assert code == 0 and "findings: 6" in out
    html = page.read_text(encoding="utf-8")
    assert not re.search(r"https?:", html)  # nothing to fetch: opens offline
    assert not re.search(r"<(script|link|img|iframe)[^>]+src=", html)
    assert html.count("<svg") == 1 and html.count("<line ") == len(expected)
    for kind, time, _ in expected:
        assert f"{format_utc(time)} {kind}:" in html  # the mark's hover text
    embedded = re.search(r"<script type='application/json' id='report'>(.*?)</script>", html).group(1)
    assert len(json.loads(embedded)["findings"]) == len(expected)


@pytest.mark.parametrize(
    "symbol, window",
    [
        ("BTCUSDT", ["--from", "2024-03-01T18:00", "--to", "2024-03-04T06:00"]),  # 24/7, over a weekend
        (
            "EURUSD",
            ["--from", "2024-03-01T18:00", "--to", "2024-03-04T06:00"],
        ),  # 24/5, closed for the weekend
        ("AAPL.US", ["-n", "500"]),  # the newest 500 minutes: Friday to Tuesday, nights and a weekend
    ],
)
def test_quality_clean_symbol_has_no_findings(capsys, sim, symbol, window):
    code, out, err = run(capsys, "quality", symbol, *window, "--json", *service(sim))

    assert code == 0, err
    report = json.loads(out)
    assert report["bars"] > 300
    assert report["findings"] == [] and not any(report["counts"].values())


def test_quality_range_reports_bars_missing_at_its_edges(capsys, sim):
    bars = sim.klines("BTCUSDT", "1m", sim.start_ms - 120 * MINUTE, sim.start_ms - 60 * MINUTE)
    sim.faults.kline_flaws = {bars[0].start: "gap", bars[1].start: "gap", bars[-1].start: "gap"}
    window = ["--from", format_utc(bars[0].end), "--to", format_utc(bars[-1].end)]

    code, out, err = run(capsys, "quality", "BTCUSDT", *window, "--json", *service(sim))

    assert code == 0, err
    assert [(f["kind"], f["time_ms"], f["bars"]) for f in json.loads(out)["findings"]] == [
        ("missing_bars", bars[0].end, 2),
        ("missing_bars", bars[-1].end, 1),
    ]


def test_quality_count_and_range_together_is_a_usage_error(capsys, alltick_sim):
    code, _, err = run(capsys, "quality", "BTCUSDT", "-n", "5", "--from", "2024-03-01", *service(alltick_sim))

    assert code == 2 and "either --count or --from/--to" in err


def test_quality_html_in_a_missing_folder_fails_before_fetching(capsys, alltick_sim, tmp_path):
    code, _, err = run(
        capsys, "quality", "BTCUSDT", "--html", str(tmp_path / "no" / "r.html"), *service(alltick_sim)
    )

    assert code == 1 and err.startswith("error: --html must be in an existing folder, was ")
    assert alltick_sim.counters["rest_requests"] == 0


def test_quality_help_names_the_thresholds(capsys):
    code, out, _ = run(capsys, "quality", "--help")

    assert code == 0
    assert all(option in out for option in ("--json", "--html", "--outlier-z", "--stale-bars", "--volume-z"))


def test_quality_without_a_token_is_one_error_line_and_sends_nothing(capsys, alltick_sim):
    code, out, err = run(capsys, "quality", "BTCUSDT", "--rest-url", alltick_sim.rest_url, "--cache", "off")

    assert code == 1 and out == ""
    assert err.startswith("error: no token for the alltick service: set ALLTICK_TOKEN or pass --token")
    assert alltick_sim.counters["rest_requests"] == 0
