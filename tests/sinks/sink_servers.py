"""Real ``redis-server`` and ``influxd`` processes on free loopback ports, for the sink tests and benchmarks.

Each server keeps its data in a directory of its own, so ``stop()`` then ``start()``
brings the same data back on the same port (the restart tests rely on it).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

INSTALL_HINT = "install them with: apt-get install redis-server influxdb"
READY_TIMEOUT = 20.0
PROBE_INTERVAL = 0.02


class ServerNotReady(RuntimeError):
    """A server process exited or did not answer its readiness probe in time."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def find_binary(name: str) -> str:
    path = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else None)
    if path is None:
        raise FileNotFoundError(f"{name} is not installed (needed by the sink tests); {INSTALL_HINT}")
    return path


class _Server:
    name = "server"

    def __init__(self, workdir: Path) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def is_running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        if self.is_running:
            return
        # The child keeps its own copy of the log descriptor; ours can close at once.
        with open(self.workdir / f"{self.name}.log", "ab") as log:
            self.process = subprocess.Popen(
                self.command(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.workdir,
            )
        self._wait_ready()

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def command(self) -> list[str]:
        raise NotImplementedError

    def answers(self) -> bool:
        raise NotImplementedError

    def _wait_ready(self) -> None:
        # A readiness probe with a bounded deadline: the pause only spaces out the probes.
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServerNotReady(
                    f"{self.name} exited with {self.process.returncode}; "
                    f"see {self.workdir / (self.name + '.log')}:\n{self.log_tail()}"
                )
            if self.answers():
                return
            time.sleep(PROBE_INTERVAL)
        self.stop()
        raise ServerNotReady(
            f"{self.name} did not answer on port {self.port} within {READY_TIMEOUT} s:\n{self.log_tail()}"
        )

    def log_tail(self, lines: int = 20) -> str:
        path = self.workdir / f"{self.name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


class RedisServer(_Server):
    """``redis-server`` with an append-only file in ``workdir``: a restart keeps the data.

    ``append_only=False`` keeps everything in memory (for benchmarks: no disk in the measurement).
    """

    name = "redis-server"

    def __init__(self, workdir: Path, append_only: bool = True) -> None:
        self.binary = find_binary("redis-server")
        self.append_only = append_only
        super().__init__(workdir)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def command(self) -> list[str]:
        # appendfsync always: a stop/start in the restart tests must not lose the last second.
        return [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "yes" if self.append_only else "no",
            "--appendfsync",
            "always",
            "--dir",
            str(self.workdir),
            "--daemonize",
            "no",
            "--logfile",
            "",
        ]

    def answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as conn:
                conn.sendall(b"PING\r\n")
                # -LOADING while the append-only file is replayed: not ready yet.
                return conn.recv(64).startswith(b"+PONG")
        except OSError:
            return False


class InfluxServer(_Server):
    """``influxd`` (1.x) with meta, data and WAL in ``workdir``; other services off."""

    name = "influxd"

    def __init__(self, workdir: Path) -> None:
        self.binary = find_binary("influxd")
        super().__init__(workdir)
        self.rpc_port = free_port()
        self.config_path = self.workdir / "influxdb.conf"
        self.config_path.write_text(self.config())

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def config(self) -> str:
        root = self.workdir
        return f"""\
reporting-enabled = false
bind-address = "127.0.0.1:{self.rpc_port}"

[meta]
  dir = "{root / "meta"}"
  logging-enabled = false

[data]
  dir = "{root / "data"}"
  wal-dir = "{root / "wal"}"
  query-log-enabled = false

[monitor]
  store-enabled = false

[http]
  enabled = true
  bind-address = "127.0.0.1:{self.port}"
  log-enabled = false
  pprof-enabled = false

[logging]
  level = "warn"
  suppress-logo = true

[[graphite]]
  enabled = false

[[collectd]]
  enabled = false

[[opentsdb]]
  enabled = false

[[udp]]
  enabled = false

[continuous_queries]
  enabled = false
"""

    def command(self) -> list[str]:
        return [self.binary, "run", "-config", str(self.config_path)]

    def answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/ping", timeout=1) as response:
                return response.status == 204
        except (OSError, urllib.error.URLError):
            return False
