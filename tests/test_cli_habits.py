"""What a Unix user expects of ``alltick-bt`` beyond its data: pipes, signals at start-up, --json everywhere.

Each test runs the command in a child process against the simulator, as a shell would.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from backtrader_alltick._starting import command_of

ROOT = Path(__file__).resolve().parent.parent
HANG = 60.0  # seconds after which a child that has not answered is a failure (a hang detector)

# A sitecustomize that holds the child inside `import backtrader` (after the package's first line, before
# the command runs) until its stdin closes, and says so on stderr: the test signals it exactly there.
HOLD_AT_IMPORT = """
import sys

class HoldAtImport:
    def find_spec(self, name, path=None, target=None):
        if name == "backtrader":
            sys.meta_path.remove(self)
            sys.stderr.write("importing backtrader\\n")
            sys.stderr.flush()
            sys.stdin.read()
        return None

sys.meta_path.insert(0, HoldAtImport())
"""


def environment(*paths: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != "ALLTICK_TOKEN"}
    env["PYTHONPATH"] = os.pathsep.join(str(path) for path in (*paths, ROOT))
    return env


def alltick_bt(*argv: str, **options) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "backtrader_alltick", *argv], env=environment(), text=True, **options
    )


def run_bt(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "backtrader_alltick", *argv],
        capture_output=True,
        text=True,
        env=environment(),
        timeout=HANG,
    )


def service(sim) -> list[str]:
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
        "off",
    ]


def test_a_reader_that_stops_early_ends_klines_quietly_as_unix_tools_end(alltick_sim):
    child = alltick_bt(
        "klines",
        "BTCUSDT",
        "-n",
        "5000",
        *service(alltick_sim),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert child.stdout.readline().startswith("datetime,open,high,low,close")
    child.stdout.close()  # what `| head -1` does after its line: 5,000 rows no longer fit in the pipe

    err = child.stderr.read()
    assert child.wait(HANG) == 141  # 128 + SIGPIPE, the status a shell reports for `cat big | head -1`
    assert "error" not in err and "Broken pipe" not in err and "Traceback" not in err


def test_depth_json_prints_the_levels_asked_for(alltick_sim):
    done = run_bt("depth", "BTCUSDT", "--levels", "2", "--json", *service(alltick_sim))

    books = [json.loads(line) for line in done.stdout.splitlines()]
    assert done.returncode == 0, done.stderr
    assert [(book["symbol"], len(book["bids"]), len(book["asks"])) for book in books] == [("BTCUSDT", 2, 2)]


def test_cache_info_and_clear_print_json(alltick_sim, tmp_path):
    path = tmp_path / "cache.sqlite"
    cache = ["--cache", str(path)]
    assert run_bt("klines", "BTCUSDT", "-n", "5", *service(alltick_sim)[:-2], *cache).returncode == 0

    info = run_bt("cache", "info", "--json", *cache)
    cleared = run_bt("cache", "clear", "--json", *cache)

    assert info.returncode == 0, info.stderr
    report = json.loads(info.stdout)
    assert report["path"] == str(path)
    [series] = report["series"]
    assert series["dialect"].startswith("alltick@127.0.0.1:")  # simulated bars are kept apart
    assert (series["symbol"], series["period"]) == ("BTCUSDT", "1m")
    assert series["bars"] >= 5 and series["first_ms"] < series["last_ms"]
    assert json.loads(cleared.stdout) == {"path": str(path), "cleared": "*"}


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
@pytest.mark.parametrize(
    "argv", [["stream", "BTCUSDT"], ["record", "BTCUSDT", "--file", "x.rec"]], ids=["stream", "record"]
)
def test_a_stop_signal_while_python_still_imports_the_command_exits_0(tmp_path, argv, signum):
    (tmp_path / "sitecustomize.py").write_text(HOLD_AT_IMPORT)
    child = subprocess.Popen(
        [sys.executable, "-m", "backtrader_alltick", *argv],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment(tmp_path),
        cwd=tmp_path,
    )
    try:
        assert child.stderr.readline() == "importing backtrader\n"
        child.send_signal(signum)
        out, err = child.communicate(timeout=HANG)
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()

    assert child.returncode == 0, err
    assert err == "stopped while starting\n"
    assert not (tmp_path / "x.rec").exists()


@pytest.mark.parametrize(
    "argv, command",
    [
        (["python", "-m", "backtrader_alltick", "--debug", "stream", "BTCUSDT"], "stream"),
        (["/usr/bin/python3", "/venv/bin/alltick-bt", "record", "X", "--file", "f"], "record"),
        (["C:\\venv\\Scripts\\alltick-bt.exe", "demo"], "demo"),
        (["python", "-m", "pytest", "tests"], None),
        (["python", "-c", "import backtrader_alltick"], None),
    ],
)
def test_only_an_alltick_bt_command_line_names_a_command(argv, command):
    assert command_of(argv) == command
