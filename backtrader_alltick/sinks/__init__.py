"""Writers only: a Redis relay for live fan-out, an InfluxDB archive, recording files.

::

    from backtrader_alltick.sinks import RedisSink, InfluxSink

    relay = RedisSink("redis://127.0.0.1:6379/0")          # needs pip install backtrader-alltick[redis]
    archive = InfluxSink("http://127.0.0.1:8086", "alltick")
    relay.write(records); archive.write(closed_bars)

Every sink queues in ``write()`` and sends from a background thread with a bounded
buffer; ``flush()`` waits for the server, ``close()`` flushes and stops.  What they wrote is
read back by :mod:`backtrader_alltick.transport.redis_reader` and
:mod:`backtrader_alltick.transport.influx_reader`.
"""

from .influx import InfluxSink
from .recording import RecordingSink
from .redis import RedisSink

__all__ = ["InfluxSink", "RecordingSink", "RedisSink"]
