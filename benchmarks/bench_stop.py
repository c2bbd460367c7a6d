"""How long Ctrl-C takes to stop ``alltick-bt stream``, ``record``, ``sim`` and ``demo``, against bare Python.

Each case starts the command in a fresh child against a simulator in this process, waits for
the line that shows the child is where the case wants it, sends SIGINT and times the exit.
The baseline, measured in the same run: a child that has imported what the commands import
(the package, its CLI, the REST client and the stream hub) and sleeps, ended by the same
signal through Python's own ``KeyboardInterrupt``: what delivering a signal and leaving an
interpreter of that size cost on this machine at this moment (on a loaded machine, seconds).

The target (the README's "Ctrl-C stops ..."): every case exits 0, at most 1 s after the signal
beyond the baseline's median, in every repetition.  "last line" is when the child printed its
last line (``stopped``, ``recorded: ...``), the slowest repetition: the command's own stopping,
before the interpreter's exit.  The tests (tests/test_cli_signals.py) only
bound a hang; this is where the second is measured.

    python benchmarks/bench_stop.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import queue
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from backtrader_alltick.sim import Simulator

ROOT = Path(__file__).resolve().parent.parent
TARGET_S = 1.0
HANG_S = 60.0  # a child that shows nothing for this long has hung: the case is reported as such
BASELINE = (
    "import time, backtrader_alltick.cli, backtrader_alltick.transport.rest, "
    "backtrader_alltick.transport.stream_hub; print('ready', flush=True); time.sleep(600)"
)
HELD: list[socket.socket] = []  # sockets a case keeps open until its child has exited


class Child:
    """``python -m backtrader_alltick ARGV`` (or ``python -c CODE``) with its output lines in a queue."""

    def __init__(self, argv: list[str], *, code: str | None = None) -> None:
        env = {key: value for key, value in os.environ.items() if not key.startswith("ALLTICK_")}
        env["PYTHONPATH"] = str(ROOT)
        command = (
            [sys.executable, "-c", code] if code else [sys.executable, "-m", "backtrader_alltick", *argv]
        )
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.last_line_at = 0.0  # monotonic time the child's last line arrived
        self._readers = [
            threading.Thread(target=self._read, args=(pipe,), daemon=True)
            for pipe in (self.process.stdout, self.process.stderr)
        ]
        for reader in self._readers:
            reader.start()

    def _read(self, pipe) -> None:
        for line in pipe:
            self.last_line_at = time.monotonic()
            self.lines.put(line)

    def wait_for(self, pattern: str) -> None:
        deadline = time.monotonic() + HANG_S
        while not re.search(pattern, self.lines.get(timeout=max(0.0, deadline - time.monotonic()))):
            pass

    def stop(self) -> tuple[float, float, int]:
        """Send SIGINT; the seconds until the child exited, until its last line (its "stopped" or
        "recorded: ..."; 0 if it printed none after the signal), and its exit status."""
        began = time.monotonic()
        self.process.send_signal(signal.SIGINT)
        code = self.process.wait(HANG_S)
        exited = time.monotonic() - began
        for reader in self._readers:
            reader.join(HANG_S)
        return exited, max(0.0, self.last_line_at - began), code

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


def service(sim: Simulator, ws_url: str | None = None) -> list[str]:
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


def baseline(sim: Simulator, tmp: Path) -> Child:
    child = Child([], code=BASELINE)
    child.wait_for("^ready")
    return child


def stream_between_ticks(sim: Simulator, tmp: Path) -> Child:
    child = Child(["stream", "BTCUSDT", *service(sim)])
    child.wait_for(r"tick\s+BTCUSDT")
    return child


def stream_waiting_to_reconnect(sim: Simulator, tmp: Path) -> Child:
    child = Child(["stream", "BTCUSDT", *service(sim)])
    child.wait_for(r"tick\s+BTCUSDT")
    sim.drop_connections()
    child.wait_for(r"stream \w+: disconnected")
    return child


def stream_during_the_handshake(sim: Simulator, tmp: Path) -> Child:
    # A loopback port that accepts and never answers: the upgrade stalls until the child gives up.
    listener = socket.create_server(("127.0.0.1", 0))
    child = Child(["stream", "BTCUSDT", *service(sim, f"ws://127.0.0.1:{listener.getsockname()[1]}")])
    listener.settimeout(HANG_S)
    HELD.extend((listener, listener.accept()[0]))
    return child


def record_between_ticks(sim: Simulator, tmp: Path) -> Child:
    path = tmp / f"rec-{time.monotonic_ns()}"
    child = Child(["record", "BTCUSDT", "--file", str(path), "--progress", "0.05", *service(sim)])
    child.wait_for(r"^so far: [1-9]\d* ticks")
    return child


def sim_idle(sim: Simulator, tmp: Path) -> Child:
    child = Child(["sim", "--symbols", "BTCUSDT"])
    child.wait_for(r"^\{")
    return child


def demo_paper_session(sim: Simulator, tmp: Path) -> Child:
    child = Child(["demo", "--no-chart", "-v", "--speed", "60"])
    child.wait_for(r"stream \w+ connected")
    return child


CASES: list[Callable[[Simulator, Path], Child]] = [
    stream_between_ticks,
    stream_during_the_handshake,
    stream_waiting_to_reconnect,
    record_between_ticks,
    sim_idle,
    demo_paper_session,
]


def measure(
    case: Callable[[Simulator, Path], Child], tmp: Path, repeat: int
) -> list[tuple[float, float, int]]:
    results = []
    for _ in range(repeat):
        with Simulator(dialect="alltick", plan="unlimited", speed=60, seed=1) as sim:
            child = case(sim, tmp)
            try:
                results.append(child.stop())
            finally:
                child.kill()
                while HELD:
                    HELD.pop().close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="children per case (default 3)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = [seconds for seconds, _, _ in measure(baseline, Path(tmp), args.repeat)]
        floor = statistics.median(base)
        print(f"baseline (bare python, KeyboardInterrupt): median {floor:.3f} s, max {max(base):.3f} s")
        failed = []
        for case in CASES:
            results = measure(case, Path(tmp), args.repeat)
            times = [seconds for seconds, _, _ in results]
            said = max(line for _, line, _ in results)
            codes = sorted({code for _, _, code in results})
            excess = max(times) - floor
            ok = codes == [0] and excess <= TARGET_S
            failed += [] if ok else [case.__name__]
            print(
                f"{case.__name__:<28} median {statistics.median(times):.3f} s, max {max(times):.3f} s, "
                f"beyond baseline {excess:+.3f} s, last line {said:.3f} s, exit {codes}: "
                f"{'ok' if ok else 'MISSED'}"
            )
    print(
        f"target: exit 0 within {TARGET_S:.0f} s of the signal beyond the baseline: "
        + ("met" if not failed else f"missed by {', '.join(failed)}")
    )


if __name__ == "__main__":
    main()
