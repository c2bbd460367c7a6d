"""``alltick-bt sim`` in a process of its own, for the tests that need the service in another process."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
from collections.abc import Iterator


@contextlib.contextmanager
def serving(*argv: str, env: dict | None = None, cwd=None) -> Iterator[tuple[dict, list[int]]]:
    """Run ``alltick-bt sim ARGV``; yield its JSON line and a list that gets the exit code after SIGTERM."""
    process = subprocess.Popen(
        [sys.executable, "-m", "backtrader_alltick", "sim", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=cwd,
    )
    exit_code: list[int] = []
    try:
        yield json.loads(process.stdout.readline()), exit_code
        process.send_signal(signal.SIGTERM)
        exit_code.append(process.wait(timeout=20))
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stdout.close()
        process.stderr.close()
