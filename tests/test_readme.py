"""Every Python snippet and shell command of README.md runs, and prints what the README shows.

The fences are read from README.md itself, in order, so a new section is tested as soon as it is
written.  What each kind of fence means here:

- ``python``: run in one namespace shared by the README's snippets, in their order (a snippet may
  use what an earlier one defined, as a reader does), with the store pointed at a simulator by the
  environment (``ALLTICK_TOKEN``, ``ALLTICK_REST_URL``, ``ALLTICK_WS_URL``, ``ALLTICK_PLAN``), in a
  scratch directory.  Warning filters and logging set by a snippet are undone after it.
- ``bash``: each command (``&&`` chains split, ``\\`` continuations joined, comments dropped).
  ``alltick-bt ...`` runs against the same simulator, with exit 0 expected; ``record`` and ``sim``,
  which run until stopped, are stopped with SIGTERM once they have done their work (Redis and
  InfluxDB at their usual local ports are the test's own servers).  ``pip install`` lines are what
  CI does before the tests: the extras they name must exist.  The test command must be CI's.
- ``text`` starting with ``$ command``: the command runs and must print exactly the lines below it.
- ``toml``: a config file, which :func:`backtrader_alltick.config.read_file` must accept.
- A fence tagged ``no-run`` (```` ```python no-run ````) is skipped: for a snippet that cannot run
  here, with the reason next to it in the README.  Any other command fails with a message saying so.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shlex
import signal
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest
from thread_leaks import describe, left_behind, threads_now

from backtrader_alltick import AllTickStore, config
from backtrader_alltick.recording import Recording
from backtrader_alltick.sim import Simulator

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
HANG = 120.0  # seconds after which a command that has not finished is a failure (a hang detector)
FENCE = re.compile(
    r"^(?P<indent> *)```(?P<lang>[\w-]*)(?P<info>[^\n]*)\n(?P<body>.*?)^(?P=indent)```[ \t]*$", re.S | re.M
)
# `alltick-bt` as the README's readers type it; `python -m backtrader_alltick` is the same command
# (README) and imports this checkout without depending on where the console script was installed.
SHELL_PRELUDE = 'alltick-bt() { exec "$PYTHON" -m backtrader_alltick "$@"; }\n'
RECORDED_UNTIL_MS = 1_709_650_800_000 + 6 * 60_000  # the replay snippet's feed ends after 15:04


@dataclass(frozen=True)
class Block:
    lang: str
    tags: tuple[str, ...]
    code: str
    line: int

    def __str__(self) -> str:
        return f"README.md:{self.line} ({self.lang})"


def readme_blocks() -> list[Block]:
    text = README.read_text(encoding="utf-8")
    blocks = []
    for match in FENCE.finditer(text):
        body = textwrap.dedent(match["body"]) if match["indent"] else match["body"]
        blocks.append(
            Block(match["lang"], tuple(match["info"].split()), body, text.count("\n", 0, match.start()) + 1)
        )
    return [block for block in blocks if "no-run" not in block.tags]


def shell_commands(code: str) -> list[str]:
    """The commands of a shell fence: continuations joined, comment lines dropped, ``&&`` chains split."""
    joined = re.sub(r"\\\n\s*", " ", code)
    commands = []
    for line in joined.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        for part in line.split("&&"):
            words = shlex.split(part, comments=True)
            if words:
                commands.append(shlex.join(words) if ">" not in words else part.split(" #")[0].strip())
    return commands


BLOCKS = readme_blocks()


# -- what every block runs against ----------------------------------------------------------------------


class Workspace:
    """The scratch directory, the simulator and the namespace the README's blocks share, in order."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.sim = Simulator(dialect="alltick", plan="unlimited", speed=60, seed=1)
        self.namespace: dict = {"__name__": "readme"}
        self.outputs: list[tuple[Block, str, subprocess.Popen]] = []
        self.done: set[str] = set()
        # Commands whose output the README shows: run once, from the fence that shows the output.
        self.shown = {
            block.code.splitlines()[0][2:]: block
            for block in BLOCKS
            if block.lang == "text" and block.code.startswith("$ ")
        }

    def service_environment(self) -> dict[str, str]:
        """The environment that points a store or a command at the simulator, as a user's would."""
        return {
            "ALLTICK_TOKEN": self.sim.token,
            "ALLTICK_REST_URL": self.sim.rest_url,
            "ALLTICK_WS_URL": self.sim.ws_url,
            "ALLTICK_PLAN": "unlimited",
            "ALLTICK_CACHE": str(self.root / "klines.sqlite"),
            "ALLTICK_CONFIG": str(self.root / "none"),
        }

    def command_environment(self, token: bool = True) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items() if not key.startswith("ALLTICK_")}
        env.update(self.service_environment() if token else {"ALLTICK_CONFIG": str(self.root / "none")})
        env.update(PYTHONPATH=str(ROOT), PYTHON=sys.executable, MPLBACKEND="Agg")
        return env

    def close(self) -> None:
        for value in self.namespace.values():
            if isinstance(value, AllTickStore):
                value.stop()
        for _, _, process in self.outputs:
            if process.poll() is None:
                process.kill()
                process.communicate()
        self.sim.close()


# The blocks share one namespace, as a reader's session does: a store one block makes (and its
# keep-alive connection to the simulator) serves the next, so threads outlive each block; the
# workspace checks them once it has closed everything.
pytestmark = pytest.mark.threads_checked_by_module


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, request):
    before = threads_now()
    space = Workspace(tmp_path_factory.mktemp("readme"))

    def close() -> None:
        space.close()
        if alive := left_behind(before):
            pytest.fail(describe(alive), pytrace=False)

    request.addfinalizer(close)
    return space


def start(
    workspace: Workspace, command: str, *, token: bool = True, cwd: Path | None = None, **options
) -> subprocess.Popen:
    return subprocess.Popen(
        ["bash", "-c", SHELL_PRELUDE + command],
        cwd=cwd or workspace.root,
        text=True,
        env=workspace.command_environment(token),
        **options,
    )


class Lines:
    """A child's stream read line by line on a thread, so the test can wait for a line."""

    def __init__(self, stream) -> None:
        self.lines: list[str] = []
        self.ended = False
        self._changed = threading.Condition()
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream) -> None:
        for line in stream:
            with self._changed:
                self.lines.append(line)
                self._changed.notify_all()
        with self._changed:
            self.ended = True
            self._changed.notify_all()

    def wait_for(self, pattern: str) -> str:
        with self._changed:
            found = self._changed.wait_for(
                lambda: self.ended or any(re.search(pattern, line) for line in self.lines), HANG
            )
            matches = [line for line in self.lines if re.search(pattern, line)]
            assert found and matches, f"no line matching {pattern!r}:\n{''.join(self.lines)[-3000:]}"
            return matches[0]

    def text(self) -> str:
        with self._changed:
            return "".join(self.lines)


# -- the blocks ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("block", BLOCKS, ids=str)
def test_readme_block_runs(block: Block, workspace: Workspace, monkeypatch, redis_servers):
    runner = RUNNERS.get(block.lang)
    if runner is None:
        return  # plain text, a table, a tree: nothing to run
    runner(block, workspace, monkeypatch, redis_servers)


def run_python(block: Block, workspace: Workspace, monkeypatch, servers) -> None:
    for name, value in workspace.service_environment().items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(workspace.root)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        with warnings.catch_warnings():
            exec(compile(block.code, str(block), "exec"), workspace.namespace)
    finally:
        for handler in root.handlers[len(handlers) :]:
            root.removeHandler(handler)
        root.setLevel(level)
        logging.captureWarnings(False)


def run_shell(block: Block, workspace: Workspace, monkeypatch, servers) -> None:
    for command in shell_commands(block.code):
        if command in workspace.shown:
            start_shown(command, workspace)
        elif command not in workspace.done:  # the Chinese quick start repeats the English one's commands
            workspace.done.add(command)
            run_one_command(command, workspace, servers)


def run_text(block: Block, workspace: Workspace, monkeypatch, servers) -> None:
    if block.code.startswith("$ "):
        start_shown(block.code.splitlines()[0][2:], workspace)


def start_shown(command: str, workspace: Workspace) -> None:
    """Start a command whose output the README shows; test_commands_print_what_the_readme_shows checks it
    at the end, so the demo's 20 seconds pass while the other blocks run."""
    if command in workspace.done:
        return
    block = workspace.shown[command]
    workspace.done.add(command)
    cwd = workspace.root / f"output-{block.line}"
    cwd.mkdir()
    process = start(workspace, command, token=False, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    workspace.outputs.append((block, command, process))


def run_toml(block: Block, workspace: Workspace, monkeypatch, servers) -> None:
    path = workspace.root / f"config-{block.line}.toml"
    path.write_text(block.code, encoding="utf-8")
    assert config.read_file(path)


RUNNERS = {"python": run_python, "bash": run_shell, "sh": run_shell, "text": run_text, "toml": run_toml}


def run_one_command(command: str, workspace: Workspace, servers) -> None:
    words = shlex.split(command)
    if words[:2] == ["pip", "install"]:
        check_extras(words)
    elif words[:3] == ["python", "-m", "pytest"]:
        assert command in (ROOT / ".ci" / "run").read_text(), "the README's test command is not CI's"
    elif words[:1] == ["alltick-bt"] and words[1:2] in (["record"], ["sim"]):
        run_until_stopped(command, words, workspace, servers)
    elif words[:1] == ["alltick-bt"]:
        done = start(workspace, command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out, err = done.communicate(timeout=HANG)
        assert done.returncode == 0, f"{command}\n{err[-3000:]}"
    else:
        pytest.fail(
            f"tests/test_readme.py does not know how to run {command!r}: teach it, or tag the fence "
            "no-run and say why in the README"
        )


def check_extras(words: list[str]) -> None:
    pyproject = config._toml().loads((ROOT / "pyproject.toml").read_text())
    declared = set(pyproject["project"]["optional-dependencies"])
    for word in words:
        if match := re.fullmatch(r"\.\[(.*)\]", word):
            assert set(match[1].split(",")) <= declared, f"{word} names an extra pyproject.toml lacks"


def run_until_stopped(command: str, words: list[str], workspace: Workspace, servers) -> None:
    """``record`` and ``sim`` run until stopped: stop them with SIGTERM once they have done their work."""
    command = command.replace("redis://127.0.0.1:6379/0", servers.redis.url)
    command = command.replace("http://127.0.0.1:8086", servers.influx.url)
    recording = words[1] == "record"
    # Without a token `record` records the built-in simulator, whose clock starts at 15:00 as the replay
    # examples expect; `sim` serves on its own.
    process = start(workspace, command, token=not recording, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = Lines(process.stdout), Lines(process.stderr)
    try:
        if not recording:
            try:
                info = out.wait_for(r"^\{")
            except AssertionError as e:  # a command that ended early says why on stderr
                raise AssertionError(f"{command}\n{e}\nstderr:\n{err.text()[-3000:]}") from None
            assert {"rest_url", "ws_url", "token"} <= set(__import__("json").loads(info)), info
        elif "--file" in words:
            err.wait_for(r"^recording ")
            wait_recorded(workspace.root / words[words.index("--file") + 1], process)
        else:
            err.wait_for(r"^recording ")
        process.send_signal(signal.SIGTERM)
        assert process.wait(HANG) == 0, f"{command}\n{err.text()[-3000:]}"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def wait_recorded(path: Path, process: subprocess.Popen) -> None:
    # The recording is on disk part by part (a flush every 2 s): look at it until it reaches far enough.
    deadline = time.monotonic() + HANG
    while time.monotonic() < deadline and process.poll() is None:
        with contextlib.suppress(Exception):  # not written yet, or a part being renamed into place
            if Recording(path).end_ms >= RECORDED_UNTIL_MS:
                return
        time.sleep(0.2)
    pytest.fail(f"{path} did not reach the market time the replay examples need")


def test_commands_print_what_the_readme_shows(workspace: Workspace):
    assert workspace.shown, "the README shows no command output"
    for command in workspace.shown:
        start_shown(command, workspace)  # those no block has started (run alone, with -k)
    for block, command, process in workspace.outputs:
        out, err = process.communicate(timeout=HANG)
        expected = block.code.splitlines()[1:]
        # A terminal shows stderr and stdout together; the commands shown print their stderr lines first.
        assert (err + out).splitlines() == expected, f"{block}: {command} printed\n{err}{out}"
        assert process.returncode == 0


@dataclass
class Servers:
    redis: object
    influx: object


@pytest.fixture(scope="module")
def redis_servers(tmp_path_factory):
    """Redis and InfluxDB for the relay's example, started when a block first needs them."""
    from sinks.sink_servers import InfluxServer, RedisServer

    started = []

    class Lazy:
        def __init__(self, server_class, name):
            self.server_class, self.name, self.server = server_class, name, None

        def __getattr__(self, attribute):
            if self.server is None:
                self.server = self.server_class(tmp_path_factory.mktemp(self.name))
                self.server.start()
                started.append(self.server)
            return getattr(self.server, attribute)

    yield Servers(Lazy(RedisServer, "redis"), Lazy(InfluxServer, "influx"))
    for server in started:
        server.stop()
