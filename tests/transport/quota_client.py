"""One client process of the quota tests: a store on the token in ``$ALLTICK_TOKEN``, K-line calls on cue.

``python quota_client.py CONFIG_JSON``; CONFIG has ``rest_url``, ``cache``, ``calls``, ``plan`` (a
plan name) with optional ``overrides`` of its fields, and optional ``quota_url``.  The process
opens its store's limiter, prints ``ready``, waits for a line on stdin (so every client starts
together), makes its calls, then prints its REST stats as JSON.
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace

from backtrader_alltick import AllTickStore
from backtrader_alltick.plans import get_plan


def main() -> None:
    config = json.loads(sys.argv[1])
    plan = replace(get_plan("alltick", config["plan"]), **config.get("overrides", {}))
    store = AllTickStore(
        rest_url=config["rest_url"], plan=plan, cache=config["cache"], quota_url=config.get("quota_url")
    )
    rest = store.rest  # the ledger is open before the start signal
    print("ready", flush=True)
    sys.stdin.readline()
    for _ in range(config["calls"]):
        rest.klines("BTCUSDT", "1m", 5)
    print(json.dumps({"requests": rest.stats.requests, "rate_limited": rest.stats.rate_limited}), flush=True)
    store.stop()


if __name__ == "__main__":
    main()
