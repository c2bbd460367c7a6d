"""Draw the last 50 one-minute K-lines of AAPL.US to a PNG (the seed article's scenario 3).

    python examples/kline_chart.py [chart.png]

Works without a display (the chart is written by matplotlib's Agg backend); needs the
plot extra: pip install 'backtrader-alltick[plot]'.
"""

import contextlib
import os
import sys

from backtrader_alltick import AllTickStore
from backtrader_alltick.plot import plot_klines

SYMBOL = "AAPL.US"


def main(path="aapl_1m.png"):
    with contextlib.ExitStack() as stack:
        if os.environ.get("ALLTICK_TOKEN"):
            store = AllTickStore()
        else:
            from backtrader_alltick.sim import Simulator

            sim = stack.enter_context(Simulator(symbols=[SYMBOL]))
            store = AllTickStore.from_simulator(sim, cache=False)
        stack.callback(store.stop)

        frame = store.fetch_klines(SYMBOL, "1m", count=50)  # index: bar close time, UTC
        print(frame.tail())
        plot_klines(frame, path, title=f"{SYMBOL} 1-minute")
        print(f"wrote {path}")


if __name__ == "__main__":
    main(*sys.argv[1:2])
