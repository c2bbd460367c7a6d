"""A sentinel token with ``+ / = &`` must appear in no output, log, file or exception, in any spelling.

Every ``alltick-bt`` command runs as a user would run it, in a subprocess at ``-vv --debug``
against ``alltick-bt sim`` (and against a port where nothing listens); a live Cerebro runs in
this process with the root logger and websocket-client's trace at DEBUG.  Everything they print,
log, write or raise is searched for the token, raw, percent-encoded (either case, twice),
JSON- or HTML-escaped, and for its middle, which the mask never shows.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import html
import io
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import traceback
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, quote_plus

import backtrader as bt
import pytest
import websocket

from backtrader_alltick import AllTickStore
from backtrader_alltick.errors import ConnectError
from backtrader_alltick.symbols import parse_symbol
from backtrader_alltick.transport import rest
from feedtools import Recorder, run_guarded

ROOT = Path(__file__).resolve().parent.parent
SENTINEL = "SENTINEL+tok/9f8e=7d6c&5b4a"
# The middle of the token, which mask_token never shows, in any spelling (escapes in between).
MIDDLE = re.compile(r"9f8e.{0,24}7d6c", re.DOTALL)


def spellings(token: str) -> set[str]:
    forms = {
        token,
        quote(token, safe=""),
        quote(token),
        quote_plus(token),
        json.dumps(token)[1:-1],
        token.replace("/", "\\/"),
        html.escape(token),
        repr(token)[1:-1],
    }
    forms |= {re.sub(r"%[0-9A-F]{2}", lambda m: m.group().lower(), form) for form in forms}
    forms |= {quote(form, safe="") for form in list(forms)}
    forms |= {form[: len(form) - 6] for form in list(forms)}  # a message clipped inside the token
    return forms


FORMS = sorted(spellings(SENTINEL), key=len)


def leaks(text: str) -> list[str]:
    found = [form for form in FORMS if form in text]
    return found + MIDDLE.findall(text)


def assert_clean(text: str, where: str) -> None:
    found = leaks(text)
    assert not found, f"the token leaked into {where}: {found[:3]}\n{text[-3000:]}"


def assert_clean_bytes(data: bytes, where: str) -> None:
    for encoding in ("utf-8", "utf-16-le", "utf-16-be"):
        for form in FORMS:
            assert form.encode(encoding) not in data, f"the token leaked into {where} ({encoding})"
    assert_clean(data.decode("latin-1"), where)


def exception_texts(error: BaseException, seen: set[int] | None = None) -> list[str]:
    """Every text an error reporter could find from ``error``: str, repr, args, attributes, chain."""
    seen = set() if seen is None else seen
    if id(error) in seen:
        return []
    seen.add(id(error))
    texts = [str(error), repr(error), "".join(traceback.format_exception(error))]
    for value in [*error.args, *vars(error).values()]:
        if isinstance(value, BaseException):
            texts += exception_texts(value, seen)
        else:
            texts.append(repr(value))
    for linked in (error.__context__, error.__cause__):
        if linked is not None:
            texts += exception_texts(linked, seen)
    return texts


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def environment() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("ALLTICK_")}
    env["PYTHONPATH"] = str(ROOT)
    return env


# The REST client's five retries against the closed port, each logged, at a tenth of their pace
# (1.55 s at most rather than 15.5).
QUICK_RETRIES = """
from backtrader_alltick.transport import rest, retry
def quick(attempt, initial, cap, **pace):
    return retry.backoff_delay(attempt, initial / 10, cap / 10, **pace)
rest.backoff_delay = quick
"""


def alltick_bt(*argv: str, cwd: Path, timeout: float = 120, prelude: str = "") -> tuple[int, str, str]:
    code = f"{prelude}\nimport sys\nfrom backtrader_alltick.cli import main\nsys.exit(main(sys.argv[1:]))"
    done = subprocess.run(
        [sys.executable, "-c", code, *argv],
        capture_output=True,
        text=True,
        env=environment(),
        cwd=cwd,
        timeout=timeout,
    )
    return done.returncode, done.stdout, done.stderr


@contextlib.contextmanager
def sentinel_simulator(cwd: Path, output: dict[str, str]) -> Iterator[dict]:
    """``alltick-bt --debug sim --token SENTINEL``: yields its JSON line; fills ``output`` when stopped."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "backtrader_alltick",
            "--debug",
            "sim",
            "--token",
            SENTINEL,
            "--speed",
            "120",
            "--symbols",
            "AAPL.US,BTCUSDT,EURUSD",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment(),
        cwd=cwd,
    )
    try:
        line = process.stdout.readline()
        output["first line"] = line
        yield json.loads(line)
        process.send_signal(signal.SIGTERM)
        output["stdout"], output["stderr"] = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def test_no_command_shows_the_token_at_debug(tmp_path, redis_server):
    sim_output: dict[str, str] = {}
    with sentinel_simulator(tmp_path, sim_output) as info:
        _run_every_command(info, tmp_path, redis_server)
    # The simulator reports the token it serves on its one JSON line, as documented, and nowhere else.
    assert json.loads(sim_output["first line"])["token"] == SENTINEL
    assert_clean(sim_output["stdout"], "the simulator's output after its first line")
    assert_clean(sim_output["stderr"], "the simulator's debug log")

    # Every file but the one the user keeps the token in (--token-file).
    files = [path for path in tmp_path.rglob("*") if path.is_file() and path.name != "token.txt"]
    assert {"bars.csv", "bars.png", "cache.sqlite", "demo.png"} <= {path.name for path in files}
    for path in files:  # the cache, CSV, charts and the recorder's Redis files
        assert_clean_bytes(path.read_bytes(), str(path))


def _run_every_command(info: dict, tmp_path: Path, redis_server) -> None:
    service = [
        "-vv",
        "--debug",
        "--token",
        SENTINEL,
        "--rest-url",
        info["rest_url"],
        "--ws-url",
        info["ws_url"],
        "--plan",
        "unlimited",
        "--cache",
        str(tmp_path / "cache.sqlite"),
    ]
    unreachable = [
        "-vv",
        "--debug",
        "--token",
        SENTINEL,
        "--plan",
        "unlimited",
        "--cache",
        "off",
        "--rest-url",
        f"http://127.0.0.1:{closed_port()}",
        "--ws-url",
        f"ws://127.0.0.1:{closed_port()}",
    ]
    token_file = tmp_path / "token.txt"
    token_file.write_text(SENTINEL + "\n")
    # One after the other: these share the simulator and the cache file, as a user's commands would
    # (and the demo, busy on the CPU).
    runs = {
        "klines to files": (
            "klines",
            "AAPL.US",
            "-n",
            "5",
            "--out",
            "bars.csv",
            "--plot",
            "bars.png",
            *service,
        ),
        "klines to stdout": ("klines", "BTCUSDT", "-t", "5m", "-n", "3", *service),
        "quote": ("quote", "AAPL.US", "BTCUSDT", "--json", *service),
        "quote, token from a file": (
            "quote",
            "AAPL.US",
            "-vv",
            "--debug",
            "--token-file",
            str(token_file),
            *service[4:],
        ),
        "depth": ("depth", "BTCUSDT", "EURUSD", *service),
        "stream": ("stream", "BTCUSDT", "--types", "tick,depth", "--limit", "5", "--seconds", "30", *service),
        "cache info": ("cache", "info", *service),
        "cache clear": ("cache", "clear", "--symbol", "AAPL.US", *service),
        # demo: its built-in simulator's token is the sentinel (the token generator is replaced).
        "demo": (
            "demo",
            "-vv",
            "--debug",
            "--minutes",
            "2",
            "--speed",
            "600",
            "--history",
            "60",
            "--chart",
            "demo.png",
        ),
    }
    # Meanwhile, each on a thread of its own: the two that touch neither and mostly wait (the
    # client's retries against a closed port, a stream's seconds).
    aside = {
        "quote, REST unreachable": ("quote", "AAPL.US", *unreachable),
        "stream, WebSocket unreachable": (
            "stream",
            "BTCUSDT",
            "--seconds",
            "3",
            *service[:-6],
            "--ws-url",
            f"ws://127.0.0.1:{closed_port()}",
            "--cache",
            "off",
        ),
    }
    prelude = f"import secrets\nsecrets.token_hex = lambda nbytes=None: {SENTINEL!r}"
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(aside)) as pool:
        started = {
            name: pool.submit(alltick_bt, *argv, cwd=tmp_path, prelude=QUICK_RETRIES)
            for name, argv in aside.items()
        }
        done = {
            name: alltick_bt(*argv, cwd=tmp_path, prelude=prelude if name == "demo" else "")
            for name, argv in runs.items()
        }
        done |= {name: future.result() for name, future in started.items()}
    codes = {}
    for name, (codes[name], out, err) in done.items():
        assert_clean(out, f"stdout of {name}")
        assert_clean(err, f"stderr of {name}")
    assert codes["klines to files"] == codes["quote"] == codes["stream"] == codes["cache clear"] == 0
    assert codes["quote, token from a file"] == 0
    assert codes["quote, REST unreachable"] == 1
    assert codes["demo"] == 0, done["demo"][2]

    _record(service, redis_server, tmp_path)


def _record(service: list[str], redis_server, cwd: Path) -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "backtrader_alltick",
            "record",
            "BTCUSDT",
            "--redis",
            redis_server.url,
            "--progress",
            "0.3",
            "--lookback",
            "3",
            *service,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment(),
        cwd=cwd,
    )
    guard = threading.Timer(60, process.kill)
    guard.start()
    lines = []
    try:
        for line in process.stderr:
            lines.append(line)
            if sum(line.startswith("so far:") for line in lines) >= 3:
                break
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    finally:
        guard.cancel()
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, "".join(lines) + err
    assert_clean(out, "stdout of record")
    assert_clean("".join(lines) + err, "stderr of record")


class DropAfter(Recorder):
    params = (("sim", None),)

    def next(self) -> None:
        super().next()
        if len(self.data) == 3 and not getattr(self, "dropped", False):
            self.dropped = self.p.sim.drop_connections()


@pytest.fixture
def debug_logs():
    """Every log record of the process, at DEBUG for root and with websocket-client's trace on."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    trace, trace_logger = io.StringIO(), logging.getLogger("websocket")
    trace_level, trace_handler = trace_logger.level, logging.StreamHandler(trace)
    websocket.enableTrace(True, handler=trace_handler)
    yield lambda: stream.getvalue() + trace.getvalue()
    websocket.enableTrace(False)
    trace_logger.removeHandler(trace_handler)
    trace_logger.setLevel(trace_level)
    root.removeHandler(handler)
    root.setLevel(previous)


@pytest.mark.parametrize("dialect", ["alltick", "itick"])  # the token in the URL, and in a header
def test_a_live_cerebro_logs_and_raises_no_token(make_sim, tmp_path, debug_logs, monkeypatch, dialect):
    monkeypatch.setattr(rest, "backoff_delay", lambda *args, **kwargs: 0.0)
    sim = make_sim(dialect=dialect, speed=240, token=SENTINEL)
    store = AllTickStore.from_simulator(sim, cache=tmp_path / "live.sqlite")
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(
        store.getdata(dataname="BTCUSDT", timeframe=bt.TimeFrame.Minutes, lookback=3, qcheck=0.1), name="btc"
    )
    cerebro.addstrategy(DropAfter, stop_after=6, sim=sim)
    strategy = run_guarded(cerebro, 60)
    store.stop()
    assert len(strategy.rows["btc"]) >= 6 and "CONNBROKEN" in strategy.notes["btc"]

    errors = [
        status.error
        for _, (status,), _ in store.get_notifications()
        if getattr(status, "error", None) is not None
    ]
    closed = closed_port()
    unreachable = AllTickStore(
        token=SENTINEL,
        dialect=dialect,
        rest_url=f"http://127.0.0.1:{closed}",
        ws_url=f"ws://127.0.0.1:{closed}",
        plan="unlimited",
        cache=False,
        reconnections=0,
    )
    statuses = []
    failed = threading.Event()
    try:
        with pytest.raises(ConnectError) as raised:
            unreachable.latest_trades(["AAPL.US"])
        errors.append(raised.value)
        unreachable.listen(
            parse_symbol("BTCUSDT"),
            lambda record: None,
            on_status=lambda status: (statuses.append(status), failed.set()),
        )
        assert failed.wait(30)
    finally:
        unreachable.stop()
    errors += [status.error for status in statuses if status.error is not None]
    assert len([error for error in errors if isinstance(error, ConnectError)]) >= 2

    for error in errors:
        for text in exception_texts(error):
            assert_clean(text, f"{type(error).__name__} or an exception it links to")
    logs = debug_logs()
    assert "urllib3.connectionpool DEBUG" in logs and "Connection refused" in logs
    assert "Sec-WebSocket-Key" in logs  # websocket-client's trace of the handshake
    assert_clean(logs, "the log records")
    assert_clean_bytes((tmp_path / "live.sqlite").read_bytes(), "the cache file")
