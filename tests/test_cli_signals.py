"""Ctrl-C (SIGINT) and SIGTERM stop ``stream``, ``record``, ``sim`` and ``demo`` at any point, with exit 0.

Each case runs the command in a fresh child process, waits for an event that shows where the
child is (a line it printed, or a request the simulator saw), sends the signal and checks the
exit status.  ``HANG`` only bounds a hang, it asserts no speed.  Some children start with
SIGINT ignored, as a shell without job control starts a background command: the command
documents Ctrl-C, so it must stop all the same.
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from backtrader_alltick import AllTickStore
from backtrader_alltick.recording import Recording
from backtrader_alltick.symbols import parse_symbol

ROOT = Path(__file__).resolve().parent.parent
HANG = 20.0  # seconds after which a child that has not answered is a failure (a hang detector)


class Child:
    """``python -m backtrader_alltick ARGV`` with its stdout and stderr lines collected as they come."""

    def __init__(self, *argv: str, sigint_ignored: bool = False) -> None:
        env = {key: value for key, value in os.environ.items() if key != "ALLTICK_TOKEN"}
        env["PYTHONPATH"] = str(ROOT)
        command = [sys.executable, "-m", "backtrader_alltick", *argv]
        if sigint_ignored:  # what `cmd &` does in a script: the process inherits SIGINT ignored
            command = ["sh", "-c", 'trap "" INT; exec "$@"', "sh", *command]
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )
        self.out: list[str] = []
        self.err: list[str] = []
        self._changed = threading.Condition()
        pipes = ((self.process.stdout, self.out), (self.process.stderr, self.err))
        self._readers = [
            threading.Thread(target=self._read, args=(pipe, lines), daemon=True) for pipe, lines in pipes
        ]
        for reader in self._readers:
            reader.start()

    def _read(self, pipe, lines: list[str]) -> None:
        for line in pipe:
            with self._changed:
                lines.append(line)
                self._changed.notify_all()
        with self._changed:
            lines.append(None)  # the end of this pipe
            self._changed.notify_all()

    def wait_for(self, lines: list[str], pattern: str, count: int = 1) -> re.Match:
        """The ``count``-th line of ``lines`` (self.out or self.err) matching ``pattern``."""
        found: list[re.Match] = []
        seen = 0
        with self._changed:
            while True:
                for line in lines[seen:]:
                    if line is None:
                        raise AssertionError(f"the child ended before printing {pattern!r}:\n{self.text()}")
                    if match := re.search(pattern, line):
                        found.append(match)
                        if len(found) == count:
                            return match
                seen = len(lines)
                if not self._changed.wait(HANG):
                    raise AssertionError(f"no {pattern!r} within {HANG} s:\n{self.text()}")

    def send(self, signum: int = signal.SIGINT) -> None:
        self.process.send_signal(signum)

    def finish(self) -> int:
        """The exit status; a child still running after HANG seconds is killed and fails the test."""
        try:
            code = self.process.wait(timeout=HANG)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"no exit within {HANG} s of the signal:\n{self.text()}") from None
        for reader in self._readers:
            reader.join(HANG)
        return code

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        for pipe in (self.process.stdout, self.process.stderr):
            pipe.close()

    def text(self) -> str:
        return "".join(line for line in self.err + self.out if line is not None)[-3000:]


@pytest.fixture
def children():
    started: list[Child] = []

    def start(*argv: str, **options) -> Child:
        child = Child(*argv, **options)
        started.append(child)
        return child

    yield start
    for child in started:
        child.kill()


def service(sim, ws_url: str | None = None) -> list[str]:
    return [
        "--dialect",
        sim.dialect,
        "--token",
        sim.token,
        "--rest-url",
        sim.rest_url,
        "--ws-url",
        ws_url or sim.ws_url,
        "--plan",
        "unlimited",
        "--cache",
        "off",
    ]


@pytest.fixture
def silent_server():
    """A loopback port that accepts connections and never answers: a WebSocket handshake there stalls."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.settimeout(HANG)
        accepted: list[socket.socket] = []

        def wait_for_client() -> None:
            accepted.append(listener.accept()[0])

        yield f"ws://127.0.0.1:{listener.getsockname()[1]}", wait_for_client
        for connection in accepted:
            connection.close()


def journal_entry(sim, kind: str, count: int = 1):
    """Wait until the simulator has seen ``count`` entries of ``kind`` (rest, ws_open, ws_message)."""
    seen = []

    def counted(entry) -> bool:
        if entry.kind == kind:
            seen.append(entry)
        return len(seen) >= count

    return sim.journal.wait_for(counted, timeout=HANG)


def assert_stopped(child: Child, code: int, says: str = "stopped") -> None:
    err = "".join(line for line in child.err if line is not None)
    assert code == 0, child.text()
    assert says in err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    assert "did not stop" not in err  # no socket thread was left behind (a handshake is interrupted too)


# -- stream -------------------------------------------------------------------------------------


def _while_checking_the_symbols(sim, child, silent):
    journal_entry(sim, "rest")  # the simulator holds the answer (slow_ms): the child waits in a REST call


def _during_the_handshake(sim, child, silent):
    silent[1]()  # the child's socket is connected to a server that never answers its upgrade


def _right_after_subscribing(sim, child, silent):
    journal_entry(sim, "ws_message")


def _between_ticks(sim, child, silent):
    child.wait_for(child.out, r"tick\s+BTCUSDT", count=3)


def _waiting_to_reconnect(sim, child, silent):
    child.wait_for(child.out, r"tick\s+BTCUSDT")
    sim.drop_connections()
    child.wait_for(child.err, r"stream \w+: disconnected")


def _during_the_reconnect_handshake(sim, child, silent):
    child.wait_for(child.out, r"tick\s+BTCUSDT")
    sim.faults.slow_ms = 600_000  # the next upgrade is held until the simulator closes
    sim.drop_connections()
    journal_entry(sim, "ws_open", count=2)


STREAM_POINTS = [
    _while_checking_the_symbols,
    _during_the_handshake,
    _right_after_subscribing,
    _between_ticks,
    _waiting_to_reconnect,
    _during_the_reconnect_handshake,
]


@pytest.mark.parametrize("sigint_ignored", [False, True], ids=["sigint-default", "sigint-inherited-ignored"])
@pytest.mark.parametrize("point", STREAM_POINTS, ids=lambda point: point.__name__.strip("_"))
def test_stream_stops_with_exit_0_on_ctrl_c(alltick_sim, children, silent_server, point, sigint_ignored):
    if point is _while_checking_the_symbols:
        alltick_sim.faults.slow_ms = 600_000
    ws_url = silent_server[0] if point is _during_the_handshake else None
    child = children("stream", "BTCUSDT", *service(alltick_sim, ws_url), sigint_ignored=sigint_ignored)
    point(alltick_sim, child, silent_server)

    child.send(signal.SIGINT)

    assert_stopped(child, child.finish())


def test_stream_stops_with_exit_0_on_sigterm(alltick_sim, children):
    child = children("stream", "BTCUSDT", *service(alltick_sim))
    child.wait_for(child.out, r"tick\s+BTCUSDT")

    child.send(signal.SIGTERM)

    assert_stopped(child, child.finish())


# -- record -------------------------------------------------------------------------------------


def _recorded(child: Child) -> int:
    return int(child.wait_for(child.err, r"^recorded: (\d+) ticks").group(1))


@pytest.mark.parametrize(
    "point, sigint_ignored",
    [
        ("before the connection", False),
        ("between ticks", False),
        ("between ticks", True),
        ("waiting to reconnect", False),
    ],
    ids=[
        "before-the-connection",
        "between-ticks",
        "between-ticks-sigint-inherited-ignored",
        "waiting-to-reconnect",
    ],
)
def test_record_flushes_what_it_received_and_exits_0_on_ctrl_c(
    alltick_sim, children, silent_server, tmp_path, point, sigint_ignored
):
    path = tmp_path / "btc.rec"
    ws_url = silent_server[0] if point == "before the connection" else None
    child = children(
        "record",
        "BTCUSDT",
        "--file",
        str(path),
        "--flush",
        "60",
        "--progress",
        "0.05",
        *service(alltick_sim, ws_url),
        sigint_ignored=sigint_ignored,
    )
    child.wait_for(child.err, r"^recording BTCUSDT")
    if point == "before the connection":
        silent_server[1]()
    else:
        # --flush 60: nothing is on disk yet; what the file holds at the end the stop flushed.
        child.wait_for(child.err, r"^so far: [1-9]\d* ticks")
    if point == "waiting to reconnect":
        alltick_sim.drop_connections()
        child.wait_for(child.err, r"upstream drops 1")

    child.send(signal.SIGINT)

    assert_stopped(child, child.finish(), says="stopping: flushing the sinks")
    received = _recorded(child)
    assert (point == "before the connection") == (received == 0)
    if received:
        assert Recording(path).trade_count == received  # every trade it reported, on disk


def test_record_second_ctrl_c_during_the_flush_exits_at_once_with_130(children):
    # Redis on a closed port: the stop keeps retrying the pending writes (up to 10 s) until told again.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    child = children(
        "record",
        "BTCUSDT",
        "--redis",
        f"redis://127.0.0.1:{closed}/0",
        "--progress",
        "0.05",
        "--speed",
        "240",
    )
    child.wait_for(child.err, r"^so far: .*redis: 0 written, [1-9]\d* pending")
    child.send(signal.SIGINT)
    child.wait_for(child.err, r"^stopping: flushing the sinks")

    child.send(signal.SIGINT)

    assert child.finish() == 130
    assert "interrupted again: exiting without finishing" in "".join(child.err[:-1])


# -- sim ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["sigint", "sigterm"])
@pytest.mark.parametrize("client", [False, True], ids=["idle", "streaming-to-a-client"])
def test_sim_stops_with_exit_0(children, tmp_path, signum, client):
    child = children("sim", "--symbols", "BTCUSDT", sigint_ignored=client)
    urls = json.loads(child.wait_for(child.out, r"^\{.*").group(0))
    if client:
        store = AllTickStore(
            token=urls["token"],
            rest_url=urls["rest_url"],
            ws_url=urls["ws_url"],
            plan="unlimited",
            cache=False,
        )
        ticks: queue.Queue = queue.Queue()
        store.listen(parse_symbol("BTCUSDT"), ticks.put)
        ticks.get(timeout=HANG)
    try:
        child.send(signum)
        code = child.finish()
    finally:
        if client:
            store.stop()

    assert code == 0, child.text()
    assert "Traceback" not in child.text()


# -- demo ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "point, sigint_ignored",
    [(r"^no ALLTICK_TOKEN: using", False), (r"stream \w+ connected", False), (r"stream \w+ connected", True)],
    ids=["backtest", "paper-session", "paper-session-sigint-inherited-ignored"],
)
def test_demo_stops_with_exit_0_on_ctrl_c(children, point, sigint_ignored):
    child = children("demo", "--no-chart", "-v", "--speed", "60", sigint_ignored=sigint_ignored)
    child.wait_for(child.err, point)

    child.send(signal.SIGINT)

    assert_stopped(child, child.finish(), says="stopped: the demo was interrupted")
    assert not [line for line in child.out if line]  # no report of a demo that did not finish
