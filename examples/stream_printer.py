"""Print live pushes (trades, quotes, order books) for two symbols (the seed article's scenario 2).

    python examples/stream_printer.py              # simulator, AllTick dialect: trades and depth
    python examples/stream_printer.py itick        # simulator, iTick dialect: also quotes
    ALLTICK_TOKEN=... python examples/stream_printer.py   # the real AllTick service

Stops after 30 pushes or 20 seconds; Ctrl-C stops it earlier.  The callback runs on the
socket thread, so it only queues records; the main thread prints them.
"""

import contextlib
import os
import queue
import sys
import time

from backtrader_alltick import AllTickStore

SYMBOLS = ["AAPL.US", "TSLA.US"]


def main(dialect="alltick", pushes=30, seconds=20.0):
    inbox = queue.Queue()
    with contextlib.ExitStack() as stack:
        if os.environ.get("ALLTICK_TOKEN"):
            store = AllTickStore(dialect=dialect)
        else:
            from backtrader_alltick.sim import Simulator

            sim = stack.enter_context(Simulator(dialect=dialect, symbols=SYMBOLS))
            store = AllTickStore.from_simulator(sim, cache=False)
        stack.callback(store.stop)  # closes the WebSocket and joins its threads

        for symbol in SYMBOLS:
            store.listen(symbol, inbox.put_nowait, depth=True)  # trades + depth (+ quotes)
        deadline = time.monotonic() + seconds
        try:
            for _ in range(pushes):
                record = inbox.get(timeout=max(0.1, deadline - time.monotonic()))
                print(type(record).__name__.ljust(5), record)
        except (queue.Empty, KeyboardInterrupt):
            pass


if __name__ == "__main__":
    main(*sys.argv[1:2])
