"""``alltick-bt`` argument checks: a bad value is one usage line (exit 2), never a traceback or a default.

Run through ``cli.main`` in this process, as ``tests/test_cli.py`` does; the simulator serves the
commands that get as far as sending.
"""

from __future__ import annotations

import pytest
from test_cli import clean_environment, run, service  # noqa: F401 - the autouse fixture applies here too


@pytest.mark.parametrize(
    "argv, option, message",
    [
        (["klines", "AAPL.US\n"], "symbol", "without spaces or line breaks, was 'AAPL.US\\n'"),
        (["klines", "AAPL.US "], "symbol", "without spaces or line breaks, was 'AAPL.US '"),
        (["klines", ""], "symbol", "must be a symbol such as AAPL.US, EURUSD or BTCUSDT, was ''"),
        (["quote", "AAPL.US, TSLA.US"], "symbols", "without spaces or line breaks, was ' TSLA.US'"),
        (["depth", ","], "symbols", "must be one or more symbols such as AAPL.US,BTCUSDT, was ','"),
        (["stream", "BTCUSDT\t"], "symbols", "without spaces or line breaks, was 'BTCUSDT\\t'"),
        (["cache", "clear", "--symbol", ""], "--symbol", "was ''"),
        (["cache", "clear", "--symbol", "AAPL.US\n"], "--symbol", "was 'AAPL.US\\n'"),
        (["demo", "--symbol", " BTCUSDT"], "--symbol", "was ' BTCUSDT'"),
        (["quality", "BTCUSDT\n"], "symbol", "was 'BTCUSDT\\n'"),
        (["export", "BTCUSDT "], "symbols", "was 'BTCUSDT '"),
        (
            ["klines", "AAPL.US", "--from", "0001-01-01"],
            "--from",
            "must be from 1970-01-01 to before 2100-01-01 (no market data lies outside), was '0001-01-01'",
        ),
        (["klines", "AAPL.US", "--to", "9999-12-31"], "--to", "was '9999-12-31'"),
        (
            ["klines", "AAPL.US", "--plot", "x.csv"],
            "--plot",
            "must be an image file ending in .png, .svg, .pdf, .jpg, .jpeg, was 'x.csv'",
        ),
        (["demo", "--chart", "x.csv"], "--chart", "was 'x.csv'"),
        (
            ["quote", "AAPL.US", "--rest-url", "http://[::1"],
            "--rest-url",
            "must be a URL such as http://127.0.0.1:8080, was 'http://[::1' (Invalid IPv6 URL)",
        ),
        (
            ["quote", "AAPL.US", "--rest-url", "ws://127.0.0.1:1"],
            "--rest-url",
            "must be a http:// or https:// URL such as http://127.0.0.1:8080, was 'ws://127.0.0.1:1'",
        ),
        (["stream", "AAPL.US", "--ws-url", "http://127.0.0.1:1"], "--ws-url", "was 'http://127.0.0.1:1'"),
        (["stream", "AAPL.US", "--ws-url", "ws://127.0.0.1:123456"], "--ws-url", "Port out of range"),
        (
            ["stream", "AAPL.US", "--seconds", "inf"],
            "--seconds",
            "must be a finite number above 0, was 'inf'",
        ),
        (["sim", "--port", "70000"], "--port", "must be a port from 0 (any free one) to 65535, was '70000'"),
        (["sim", "--speed", "inf"], "--speed", "was 'inf'"),
        (["sim", "--symbols", " "], "--symbols", "was ' '"),
        (["record", "BTCUSDT", "--influx", "http://[::1"], "--influx", "was 'http://[::1'"),
        (
            ["record", "BTCUSDT", "--redis", "127.0.0.1:6379"],
            "--redis",
            "redis:// or rediss:// or unix:// URL",
        ),
        (
            ["record", "BTCUSDT", "--redis", "redis://127.0.0.1:1", "--lookback", "-5"],
            "--lookback",
            "must be a whole number of 1 or more, was '-5'",
        ),
    ],
)
def test_bad_arguments_are_one_usage_line(capsys, argv, option, message):
    code, out, err = run(capsys, *argv)

    assert code == 2 and out == ""
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"alltick-bt {argv[0]}: error: argument {option}: "), err
    assert message in last and "Traceback" not in err


def test_clearing_an_empty_symbol_clears_nothing(capsys, alltick_sim, tmp_path):
    cache = str(tmp_path / "cache.sqlite")
    assert run(capsys, "klines", "AAPL.US", "-n", "3", *service(alltick_sim, cache))[0] == 0

    code, _, err = run(capsys, "cache", "clear", "--symbol", "", "--cache", cache)
    _, info, _ = run(capsys, "cache", "info", "--cache", cache)

    assert code == 2 and "argument --symbol" in err
    assert "AAPL.US" in info  # the bars are still there


def test_symbols_may_still_be_listed_with_commas_or_as_arguments(capsys, alltick_sim):
    code, out, _ = run(capsys, "quote", "AAPL.US,BTCUSDT,", "EURUSD", "--json", *service(alltick_sim))

    assert code == 0 and len(out.splitlines()) == 3


def test_a_rest_url_from_the_environment_that_cannot_be_parsed_is_one_error_line(capsys, monkeypatch):
    monkeypatch.setenv("ALLTICK_REST_URL", "http://[::1")
    code, _, err = run(capsys, "quote", "AAPL.US", "--token", "a-token-of-some-length")

    assert (
        code == 1
        and err.strip()
        == "error: base_url must be an http(s) root such as 'https://quote.alltick.co', was 'http://[::1'"
    )


def test_sim_start_and_replay_together_are_refused(capsys):
    code, _, err = run(capsys, "sim", "--start", "2024-03-05T02:00", "--replay", "recording")

    assert code == 1
    assert err.strip() == (
        "error: --start sets the clock of the seeded market; a replay starts at --from, "
        "was both --start and --replay"
    )
