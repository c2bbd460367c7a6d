"""One Redis command per ``RedisSink`` batch: the records as a call of a small server-side script.

Pure: no I/O.  A batch sent as a MULTI/EXEC pipeline costs the client two replies to parse
per record (``QUEUED`` and its entry in the EXEC array); as one script call it costs one
reply for the whole batch, and packing the arguments ourselves (the values are ASCII by
construction) costs a fraction of a generic client's per-argument encoding.  The script is
atomic like MULTI/EXEC: every XADD and HSET of the batch and the sink's batch marker land
together or not at all, and a refused command (a bar that is already in its stream) does
not stop the others.

Arguments, after the marker key, batch number, marker TTL and MAXLEN::

    x <stream key> <entry id or *> <field count> <field> <value> ...    one XADD per record
    h <hash key> <field count> <field> <value> ...                      one HSET per symbol

Example::

    count, body = BatchPacker("alltick", 100_000, marker, 86_400).pack(records, number=7)
    command = batch_command(count, body, with_script=False)    # bytes for one EVALSHA
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable

from ..records import Kline, Record, Tick, kind_of
from ..wire import redis_streams

# "equal or smaller" is how Redis refuses an XADD whose ID is not new: a bar written before.
SCRIPT = """
if redis.replicate_commands then redis.replicate_commands() end
local maxlen, duplicates, refused, first = ARGV[4], 0, 0, false
local i, n = 5, #ARGV
while i <= n do
  local reply, last
  if ARGV[i] == "x" then
    last = i + 3 + 2 * tonumber(ARGV[i + 3])
    reply = redis.pcall("XADD", ARGV[i + 1], "MAXLEN", "~", maxlen, ARGV[i + 2], unpack(ARGV, i + 4, last))
  else
    last = i + 2 + 2 * tonumber(ARGV[i + 2])
    reply = redis.pcall("HSET", ARGV[i + 1], unpack(ARGV, i + 3, last))
  end
  if type(reply) == "table" and reply.err then
    if string.find(reply.err, "equal or smaller", 1, true) then
      duplicates = duplicates + 1
    else
      refused = refused + 1
      first = first or reply.err
    end
  end
  i = last + 1
end
redis.call("SET", ARGV[1], ARGV[2], "EX", ARGV[3])
return {duplicates, refused, first or ""}
"""
# The fields encode_tick gives a trade, in its order (the packer formats trades itself).
TICK_FIELDS = ("time", "price", "volume", "turnover", "direction", "seq")
SCRIPT_SHA = hashlib.sha1(SCRIPT.encode()).hexdigest()
_EVALSHA = f"$7\r\nEVALSHA\r\n$40\r\n{SCRIPT_SHA}\r\n$1\r\n0\r\n".encode()
_EVAL = f"$4\r\nEVAL\r\n${len(SCRIPT.encode())}\r\n{SCRIPT}\r\n$1\r\n0\r\n".encode()


class BatchPacker:
    """Pack one sink's batches into script calls; key and field-name parts are built once and kept.

    Every value the stream encoders produce is ASCII (``str`` of an int, ``repr`` of a float,
    ``json.dumps`` escaping the rest), so its length in characters is its length in bytes;
    keys and field names, where a symbol or period may not be ASCII, are measured in bytes.

    Example::

        packer = BatchPacker("alltick", maxlen=100_000, marker="alltick:sink:1f0c", marker_ttl=86_400)
        count, body = packer.pack(ticks, number=7)
        command = batch_command(count, body, with_script=False)
    """

    def __init__(self, prefix: str, maxlen: int, marker: str, marker_ttl: int) -> None:
        self.prefix = prefix
        self._head = [marker, "", str(marker_ttl), str(maxlen)]
        self._streams: dict[tuple, str] = {}
        self._names: dict[str, str] = {}
        self._tick_names = [_bulk(field) for field in TICK_FIELDS]

    def pack(self, records: Iterable[Record], number: int) -> tuple[int, bytes]:
        """Return the argument count and the RESP text of the arguments: one XADD per record, then one
        HSET per symbol of its newest values."""
        head = self._head
        head[1] = str(number)
        parts = [_bulk(arg) for arg in head]
        add, name = parts.append, self._name
        count = len(head)
        encoders, streams = redis_streams.ENCODERS, self._streams
        latest: dict[str, dict[str, Record]] = {}
        for record in records:
            if type(record) is Tick:  # most records by far: formatted without the fields dict
                add(streams.get((Tick, record.symbol)) or self._stream(record))
                text, width = self._tick(record)
                add(text)
                count += 4 + 2 * width
                latest.setdefault(record.symbol, {})["tick"] = record
                continue
            fields = encoders[type(record)](record)
            size = str(len(fields))
            add(f"{self._stream(record)}${len(size)}\r\n{size}\r\n")
            for field, value in fields.items():
                add(f"{name(field)}${len(value)}\r\n{value}\r\n")
            count += 4 + 2 * len(fields)
            # Only the newest value of each kind matters in the hash.
            latest.setdefault(record.symbol, {})[redis_streams.hash_field(record)] = record
        for symbol, values in latest.items():
            size = str(len(values))
            add(f"{name('h')}{name(redis_streams.last_key(self.prefix, symbol))}${len(size)}\r\n{size}\r\n")
            for field, record in values.items():
                add(f"{name(field)}{_bulk(json.dumps(encoders[type(record)](record)))}")
            count += 3 + 2 * len(values)
        return count, "".join(parts).encode()

    def _tick(self, tick: Tick) -> tuple[str, int]:
        # encode_tick's fields, in its order, straight into RESP; returns the text and the field count.
        time, price, volume = str(tick.time), repr(tick.price), repr(tick.volume)
        turnover, direction = repr(tick.turnover), str(tick.direction)
        n = self._tick_names
        text = (
            f"{n[0]}${len(time)}\r\n{time}\r\n{n[1]}${len(price)}\r\n{price}\r\n"
            f"{n[2]}${len(volume)}\r\n{volume}\r\n{n[3]}${len(turnover)}\r\n{turnover}\r\n"
            f"{n[4]}${len(direction)}\r\n{direction}\r\n"
        )
        if tick.seq is None:
            return f"$1\r\n5\r\n{text}", 5
        seq = str(tick.seq)
        return f"$1\r\n6\r\n{text}{n[5]}${len(seq)}\r\n{seq}\r\n", 6

    def _stream(self, record) -> str:
        # The parts before the field count: "x", the stream key and the entry ID.
        kind = type(record)
        if kind is Kline:
            entry_id = redis_streams.bar_id(record.end)
            return f"{self._bar_stream(record.symbol, record.period)}{_bulk(entry_id)}"
        name = (kind, record.symbol)
        part = self._streams.get(name)
        if part is None:
            key = redis_streams.stream_key(self.prefix, kind_of(record), record.symbol)
            part = self._streams[name] = f"{_bulk('x')}{_bulk(key)}{_bulk('*')}"
        return part

    def _bar_stream(self, symbol: str, period: str) -> str:
        name = (Kline, symbol, period)
        part = self._streams.get(name)
        if part is None:
            part = self._streams[name] = (
                f"{_bulk('x')}{_bulk(redis_streams.stream_key(self.prefix, 'bar', symbol, period))}"
            )
        return part

    def _name(self, text: str) -> str:
        part = self._names.get(text)
        if part is None:
            part = self._names[text] = _bulk(text)
        return part


def batch_command(count: int, body: bytes, *, with_script: bool) -> bytes:
    """The RESP bytes of ``EVALSHA`` (or ``EVAL`` with the script text, when the server lacks it)."""
    return f"*{count + 3}\r\n".encode() + (_EVAL if with_script else _EVALSHA) + body


def _bulk(text: str) -> str:
    return f"${len(text.encode())}\r\n{text}\r\n"
