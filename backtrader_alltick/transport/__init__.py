"""Transport: the I/O that moves bytes to and from the service, and nothing above it.

- :mod:`.rest`: the REST client (token placement, retries, rate limits); :mod:`.http_errors` says
  what HTTP failures mean; :mod:`.ratelimit` keeps calls within the plan, counting them in a
  :mod:`.quota_ledger` that every process on the token shares (:mod:`.quota_sqlite`, :mod:`.quota_redis`).
- :mod:`.stream_hub`: one WebSocket connection per endpoint family, shared by every feed; each is a
  :mod:`.stream_link` (threads and a socket) around a sans-I/O :mod:`.stream_protocol`, configured
  by :mod:`.stream_settings`, subscribed per :mod:`.subscriptions`, its failures named by
  :mod:`.websocket_errors`.
- :mod:`.influx_client` and :mod:`.influx_reader`: InfluxDB's HTTP API, and reading back what a
  relay archived there (the history's archive path reads through it).
- :mod:`.retry`: the one backoff every retry and reconnect of the package waits.

Wire formats live in :mod:`backtrader_alltick.wire` (pure); this package imports them, never the reverse.
"""
