"""Hot and cold storage: a Redis relay for live fan-out, an InfluxDB archive for history and ticks.

::

    from backtrader_alltick.sinks import RedisSink, RedisSource, InfluxSink, InfluxSource

    relay = RedisSink("redis://127.0.0.1:6379/0")          # needs pip install backtrader-alltick[redis]
    archive = InfluxSink("http://127.0.0.1:8086", "alltick")
    relay.write(records); archive.write(closed_bars)

Both sinks queue in ``write()`` and send from a background thread with a bounded
buffer; ``flush()`` waits for the server, ``close()`` flushes and stops.
"""

from .influx import InfluxSink, InfluxSource
from .redis import Entry, Latest, RedisSink, RedisSource

__all__ = ["Entry", "InfluxSink", "InfluxSource", "Latest", "RedisSink", "RedisSource"]
