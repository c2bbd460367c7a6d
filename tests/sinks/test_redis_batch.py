import json
import logging

import redis

from backtrader_alltick.records import Kline, Tick
from backtrader_alltick.sinks import redis_batch
from backtrader_alltick.sinks.redis import RedisSink
from backtrader_alltick.transport.redis_reader import Latest, RedisReader
from backtrader_alltick.wire import redis_streams

T0 = 1_700_000_040_000
FAST = {"backoff_initial": 0.01, "backoff_max": 0.05}


def test_a_symbol_or_period_outside_ascii_is_written_with_byte_lengths(redis_server):
    ticks = [Tick("日経225.JP", T0 + n, 100.0 + n, 1.0, 100.0 + n, seq=n) for n in range(3)]
    bar = Kline("日経225.JP", "1分", T0, T0 + 60_000, 1.0, 2.0, 0.5, 1.5, 10.0, 15.0)
    with RedisSink(redis_server.url, **FAST) as sink:
        sink.write([*ticks, bar])
        assert sink.flush(10)
    with RedisReader(redis_server.url) as source:
        assert [entry.record for entry in source.read_ticks("日経225.JP")] == ticks
        assert [entry.record for entry in source.read_bars("日経225.JP", "1分")] == [bar]
        assert source.last("日経225.JP") == Latest(tick=ticks[-1], bars={"1分": bar})


def test_a_refused_command_is_counted_and_logged_and_the_rest_of_the_batch_lands(redis_server, caplog):
    client = redis.Redis.from_url(redis_server.url)
    client.set("alltick:tick:MSFT.US", "not a stream")  # someone else's key where a stream belongs
    ticks = [Tick(symbol, T0, 10.0, 1.0, 10.0, seq=1) for symbol in ("AAPL.US", "MSFT.US", "NVDA.US")]
    bar = Kline("AAPL.US", "1m", T0, T0 + 60_000, 1.0, 2.0, 0.5, 1.5, 10.0, 15.0)
    with (
        caplog.at_level(logging.ERROR, logger="backtrader_alltick.sinks"),
        RedisSink(redis_server.url, **FAST) as sink,
    ):
        sink.write(ticks + [bar, bar])
        assert sink.flush(10)

    assert (sink.rejected, sink.duplicates) == (1, 1)
    assert "refused 1 commands" in caplog.text and "WRONGTYPE" in caplog.text
    with RedisReader(redis_server.url) as source:
        assert [entry.record for entry in source.read_ticks("NVDA.US")] == ticks[2:]
        assert [entry.record for entry in source.read_bars("AAPL.US", "1m")] == [bar]
    client.close()


def test_the_command_carries_the_script_only_when_asked():
    packer = redis_batch.BatchPacker("alltick", maxlen=100, marker="m", marker_ttl=60)
    count, body = packer.pack([Tick("AAPL.US", T0, 10.0, 1.0, 10.0)], number=7)

    assert count == 4 + 4 + 2 * 5 + 3 + 2
    assert body.startswith(
        b"$1\r\nm\r\n$1\r\n7\r\n$2\r\n60\r\n$3\r\n100\r\n$1\r\nx\r\n"
        b"$20\r\nalltick:tick:AAPL.US\r\n$1\r\n*\r\n$1\r\n5\r\n"
    )
    assert redis_batch.SCRIPT_SHA.encode() in redis_batch.batch_command(count, body, with_script=False)
    assert redis_batch.SCRIPT.encode() in redis_batch.batch_command(count, body, with_script=True)


def test_a_server_that_forgot_the_script_is_sent_it_again(redis_server):
    client = redis.Redis.from_url(redis_server.url)
    first, second = make_ticks(0, 3), make_ticks(3, 3)
    with RedisSink(redis_server.url, **FAST) as sink:
        sink.write(first)
        assert sink.flush(10)
        client.script_flush()  # as after a restart without persistence, or an operator's SCRIPT FLUSH
        sink.write(second)
        assert sink.flush(10)

    assert (sink.written, sink.rejected) == (6, 0)
    with RedisReader(redis_server.url) as source:
        assert [entry.record for entry in source.read_ticks("AAPL.US")] == first + second
    client.close()


def make_ticks(first, count):
    return [Tick("AAPL.US", T0 + n, 190.0 + n, 1.0, 190.0 + n, seq=n) for n in range(first, first + count)]


def test_trades_are_packed_with_the_fields_and_values_the_stream_encoding_gives():
    # The packer formats trades itself, for speed: what it sends must be encode_tick's fields exactly.
    ticks = [
        Tick("AAPL.US", T0, 190.25, 3.0, 570.75, seq=7, direction=1),
        Tick("700.HK", T0 + 1, 0.1 + 0.2, 1e-7, 12345678901.5, seq=None, direction=2),
    ]
    packer = redis_batch.BatchPacker("alltick", 1000, "alltick:sink:1", 60)
    count, body = packer.pack(ticks, number=3)

    expected = ["alltick:sink:1", "3", "60", "1000"]
    for tick in ticks:
        fields = redis_streams.encode_tick(tick)
        expected += ["x", redis_streams.stream_key("alltick", "tick", tick.symbol), "*", str(len(fields))]
        expected += [text for pair in fields.items() for text in pair]
    for tick in ticks:
        expected += ["h", redis_streams.last_key("alltick", tick.symbol), "1"]
        expected += ["tick", json.dumps(redis_streams.encode_tick(tick))]
    assert count == len(expected)
    assert body == "".join(f"${len(text.encode())}\r\n{text}\r\n" for text in expected).encode()
