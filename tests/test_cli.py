"""``alltick-bt`` commands, run through ``cli.main`` against the simulator on loopback.

Each test checks what a user sees: the exit status, the data on stdout and the one-line
errors on stderr.  The simulator's URLs and token are passed as options, exactly as a
user would point the command at ``alltick-bt sim``.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import warnings

import pandas as pd
import pytest
from fakeservice import CannedService, alltick_history, alltick_klines, minute_rows
from test_plot import png_size

from backtrader_alltick.cli import main
from backtrader_alltick.transport import rest

COMMANDS = ["demo", "klines", "quote", "depth", "stream", "cache", "sim"]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch, tmp_path):
    # No token, no service URLs from the developer's shell; the default cache and files go to tmp.
    for name in ("ALLTICK_TOKEN", "ALLTICK_REST_URL", "ALLTICK_WS_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "user-cache"))
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def no_retry_waits(monkeypatch):
    # Refused connections are retried with backoff (and, on the free plan, 10 s apart); the tests
    # keep the retries but not the waits: backoff off here, --plan unlimited in the test.
    monkeypatch.setattr(rest, "backoff_delay", lambda *args, **kwargs: 0.0)


def run(capsys, *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as e:  # argparse: --help and usage errors
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def service(sim, cache: str = "off") -> list[str]:
    return [
        "--dialect",
        sim.dialect,
        "--token",
        sim.token,
        "--rest-url",
        sim.rest_url,
        "--ws-url",
        sim.ws_url,
        "--plan",
        "unlimited",
        "--cache",
        cache,
    ]


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def csv_rows(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


# -- help and usage ---------------------------------------------------------------------------


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(capsys, command):
    code, out, _ = run(capsys, command, "--help")

    assert code == 0
    assert out.startswith(f"usage: alltick-bt {command}")


def test_top_level_help_lists_every_command(capsys):
    code, out, _ = run(capsys, "--help")

    assert code == 0
    for command in COMMANDS:
        assert command in out


def test_python_dash_m_runs_the_command():
    result = subprocess.run(
        [sys.executable, "-m", "backtrader_alltick", "--version"], capture_output=True, text=True, timeout=60
    )

    assert result.returncode == 0
    assert result.stdout.startswith("alltick-bt ")


# -- missing token and unreachable services ---------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["quote", "AAPL.US"],
        ["depth", "AAPL.US"],
        ["stream", "AAPL.US"],
        ["klines", "AAPL.US"],
        ["klines", "AAPL.US", "--dialect", "itick"],
    ],
)
def test_missing_token_is_one_line_naming_the_fix_and_sends_nothing(capsys, argv):
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"

        code, out, err = run(capsys, *argv, "--rest-url", url, "--ws-url", url.replace("http", "ws"))

        listener.setblocking(False)
        with pytest.raises(BlockingIOError):
            listener.accept()  # nobody tried to connect
    assert code == 1
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith("error: no token")
    assert "ALLTICK_TOKEN" in err and "alltick-bt demo" in err


def test_unreachable_host_is_one_error_line(capsys, no_retry_waits):
    url = f"http://127.0.0.1:{closed_port()}"

    code, out, err = run(
        capsys, "quote", "AAPL.US", "--token", "secret-token-123", "--rest-url", url, "--plan", "unlimited"
    )

    assert code == 1
    assert out == ""
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: ") and "127.0.0.1" in last
    assert "Traceback" not in err
    assert "secret-token-123" not in err


def test_debug_shows_the_traceback(capsys, no_retry_waits):
    url = f"http://127.0.0.1:{closed_port()}"

    code, _, err = run(
        capsys,
        "quote",
        "AAPL.US",
        "--token",
        "secret-token-123",
        "--rest-url",
        url,
        "--plan",
        "unlimited",
        "--debug",
    )

    assert code == 1
    assert "Traceback" in err
    assert err.strip().splitlines()[-1].startswith("error: ")


@pytest.mark.parametrize("debug", [[], ["--debug"]])
def test_every_command_ends_an_error_the_same_way(capsys, debug):
    # sim, record and quality live in other modules than klines; one place turns their errors into status 1.
    for argv in (
        ["sim", "--from", "2024-03-05"],
        ["record", "BTCUSDT"],
        ["klines", "AAPL.US"],
        ["quality", "AAPL.US"],
    ):
        code, out, err = run(capsys, *debug, *argv)

        assert (code, out) == (1, ""), argv
        assert err.strip().splitlines()[-1].startswith("error: "), argv
        assert ("Traceback" in err) == bool(debug), argv


# -- klines -----------------------------------------------------------------------------------


def test_klines_prints_csv_of_closed_bars(capsys, sim):
    code, out, err = run(capsys, "klines", "AAPL.US", "--count", "5", *service(sim))

    assert code == 0
    rows = csv_rows(out)
    assert len(rows) == 5
    assert list(rows[0]) == ["datetime", "open", "high", "low", "close", "volume", "turnover"]
    assert all(row["datetime"].endswith(":00+00:00") for row in rows)  # stamped at the minute close, UTC
    assert [row["datetime"] for row in rows] == sorted(row["datetime"] for row in rows)
    assert "AAPL.US 1m: 5 closed bars" in err


def test_klines_synthetic_timeframe_groups_native_bars(capsys, alltick_sim):
    code, out, _ = run(capsys, "klines", "BTCUSDT", "-t", "3m", "-n", "4", *service(alltick_sim))

    assert code == 0
    minutes = [int(row["datetime"][14:16]) for row in csv_rows(out)]
    assert len(minutes) == 4 and all(minute % 3 == 0 for minute in minutes)


@pytest.mark.parametrize(("timeframe", "step"), [("5min", 5), ("h", 60), ("2h", 120)])
def test_klines_timeframe_spellings(capsys, alltick_sim, timeframe, step):
    code, out, err = run(capsys, "klines", "BTCUSDT", "-t", timeframe, "-n", "3", *service(alltick_sim))

    assert code == 0, err
    closes = [pd.Timestamp(row["datetime"]) for row in csv_rows(out)]
    assert [(b - a).total_seconds() for a, b in zip(closes, closes[1:])] == [step * 60.0] * 2
    assert all((stamp.hour * 60 + stamp.minute) % step == 0 for stamp in closes)
    assert f"BTCUSDT {timeframe}: 3 closed bars" in err


def test_klines_range_to_files_with_progress(capsys, alltick_sim, tmp_path):
    out_file, chart = tmp_path / "btc.csv", tmp_path / "btc.png"

    code, out, err = run(
        capsys,
        "klines",
        "BTCUSDT",
        "--from",
        "2024-03-03",
        "--to",
        "2024-03-04",
        "--out",
        str(out_file),
        "--plot",
        str(chart),
        *service(alltick_sim),
    )

    assert code == 0
    assert out == ""
    rows = csv_rows(out_file.read_text())
    # A day of 1-minute bars over several 500-bar requests, and the bar stamped at --from: like
    # Backtrader's fromdate/todate, both ends are inclusive.
    assert len(rows) == 1441
    assert rows[0]["datetime"] == "2024-03-03 00:00:00+00:00"
    assert rows[-1]["datetime"] == "2024-03-04 00:00:00+00:00"
    assert "3 requests" in err and "100%" in err  # the progress line
    assert png_size(chart)[0] > 0


def test_klines_shows_waits_on_the_plans_rate_limit(capsys, alltick_sim):
    # Basic allows one /kline call a second: the three requests of a day of bars wait twice.
    argv = [*service(alltick_sim), "--plan", "basic"]

    code, _, err = run(capsys, "klines", "BTCUSDT", "--from", "2024-03-03", "--to", "2024-03-04", *argv)

    assert code == 0
    assert "for the plan's rate limit (kline)" in err
    assert "waiting " in err


def test_klines_unknown_symbol(capsys, sim):
    code, out, err = run(capsys, "klines", "NOPE.US", *service(sim))

    assert code == 1
    assert out == ""
    assert err.startswith("error: ") and "NOPE.US" in err
    assert "Traceback" not in err


def test_klines_symbol_without_region_names_the_fix(capsys, alltick_sim):
    code, _, err = run(capsys, "klines", "AAPL", *service(alltick_sim))

    assert code == 1
    assert err == (
        "error: symbol 'AAPL' has no region; write 'AAPL.US' (or .HK, .SH, .SZ) or pass region='US'\n"
    )


@pytest.mark.parametrize("timeframe", ["7x", "0m", "m1", "1 hour", "5", "1H"])
def test_klines_bad_timeframe_is_a_usage_error(capsys, timeframe):
    code, out, err = run(capsys, "klines", "AAPL.US", "--timeframe", timeframe, "--token", "x")

    assert code == 2
    assert out == ""
    assert f"argument --timeframe/-t: must look like 1m, 5m, 1h, 1d, 1w or 1M, was {timeframe!r}" in err


def test_klines_count_and_range_together_is_a_usage_error(capsys):
    code, _, err = run(capsys, "klines", "AAPL.US", "-n", "5", "--from", "2024-03-01", "--token", "x")

    assert code == 2
    assert "give either --count or --from/--to, not both" in err


def test_klines_bad_date_is_a_usage_error(capsys):
    code, _, err = run(capsys, "klines", "AAPL.US", "--from", "yesterday", "--token", "x")

    assert code == 2
    assert "argument --from: must be a date or time like 2024-03-05" in err


def test_klines_out_needs_a_known_suffix(capsys, alltick_sim):
    code, _, err = run(capsys, "klines", "AAPL.US", "--out", "bars.txt", *service(alltick_sim))

    assert code == 1
    assert err == "error: --out must end in .csv or .parquet, was 'bars.txt'\n"


# -- quote, depth ----------------------------------------------------------------------------


def test_quote_prints_latest_trade_per_symbol(capsys, sim):
    code, out, err = run(capsys, "quote", "AAPL.US", "BTCUSDT,EURUSD", *service(sim))

    assert code == 0, err
    lines = out.strip().splitlines()
    assert lines[0].startswith("time (UTC)")
    assert [line.split()[3] for line in lines[1:]] == ["AAPL.US", "BTCUSDT", "EURUSD"]


def test_quote_json_lines(capsys, alltick_sim):
    code, out, _ = run(capsys, "quote", "AAPL.US", "--json", *service(alltick_sim))

    assert code == 0
    record = json.loads(out)
    assert record["type"] == "tick" and record["symbol"] == "AAPL.US"
    assert record["price"] > 0 and record["time"] > 1_700_000_000_000


def test_quote_unknown_symbol(capsys, sim):
    code, out, err = run(capsys, "quote", "ZZZZ.US", *service(sim))

    assert code == 1
    assert out == ""
    assert err.startswith("error: ") and "ZZZZ.US" in err and err.count("\n") == 1


def test_depth_prints_both_sides(capsys, sim):
    code, out, _ = run(capsys, "depth", "BTCUSDT", "--levels", "3", *service(sim))

    assert code == 0
    lines = out.strip().splitlines()
    assert lines[0].startswith("BTCUSDT")
    assert lines[1].split() == ["bid", "size", "ask", "size"]
    best_bid, _, best_ask, _ = map(float, lines[2].split())
    assert best_bid < best_ask
    assert len(lines) == 2 + 3


def test_depth_json(capsys, alltick_sim):
    code, out, _ = run(capsys, "depth", "AAPL.US", "--json", *service(alltick_sim))

    assert code == 0
    book = json.loads(out)
    assert book["type"] == "depth" and book["bids"][0][0] < book["asks"][0][0]


# -- stream -----------------------------------------------------------------------------------


def client_threads() -> set[str]:
    # The simulator's own connection threads wind down on their own; only ours must be gone.
    return {thread.name for thread in threading.enumerate() if thread.name.startswith("alltick-")}


def test_stream_prints_pushes_until_limit_and_leaves_no_thread(capsys, sim):

    code, out, err = run(capsys, "stream", "BTCUSDT", "--limit", "3", "--seconds", "30", *service(sim))

    assert code == 0, err
    lines = out.strip().splitlines()
    assert len(lines) == 3
    assert all(line.split()[2:4] == ["tick", "BTCUSDT"] for line in lines)
    assert "connected" in err
    assert client_threads() == set()


def test_stream_types_filter_and_json(capsys, itick_sim):
    code, out, _ = run(
        capsys,
        "stream",
        "AAPL.US",
        "--types",
        "quote,depth",
        "--limit",
        "4",
        "--json",
        "--seconds",
        "30",
        *service(itick_sim),
    )

    assert code == 0
    kinds = {json.loads(line)["type"] for line in out.strip().splitlines()}
    assert kinds <= {"quote", "depth"} and kinds


def test_stream_quote_type_needs_itick(capsys, alltick_sim):
    code, _, err = run(capsys, "stream", "AAPL.US", "--types", "quote", *service(alltick_sim))

    assert code == 1
    assert err == (
        "error: --types quote needs --dialect itick (AllTick pushes only tick and depth), "
        "was --dialect alltick\n"
    )


def test_stream_bad_type(capsys, alltick_sim):
    code, _, err = run(capsys, "stream", "AAPL.US", "--types", "trades", *service(alltick_sim))

    assert code == 2  # a usage error, caught before anything is sent
    assert "argument --types: must be a comma list of tick, quote, depth, was 'trades'" in err


def test_stream_unknown_symbol_fails_fast(capsys, sim):
    code, out, err = run(capsys, "stream", "NOPE.US", "--seconds", "30", *service(sim))

    assert code == 1
    assert out == "" and "NOPE.US" in err


def test_stream_with_a_mistyped_symbol_among_good_ones_fails_naming_it(capsys, sim):
    # iTick leaves unknown codes out of a batch answer and a subscription without an error.
    code, out, err = run(
        capsys, "stream", "BTCUSDT,NOPEUSDT", "--limit", "1", "--seconds", "30", *service(sim)
    )

    assert code == 1
    assert out == ""
    assert err.startswith("error: ") and "NOPEUSDT" in err and len(err.strip().splitlines()) == 1


def test_stream_ws_url_that_cannot_be_valid_is_one_error_line(capsys, alltick_sim):
    code, out, err = run(
        capsys, "stream", "BTCUSDT", *service(alltick_sim), "--ws-url", "http://127.0.0.1:8080"
    )

    # A usage error since --ws-url is checked when parsed (the store's own check covers ALLTICK_WS_URL).
    assert code == 2
    assert out == ""
    last = err.strip().splitlines()[-1]
    assert last.startswith("alltick-bt stream: error: argument --ws-url: must be a ws:// or wss:// URL")


def test_stream_without_seconds_gives_up_on_a_refused_ws_host(alltick_sim):
    argv = [
        sys.executable,
        "-m",
        "backtrader_alltick",
        "stream",
        "BTCUSDT",
        "--limit",
        "1",
        *service(alltick_sim),
        "--ws-url",
        f"ws://127.0.0.1:{closed_port()}",
    ]
    env = {k: v for k, v in os.environ.items() if k != "ALLTICK_TOKEN"}

    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60)  # never, before

    assert done.returncode == 1
    assert done.stdout == ""
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "Connection refused" in errors[0]
    assert "Traceback" not in done.stderr and alltick_sim.token not in done.stderr


def test_stream_ctrl_c_exits_cleanly(alltick_sim):
    argv = [sys.executable, "-m", "backtrader_alltick", "stream", "BTCUSDT", *service(alltick_sim)]
    env = {k: v for k, v in os.environ.items() if k != "ALLTICK_TOKEN"}
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) as child:
        try:
            first = child.stdout.readline()  # streaming has begun
            child.send_signal(signal.SIGINT)
            _, err = child.communicate(timeout=30)
        finally:
            child.kill()

    assert "tick" in first and "BTCUSDT" in first
    assert child.returncode == 0
    assert "Traceback" not in err and "KeyboardInterrupt" not in err


# -- cache ------------------------------------------------------------------------------------


def test_cache_info_and_clear(capsys, alltick_sim, tmp_path):
    path = str(tmp_path / "klines.sqlite")
    assert run(capsys, "klines", "AAPL.US", "-n", "10", *service(alltick_sim, cache=path))[0] == 0

    code, out, _ = run(capsys, "cache", "info", "--cache", path)
    assert code == 0
    assert out.splitlines()[0] == f"cache: {path}"
    namespace, symbol, period = out.splitlines()[1].split()[:3]
    assert (namespace, symbol, period) == (f"alltick@{alltick_sim.rest_url.split('//')[1]}", "AAPL.US", "1m")

    code, out, _ = run(capsys, "cache", "clear", "--symbol", "AAPL.US", "--cache", path)
    assert code == 0 and out == f"cleared AAPL.US from {path}\n"
    assert run(capsys, "cache", "info", "--cache", path)[1].splitlines()[1] == "empty"


def test_cache_info_default_location_needs_no_token(capsys, tmp_path):
    code, out, err = run(capsys, "cache", "info")

    assert code == 0, err
    assert out.splitlines()[0] == f"cache: {tmp_path / 'user-cache' / 'backtrader_alltick' / 'klines.sqlite'}"


def test_cache_off_is_an_error(capsys):
    code, _, err = run(capsys, "cache", "info", "--cache", "off")

    assert code == 1
    assert err.startswith("error: the cache is off")


# -- demo -------------------------------------------------------------------------------------


@pytest.mark.parametrize("dialect", ["alltick", "itick"])
def test_demo_without_token_runs_on_the_simulator_and_writes_chart(capsys, tmp_path, dialect):
    chart = tmp_path / "demo.png"

    code, out, err = run(
        capsys,
        "demo",
        "--dialect",
        dialect,
        "--minutes",
        "4",
        "--speed",
        "300",
        "--history",
        "120",
        "--chart",
        str(chart),
    )

    assert code == 0, err
    assert "no ALLTICK_TOKEN: using the built-in simulator" in err
    assert "backtest:" in out and "paper:" in out
    assert "120 bars of BTCUSDT 1m" in out
    assert "4 built live" in out
    assert "notifications: DELAYED, LIVE" in out
    assert out.count("P&L:") == 2 and out.count("trades:") == 2
    assert f"chart: {chart}" in out
    width, height = png_size(chart)
    assert width > 400 and height > 300
    assert client_threads() == set()


def test_demo_with_token_uses_the_service_not_the_simulator(capsys, monkeypatch, no_retry_waits):
    monkeypatch.setenv("ALLTICK_TOKEN", "secret-token-123")
    url = f"http://127.0.0.1:{closed_port()}"

    code, out, err = run(
        capsys,
        "demo",
        "--rest-url",
        url,
        "--ws-url",
        url.replace("http", "ws"),
        "--plan",
        "unlimited",
        "--no-chart",
    )

    assert code == 1
    assert out == ""
    assert "simulator" not in err
    assert err.strip().splitlines()[-1].startswith("error: ")
    assert "secret-token-123" not in err


def test_demo_rejects_zero_minutes(capsys):
    code, _, err = run(capsys, "demo", "--minutes", "0")

    assert code == 2
    assert "argument --minutes: must be a whole number of 1 or more, was '0'" in err


def test_sim_speed_must_be_positive(capsys):
    code, _, err = run(capsys, "sim", "--speed", "0")

    assert code == 2 and "must be a number above 0, was '0'" in err


def test_demo_chart_in_a_missing_folder_fails_before_running(capsys, tmp_path):
    code, out, err = run(capsys, "demo", "--chart", str(tmp_path / "missing" / "x.png"))

    assert code == 2 and out == ""  # a usage error since --chart is checked when parsed
    chart = tmp_path / "missing" / "x.png"
    assert err.strip().endswith(f"argument --chart: must be in an existing folder, was '{chart}'")


# -- Bad answers and bad cache files ------------------------------------------------------------


def canned(service, cache: str) -> list[str]:
    return [
        "--token",
        "canned-token-0123456789",
        "--rest-url",
        service.url,
        "--plan",
        "unlimited",
        "--cache",
        cache,
    ]


def test_klines_of_impossible_times_is_an_error_and_the_next_good_run_gets_every_bar(capsys, tmp_path):
    answers = {"bad": True}

    def answer(request):
        if answers["bad"]:
            return 200, alltick_klines(minute_rows(4, timestamp=-100_000_000_000))  # -1e11 s: before year 0
        return alltick_history(request)

    cache = str(tmp_path / "klines.sqlite")
    with CannedService(answer) as service:
        code, out, err = run(capsys, "klines", "BTCUSDT", "-n", "3", *canned(service, cache))
        answers["bad"] = False
        good_code, good_out, good_err = run(capsys, "klines", "BTCUSDT", "-n", "3", *canned(service, cache))

    assert code == 1 and out == ""
    assert err.startswith("error: ") and err.count("\n") == 1
    assert "timestamp must be a time from 1970" in err
    assert good_code == 0
    assert len(csv_rows(good_out)) == 3
    assert "3 closed bars" in good_err


@pytest.mark.parametrize("kind", ["directory", "text", "other schema"])
@pytest.mark.parametrize("command", [["cache", "info"], ["klines", "BTCUSDT", "-n", "3"]])
def test_a_cache_path_that_is_not_our_cache_is_one_error_line(capsys, tmp_path, kind, command):
    path = tmp_path / "klines.sqlite"
    if kind == "directory":
        path.mkdir()
    elif kind == "text":
        path.write_text("not a cache\n")
    else:
        sqlite3.connect(path).executescript("CREATE TABLE notes (text TEXT); PRAGMA user_version = 7;")
    before = path.read_bytes() if path.is_file() else None

    with CannedService(alltick_history) as service:
        code, out, err = run(capsys, *command, *canned(service, str(path)))

    assert code == 1
    assert err.startswith(f"error: the K-line cache {path} ") and err.count("\n") == 1
    assert "--cache off" in err
    assert service.requests == []
    assert (path.read_bytes() if path.is_file() else None) == before


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["-n", "1000000000"],
            r"--count must be at most 29,\d{3},\d{3} for --timeframe 1m .*was 1,000,000,000",
        ),
        (["-t", "3m", "-n", "10000000"], r"--count must be at most 9,\d\d\d,\d\d\d for --timeframe 3m"),
        (
            ["-t", "99999999999999m"],
            r"--timeframe must be shorter than all history since 1970 .*99999999999999m",
        ),
    ],
)
def test_klines_no_service_can_serve_is_refused_before_any_request(capsys, tmp_path, argv, message):
    with CannedService(alltick_history) as service:
        code, out, err = run(capsys, "klines", "BTCUSDT", *argv, *canned(service, "off"))

    assert code == 1 and out == ""
    assert err.startswith("error: ") and err.count("\n") == 1
    assert re.search(message, err), err
    assert service.requests == []


# -- warnings ----------------------------------------------------------------------------------


def test_klines_of_an_empty_range_says_so_in_one_warning_line(capsys, alltick_sim):
    code, out, err = run(
        capsys, "klines", "AAPL.US", "--from", "2024-03-02", "--to", "2024-03-03", *service(alltick_sim)
    )

    assert code == 0
    said = [line for line in err.splitlines() if "no 1m bars" in line]
    assert len(said) == 1 and said[0].startswith("warning: AAPL.US: no 1m bars"), err
    assert "NoBarsWarning" not in err  # a terminal line, not Python's file:line format


def test_klines_older_than_the_service_keeps_says_so_in_one_warning_line(capsys, alltick_sim):
    code, out, err = run(
        capsys, "klines", "AAPL.US", "--from", "2024-02-26", "--to", "2024-03-05T15:00", *service(alltick_sim)
    )

    assert code == 0 and len(out.splitlines()) > 400
    said = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(said) == 1, err
    assert said[0].startswith("warning: AAPL.US: alltick serves only the newest 500 1m bars"), err


def test_klines_with_regular_hours_warns_once_of_the_bars_left_out(capsys, make_sim, tmp_path):
    from notice_scripts import OPEN, write_premarket_recording

    write_premarket_recording(str(tmp_path / "aapl.rec"))
    sim = make_sim(replay=tmp_path / "aapl.rec", start=OPEN + 8 * 60_000)

    code, out, err = run(
        capsys,
        "klines",
        "AAPL.US",
        "--from",
        "2024-03-05T14:00",
        "--to",
        "2024-03-05T14:35",
        "--regular-hours",
        *service(sim),
    )

    assert code == 0
    said = [line for line in err.splitlines() if "outside the regular session" in line]
    # Pre-market bars stamped 14:00 to 14:30 (the open): 31.
    assert len(said) == 1 and said[0].startswith("warning: AAPL.US: 31 1m bars outside"), err


def test_klines_held_back_over_a_minute_says_so_in_one_warning_line(capsys, alltick_sim, monkeypatch):
    from notice_scripts import FakeTime

    from backtrader_alltick.transport import ratelimit

    made, time = ratelimit.RateLimiter, FakeTime()

    def held_back(plan, ledger=None, **_):
        # The store's limiter on a clock that a wait moves at once: 90 s as after a Retry-After: 90.
        if ledger is not None:
            ledger.close()
        limiter = made(plan, monotonic=time.monotonic, sleep=time.sleep)
        limiter.penalize(90.0)
        return limiter

    monkeypatch.setattr(ratelimit, "RateLimiter", held_back)

    code, out, err = run(capsys, "klines", "EURUSD", "-n", "5", *service(alltick_sim))

    assert code == 0 and len(out.splitlines()) == 6  # the header and five bars
    said = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(said) == 1 and said[0].startswith("warning: a kline request for EURUSD waits 90 s"), err


def test_klines_with_a_foreign_file_as_the_default_cache_warns_once_and_goes_on(
    capsys, alltick_sim, tmp_path
):
    from notice_scripts import write_foreign_cache

    write_foreign_cache(str(tmp_path / "user-cache"))  # the XDG_CACHE_HOME of clean_environment
    sim_args = [arg for arg in service(alltick_sim) if arg not in ("--cache", "off")]  # the default cache

    code, out, err = run(capsys, "klines", "BTCUSDT", "-n", "5", *sim_args)

    assert code == 0, err
    said = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(said) == 1 and "is not a K-line cache" in said[0], err
    assert said[0].endswith("this store goes on without a cache, so every bar comes from the service")


def test_warnings_from_any_thread_are_one_line_each_and_others_keep_their_form(capsys):
    from backtrader_alltick.cli.console import run_command
    from backtrader_alltick.errors import RateLimitWarning
    from backtrader_alltick.notices import warn_user

    def command(args) -> int:
        for _ in range(2):  # the same condition noticed twice, on two threads
            worker = threading.Thread(target=warn_user, args=("a kline request waits 90 s", RateLimitWarning))
            worker.start()
            worker.join()
        warnings.warn("not ours", FutureWarning, stacklevel=1)
        return 0

    with pytest.warns(FutureWarning, match="not ours"):  # handed on to Python's (here pytest's) display
        assert run_command(command, argparse.Namespace()) == 0

    assert capsys.readouterr().err.splitlines() == ["warning: a kline request waits 90 s"]
