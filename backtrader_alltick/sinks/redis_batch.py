"""One Redis command per ``RedisSink`` batch: the records as a call of a small server-side script.

Pure: no I/O.  A batch sent as a MULTI/EXEC pipeline costs the client two replies to parse
per record (``QUEUED`` and its entry in the EXEC array); as one script call it costs one
reply for the whole batch, and packing the arguments ourselves (they are ASCII text almost
always) costs a fraction of a generic client's per-argument encoding.  The script is
atomic like MULTI/EXEC: every XADD and HSET of the batch and the sink's batch marker land
together or not at all, and a refused command (a bar that is already in its stream) does
not stop the others.

Arguments, after the marker key, batch number, marker TTL and MAXLEN::

    x <stream key> <entry id or *> <field count> <field> <value> ...    one XADD per record
    h <hash key> <field count> <field> <value> ...                      one HSET per symbol

Example::

    command = batch_command(arguments, with_script=False)    # bytes for one EVALSHA
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable

from ..records import Kline, kind_of
from . import stream_fields

# The script says "equal or smaller" exactly as Redis refuses an XADD whose ID is not new.
DUPLICATE = "equal or smaller"
SCRIPT = """
if redis.replicate_commands then redis.replicate_commands() end
local maxlen, duplicates, refused, first = ARGV[4], 0, 0, false
local i, n = 5, #ARGV
while i <= n do
  local op, command, count, at = ARGV[i], nil, 0, 0
  if op == "x" then
    command = {"XADD", ARGV[i + 1], "MAXLEN", "~", maxlen, ARGV[i + 2]}
    count, at = tonumber(ARGV[i + 3]), i + 4
  else
    command = {"HSET", ARGV[i + 1]}
    count, at = tonumber(ARGV[i + 2]), i + 3
  end
  local last = at + 2 * count - 1
  for j = at, last do command[#command + 1] = ARGV[j] end
  local reply = redis.pcall(unpack(command))
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
SCRIPT_SHA = hashlib.sha1(SCRIPT.encode()).hexdigest()
_EVALSHA = f"$7\r\nEVALSHA\r\n$40\r\n{SCRIPT_SHA}\r\n$1\r\n0\r\n".encode()
_EVAL = f"$4\r\nEVAL\r\n${len(SCRIPT.encode())}\r\n{SCRIPT}\r\n$1\r\n0\r\n".encode()


class StreamKeys:
    """Stream and hash key names per record kind and symbol, built once (the hot path asks per record).

    Example::

        keys = StreamKeys("alltick")
        keys.stream(tick)                  # 'alltick:tick:AAPL.US'
    """

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self._streams: dict[tuple, str] = {}

    def stream(self, record) -> str:
        kind = type(record)
        period = record.period if kind is Kline else None
        name = (kind, record.symbol, period)
        key = self._streams.get(name)
        if key is None:
            key = self._streams[name] = stream_fields.stream_key(
                self.prefix, kind_of(record), record.symbol, period)
        return key

    def last(self, symbol: str) -> str:
        return stream_fields.last_key(self.prefix, symbol)


def batch_arguments(records: Iterable, keys: StreamKeys, maxlen: int, marker: str, number: int,
                    marker_ttl: int) -> list[str]:
    """The script's arguments: one XADD per record, then one HSET per symbol of its newest values."""
    args = [marker, str(number), str(marker_ttl), str(maxlen)]
    add = args.extend
    encoders = stream_fields.ENCODERS
    latest: dict[str, dict] = {}
    for record in records:
        kind = type(record)
        fields = encoders[kind](record)
        entry_id = stream_fields.bar_id(record.end) if kind is Kline else "*"
        add(("x", keys.stream(record), entry_id, str(len(fields))))
        for item in fields.items():
            add(item)
        # Only the newest value of each kind matters in the hash.
        latest.setdefault(record.symbol, {})[stream_fields.hash_field(record)] = fields
    for symbol, values in latest.items():
        add(("h", keys.last(symbol), str(len(values))))
        for name, fields in values.items():
            add((name, json.dumps(fields)))
    return args


def batch_command(arguments: list[str], *, with_script: bool) -> bytes:
    """The RESP bytes of ``EVALSHA`` (or ``EVAL`` with the script text, when the server lacks it)."""
    head = _EVAL if with_script else _EVALSHA
    count = f"*{len(arguments) + 3}\r\n"
    text = "".join([f"${len(arg)}\r\n{arg}\r\n" for arg in arguments])
    body = text.encode()
    if len(body) != len(text):  # a non-ASCII symbol: lengths must count bytes, not characters
        body = b"".join(b"$%d\r\n%s\r\n" % (len(data), data) for data in (arg.encode() for arg in arguments))
    return count.encode() + head + body
