"""The demo's paper session: the same bars in every run, however slow the machine."""

from __future__ import annotations

import re
import time
from pathlib import Path

from backtrader_alltick.cli import main
from backtrader_alltick.sources import stream

README = Path(__file__).resolve().parents[1] / "README.md"
# Over a market minute on the demo's clock (x180: a wall third of a second per minute).
BUSY_S = 0.6


def readme_paper_bars() -> tuple[str, str]:
    """How many bars the README's paper session backfills, and the close of the first."""
    shown = README.read_text(encoding="utf-8")
    paper = shown[shown.index("\npaper:\n") :]
    backfilled = re.search(r"\((\d+) backfilled over REST", paper).group(1)
    return backfilled, re.search(r"period: +(\S+ \S+) \.\.", paper).group(1)


def test_the_paper_session_backfills_the_readmes_bars_when_its_first_trade_is_late(capsys, monkeypatch):
    handle = stream.StreamBars._on_tick
    handled = []

    def on_a_busy_machine(source, tick):
        if not handled:  # the feed's first live trade waits while other processes hold the CPU
            time.sleep(BUSY_S)
        handled.append(tick)
        return handle(source, tick)

    monkeypatch.setattr(stream.StreamBars, "_on_tick", on_a_busy_machine)

    assert main(["demo", "--no-chart", "--minutes", "3"]) == 0

    out = capsys.readouterr().out
    paper = out[out.index("\npaper:\n") :]
    # The seam, and with it the backfill, is where it is when the machine keeps up.
    backfilled, first = readme_paper_bars()
    assert f"({backfilled} backfilled over REST, 3 built live)" in paper
    assert re.search(rf"period: +{first} \.\. ", paper)
