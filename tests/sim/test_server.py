"""The simulator's HTTP server: its threads never keep a script alive."""

from __future__ import annotations

import logging
import socket
import struct
import subprocess
import sys
import threading
from urllib.parse import urlsplit

FORGETS_CLOSE = """
from backtrader_alltick import AllTickStore
from backtrader_alltick.sim import Simulator

sim = Simulator(dialect="alltick", speed=60, seed=1)
store = AllTickStore.from_simulator(sim, cache=False)
frame = store.fetch_klines("BTCUSDT", "1m", count=5)   # leaves a keep-alive socket open
print(len(frame), flush=True)
# no sim.close(), no store.stop(): the script just ends
"""


def test_script_that_forgets_close_still_exits():
    result = subprocess.run([sys.executable, "-c", FORGETS_CLOSE], capture_output=True, text=True, timeout=60)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "5"


class _Records(logging.Handler):
    """The simulator's log records; a test waits for the server's first, never sleeps."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.arrived = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        if record.name == "backtrader_alltick.sim.server":
            self.arrived.set()


def test_a_client_gone_before_its_reply_is_one_debug_line_not_a_traceback(alltick_sim):
    records = _Records()
    server_logger = logging.getLogger("backtrader_alltick.sim")
    server_logger.addHandler(records)
    level = server_logger.level
    server_logger.setLevel(logging.DEBUG)
    try:
        host, port = urlsplit(alltick_sim.rest_url).hostname, urlsplit(alltick_sim.rest_url).port
        client = socket.create_connection((host, port))
        query = f"/quote-stock-b-api/kline?token={alltick_sim.token}&query=%7B%7D"
        client.sendall(f"GET {query} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        # Gone at once, and with a reset rather than a polite close: the server's next read or write fails.
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        client.close()
        assert records.arrived.wait(30), "the server never noticed the client had gone"
    finally:
        server_logger.removeHandler(records)
        server_logger.setLevel(level)

    assert all(record.levelno < logging.WARNING and record.exc_info is None for record in records.records)
    gone = [record.getMessage() for record in records.records if record.name.endswith(".server")]
    assert len(gone) == 1 and "gone" in gone[0] and alltick_sim.token not in gone[0]
