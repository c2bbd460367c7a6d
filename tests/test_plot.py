"""Headless PNG charts: K-line charts and ``cerebro.plot`` figures with no display."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import backtrader as bt
import numpy as np
import pandas as pd
import pytest

from backtrader_alltick.errors import ConfigError
from backtrader_alltick.plot import plot_klines, save_cerebro_plot

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from the IHDR chunk; fails unless the file is a PNG."""
    head = Path(path).read_bytes()[:24]
    assert head[:8] == PNG_SIGNATURE, f"{path} is not a PNG"
    assert head[12:16] == b"IHDR"
    return struct.unpack(">II", head[16:24])


def bars(count: int = 60, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 100 + np.cumsum(rng.normal(0, 0.5, count))
    open_ = np.r_[100.0, close[:-1]]
    index = pd.date_range("2024-03-05 15:01", periods=count, freq="1min", tz="UTC", name="datetime")
    return pd.DataFrame(
        {
            "open": open_,
            "high": np.maximum(open_, close) + 0.2,
            "low": np.minimum(open_, close) - 0.2,
            "close": close,
            "volume": rng.uniform(1, 100, count),
        },
        index=index,
    )


@pytest.mark.parametrize("candles", [True, False])
def test_plot_klines_candles_or_line_writes_png(tmp_path, candles):
    target = tmp_path / "chart.png"

    written = plot_klines(bars(), target, title="AAPL 1-minute", candles=candles)

    assert written == target
    width, height = png_size(target)
    assert width > 600 and height > 300


def test_plot_klines_without_volume_column_still_plots(tmp_path):
    plot_klines(bars().drop(columns="volume"), tmp_path / "no_volume.png")

    assert png_size(tmp_path / "no_volume.png")[0] > 0


def test_plot_klines_missing_columns_names_them(tmp_path):
    with pytest.raises(ConfigError, match="was missing high, low"):
        plot_klines(bars().drop(columns=["high", "low"]), tmp_path / "x.png")


def test_plot_klines_empty_frame_says_how_to_get_bars(tmp_path):
    with pytest.raises(ConfigError, match="no bars to plot"):
        plot_klines(bars().iloc[:0], tmp_path / "x.png")


class _Cross(bt.Strategy):
    def __init__(self):
        self.cross = bt.ind.CrossOver(bt.ind.SMA(period=3), bt.ind.SMA(period=10))

    def next(self):
        if self.cross > 0:
            self.buy()
        elif self.cross < 0 and self.position:
            self.close()


def test_save_cerebro_plot_writes_png_of_finished_run(tmp_path):
    cerebro = bt.Cerebro()
    cerebro.adddata(bt.feeds.PandasData(dataname=bars(120).tz_localize(None), timeframe=bt.TimeFrame.Minutes))
    cerebro.addstrategy(_Cross)
    cerebro.run()

    save_cerebro_plot(cerebro, tmp_path / "run.png", style="candle", dpi=60)

    width, height = png_size(tmp_path / "run.png")
    assert width > 300 and height > 200


def test_save_cerebro_plot_before_run_says_run_first(tmp_path):
    cerebro = bt.Cerebro()

    with pytest.raises(ConfigError, match=r"call cerebro.run\(\) before"):
        save_cerebro_plot(cerebro, tmp_path / "run.png")


HEADLESS_SCRIPT = """
import backtrader as bt
import pandas as pd
{first_import}
from backtrader_alltick.plot import save_cerebro_plot

index = pd.date_range("2024-03-05 15:01", periods=30, freq="1min")
frame = pd.DataFrame({{"open": range(30), "high": range(1, 31), "low": range(30),
                       "close": range(30), "volume": [1] * 30}}, index=index, dtype=float)
cerebro = bt.Cerebro()
cerebro.adddata(bt.feeds.PandasData(dataname=frame))
cerebro.addstrategy(bt.Strategy)
cerebro.run()
save_cerebro_plot(cerebro, {path!r}, dpi=40)
import matplotlib
print(matplotlib.get_backend())
"""


@pytest.mark.parametrize("first_import", ["", "import backtrader.plot"])
def test_save_cerebro_plot_works_without_display_in_fresh_process(tmp_path, first_import):
    # Importing backtrader.plot selects TkAgg; without a display pyplot would then fail.
    target = tmp_path / "fresh.png"
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "MPLBACKEND")}
    script = textwrap.dedent(HEADLESS_SCRIPT.format(first_import=first_import, path=str(target)))

    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().lower() == "agg"
    assert png_size(target)[0] > 0


def test_missing_matplotlib_names_the_plot_extra(tmp_path):
    script = textwrap.dedent(f"""
        import sys
        sys.modules["matplotlib"] = None   # what an environment without the extra looks like
        from backtrader_alltick.errors import ConfigError
        from backtrader_alltick.plot import plot_klines
        import pandas as pd
        frame = pd.DataFrame({{"open": [1.0], "high": [1.0], "low": [1.0], "close": [1.0]}},
                             index=pd.to_datetime(["2024-03-05 15:01"]))
        try:
            plot_klines(frame, {str(tmp_path / "x.png")!r})
        except ConfigError as e:
            print(e)
    """)

    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)

    assert result.returncode == 0, result.stderr
    assert "pip install 'backtrader-alltick[plot]'" in result.stdout
    assert not (tmp_path / "x.png").exists()
