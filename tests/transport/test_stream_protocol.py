"""StreamProtocol without a socket: frames and times in, records, steps and notices out."""

from __future__ import annotations

import json

import pytest

from backtrader_alltick import plans, wire
from backtrader_alltick.errors import (
    AuthError,
    PlanLimitError,
    ProtocolError,
    RateLimited,
    Timeout,
    TransportError,
)
from backtrader_alltick.records import Tick
from backtrader_alltick.symbols import parse_symbol
from backtrader_alltick.transport.shards import PACING_MARGIN
from backtrader_alltick.transport.stream_protocol import COALESCE_SECONDS, READY, Report, StreamProtocol
from backtrader_alltick.transport.stream_settings import StreamSettings

TOKEN = "SENTINEL-TOKEN-0123456789"
SAFE_URL = "ws://127.0.0.1:1/quote-b-ws-api?token=SENT…6789"
BTC, ETH, SOL = map(parse_symbol, ("BTCUSDT", "ETHUSDT", "SOLUSDT"))
AAPL, TSLA = map(parse_symbol, ("AAPL.US", "TSLA.US"))
HEARTBEAT, STALE, SPACING = 10.0, 30.0, 1.0


class StoppedClock:
    speed = 1.0

    def now_ms(self) -> int:
        return 1_700_000_000_000


def make(
    dialect: str = "alltick",
    plan: str = "unlimited",
    *,
    now: float = 100.0,
    spacing: float = SPACING,
    **options,
) -> StreamProtocol:
    settings = StreamSettings.build(
        wire.get_dialect(dialect),
        "ws://127.0.0.1:1",
        TOKEN,
        plans.get_plan(dialect, plan),
        heartbeat_interval=HEARTBEAT,
        stale_after=STALE,
        request_spacing=spacing,
        connect_timeout=5.0,
        clock=StoppedClock(),
        **options,
    )
    family = "crypto" if dialect == "itick" else "other"
    return StreamProtocol(settings, family, SAFE_URL, now)


def alltick_ack(seq: int, ret: int = 200) -> bytes:
    return json.dumps({"cmd_id": 22005, "seq_id": seq, "trace": "t", "ret": ret, "msg": "ok"}).encode()


def alltick_trade(symbol: str = "BTCUSDT", price: float = 37000.5) -> bytes:
    return json.dumps(
        {
            "cmd_id": 22998,
            "data": {
                "code": symbol,
                "seq": "1",
                "tick_time": "1700000000123",
                "price": str(price),
                "volume": "0.01",
                "turnover": "1",
                "trade_direction": "1",
            },
        }
    ).encode()


def itick_trade(symbol: str = "BTCUSDT") -> bytes:
    return json.dumps(
        {
            "code": 1,
            "data": {"s": symbol, "r": "BA", "ld": 1.5, "t": 1_700_000_000_000, "v": 2, "type": "tick"},
        }
    ).encode()


ALLTICK_PONG = json.dumps({"cmd_id": 22001, "seq_id": 1, "trace": "t", "ret": 200, "msg": "ok"}).encode()


def close_payload(code: int, reason: str) -> bytes:
    return code.to_bytes(2, "big") + reason.encode()


def subscribed(protocol: StreamProtocol, now: float) -> StreamProtocol:
    """Send the first list at ``now`` (no spacing), so that only heartbeats are due afterwards."""
    protocol.want((1, 0.0, [BTC], []))
    sent_texts(protocol, now, now + 0.001)
    return protocol


def sent_texts(
    protocol: StreamProtocol, start: float, stop: float, step: float = 0.01
) -> list[tuple[float, str]]:
    """Drive the writer from ``start`` to ``stop`` as the shell would: send at once, else sleep to wake_at."""
    out, now = [], start
    while now < stop:
        move = protocol.poll(now)
        if move.error is not None:
            raise move.error
        if move.text is not None:
            out.append((round(now, 6), move.text))
            protocol.sent(now)
            continue
        now = max(now + step, min(move.wake_at, stop))
    return out


# -- Authentication -------------------------------------------------------------------------------


def test_a_dialect_without_login_is_ready_at_once():
    protocol = make("alltick")

    assert protocol.ready and protocol.notices == [READY]


def test_itick_waits_for_the_auth_verdict_before_subscribing():
    protocol = make("itick")
    protocol.want((1, 0.0, [BTC], []))

    assert not protocol.ready and protocol.notices == []
    assert protocol.poll(100.1).text is None  # nothing goes out before the verdict
    assert protocol.poll(100.1).wake_at == 105.0  # connect_timeout later, it gives up

    assert protocol.receive(b'{"resAc":"auth","code":1,"msg":"ok"}', 100.2) == []
    assert protocol.ready and protocol.notices == [READY]
    assert json.loads(protocol.poll(100.2).text)["ac"] == "subscribe"


def test_no_auth_verdict_within_connect_timeout_closes_the_connection():
    protocol = make("itick")

    move = protocol.poll(105.0)

    assert isinstance(move.error, Timeout)
    assert "sent no auth verdict in 5.0 s" in str(move.error)


def test_a_refused_auth_frame_ends_the_stream_with_auth_error_without_the_token():
    protocol = make("itick")

    with pytest.raises(AuthError) as info:
        protocol.receive(f'{{"resAc":"auth","code":0,"msg":"bad token {TOKEN}"}}'.encode(), 100.1)

    assert TOKEN not in str(info.value) and "check the token" in str(info.value)


def test_an_auth_refusal_over_the_connection_limit_is_worth_a_later_retry():
    protocol = make("itick")

    with pytest.raises(RateLimited):
        protocol.receive(b'{"resAc":"auth","code":0,"msg":"connection limit exceeded"}', 100.1)


def test_an_alltick_401_error_frame_refuses_the_token():
    protocol = make("alltick")

    with pytest.raises(AuthError):
        protocol.receive(b'{"ret":401,"msg":"token invalid","trace":"","data":{}}', 100.1)


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (close_payload(1008, "token invalid"), AuthError),
        (close_payload(1008, "auth failed"), AuthError),
        (close_payload(1008, "too many connections"), RateLimited),
        (close_payload(1001, "going away"), TransportError),
        (b"", TransportError),
    ],
)
def test_a_close_frame_is_read_by_its_status_and_reason(payload, expected):
    protocol = make("alltick")

    with pytest.raises(expected) as info:
        protocol.receive(payload, 100.1, closing=True)

    assert type(info.value) is expected
    if payload:
        assert "close status" in str(info.value)


def test_an_empty_text_frame_means_the_server_closed():
    with pytest.raises(TransportError, match="no close status"):
        make("alltick").receive(b"", 100.1)


# -- Acks -------------------------------------------------------------------------------------------


def test_an_ack_is_matched_by_its_sequence_number():
    protocol = make("alltick", spacing=0.0)
    protocol.want((1, 0.0, [BTC], [ETH]))
    sent = sent_texts(protocol, 100.0, 100.01)
    assert len(sent) == 2 and list(protocol.pending) == [1, 1]  # trades and depth of one list: seq 1

    protocol.receive(alltick_ack(1), 100.1)

    assert list(protocol.pending) == [1]
    assert protocol.stats["acks"] == 1 and protocol.healthy


def test_a_late_ack_of_an_older_list_leaves_the_newer_request_pending():
    protocol = make("alltick", spacing=0.0)
    protocol.want((1, 0.0, [BTC], []))
    sent_texts(protocol, 100.0, 100.01)
    protocol.want((2, 100.01, [BTC, ETH], []))
    sent_texts(protocol, 100.1, 100.11)
    assert list(protocol.pending) == [1, 1, 2, 2]

    protocol.receive(alltick_ack(2), 100.2)  # the newer answer first
    protocol.receive(alltick_ack(1), 100.3)  # then the late one

    assert list(protocol.pending) == [1, 2]


def test_an_ack_without_a_known_sequence_number_settles_the_oldest_request():
    # iTick's acks carry no sequence number: they answer in order.
    protocol = make("itick", spacing=0.0)
    protocol.receive(b'{"resAc":"auth","code":1,"msg":"ok"}', 100.0)
    protocol.want((1, 0.0, [BTC], []))
    sent_texts(protocol, 100.0, 100.01)
    assert len(protocol.pending) == 1

    protocol.receive(b'{"resAc":"subscribe","code":1,"msg":"ok"}', 100.1)
    protocol.receive(b'{"resAc":"subscribe","code":1,"msg":"ok"}', 100.2)  # unmatched: nothing pending

    assert list(protocol.pending) == [] and protocol.stats["acks"] == 2


def test_a_refused_request_is_counted_and_does_not_make_the_connection_healthy():
    protocol = make("alltick")

    protocol.receive(alltick_ack(1, ret=403), 100.1)

    assert protocol.stats["rejected"] == 1 and not protocol.healthy


# -- Heartbeats and staleness ----------------------------------------------------------------------


def test_a_heartbeat_is_due_every_heartbeat_interval():
    protocol = subscribed(make("alltick", spacing=0.0), 100.0)

    first = protocol.poll(100.0)
    assert first.text is None and first.wake_at == 100.0 + HEARTBEAT

    beat = protocol.poll(110.0)
    assert json.loads(beat.text)["cmd_id"] == 22000
    protocol.sent(110.0)
    assert protocol.unanswered_since == 110.0 and protocol.stats["heartbeats_sent"] == 1
    assert protocol.poll(110.0).wake_at == 120.0


def test_itick_pings_carry_the_market_time():
    protocol = make("itick", spacing=0.0)
    protocol.receive(b'{"resAc":"auth","code":1,"msg":"ok"}', 100.0)
    protocol.poll(100.0)

    assert json.loads(protocol.poll(120.0).text) == {"ac": "ping", "params": "1700000000000"}


def test_an_answered_heartbeat_keeps_a_quiet_connection():
    protocol = subscribed(make("alltick", spacing=0.0), 100.0)
    for beat in range(1, 10):  # ninety seconds without a trade: a closed market
        now = 100.0 + beat * HEARTBEAT
        move = protocol.poll(now)
        assert move.error is None and move.text is not None
        protocol.sent(now)
        protocol.receive(ALLTICK_PONG, now + 0.5)

    assert protocol.unanswered_since is None and protocol.stats["heartbeats_answered"] == 9


def test_a_connection_whose_heartbeats_go_unanswered_is_stale_after_stale_after():
    protocol = subscribed(make("alltick", spacing=0.0), 100.0)
    protocol.poll(110.0)  # first unanswered heartbeat
    protocol.sent(110.0)
    assert protocol.poll(120.0).text is not None  # the second goes out, still unanswered
    protocol.sent(120.0)

    assert protocol.poll(129.9).error is None
    move = protocol.poll(130.0)  # stale_after after the last answer (none since the first beat's send)

    assert isinstance(move.error, Timeout) and "stale_after=30.0" in str(move.error)
    assert protocol.stats["stale_timeouts"] == 1


def test_trades_alone_do_not_prove_the_connection_alive():
    protocol = subscribed(make("alltick", spacing=0.0), 100.0)
    protocol.poll(110.0)
    protocol.sent(110.0)
    for second in range(110, 130):
        protocol.receive(alltick_trade(), second + 0.5)

    assert isinstance(protocol.poll(130.0).error, Timeout)


# -- Subscriptions: coalescing, spacing, caps, lingering --------------------------------------------


def test_changes_close_together_are_coalesced_into_one_list():
    protocol = make("alltick", spacing=0.0)
    protocol.want((1, 100.0, [BTC], []))
    assert protocol.poll(100.0).wake_at == pytest.approx(100.0 + COALESCE_SECONDS)  # wait for company
    protocol.want((2, 100.02, [BTC, ETH], []))
    protocol.want((3, 100.04, [BTC, ETH, SOL], []))

    sent = sent_texts(protocol, 100.04, 100.2)

    lists = [json.loads(text) for _, text in sent]
    assert [message["cmd_id"] for message in lists] == [22004, 22006]  # trades list, cancel of depth
    assert [item["code"] for item in lists[0]["data"]["symbol_list"]] == ["BTCUSDT", "ETHUSDT", "SOLUSDT"]
    assert sent[0][0] >= 100.04 + COALESCE_SECONDS


def test_requests_are_spaced_by_the_plan_and_a_margin():
    # The service times a request when it reads it: a margin keeps a late first read from
    # bringing the second within the plan's spacing.
    protocol = make("alltick", spacing=SPACING)
    protocol.want((1, 0.0, [BTC], [ETH]))

    sent = sent_texts(protocol, 100.0, 105.0)

    times = [at for at, _ in sent]
    assert times[0] == 100.0 and times[1] == pytest.approx(100.0 + SPACING + PACING_MARGIN)


def test_a_new_list_replaces_what_was_still_queued():
    protocol = make("alltick", spacing=SPACING)
    protocol.want((1, 0.0, [BTC], []))
    sent = sent_texts(protocol, 100.0, 100.5)
    assert len(sent) == 1  # the depth cancel waits for the spacing
    protocol.want((2, 100.5, [ETH], []))

    sent = sent_texts(protocol, 100.5, 103.0)

    assert [json.loads(text)["cmd_id"] for _, text in sent] == [22004, 22006]
    assert [item["code"] for item in json.loads(sent[0][1])["data"]["symbol_list"]] == ["ETHUSDT"]


def test_codes_past_the_plan_cap_are_reported_once_and_not_subscribed():
    protocol = make("alltick", "free", spacing=0.0)  # five codes per list
    codes = list(map(parse_symbol, ["BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT", "DOGEUSDT", "ADAUSDT"]))
    protocol.want((1, 0.0, codes, []))

    move = protocol.poll(100.0)

    assert len(move.reports) == 1
    report = move.reports[0]
    assert (report.kind, report.symbols) == ("dropped", ("ADAUSDT",))
    assert isinstance(report.error, PlanLimitError) and "plan 'free' serves 5 codes" in str(report.error)
    assert len(json.loads(move.text)["data"]["symbol_list"]) == 5
    protocol.sent(100.0)
    protocol.want((2, 100.0, codes, []))
    assert protocol.poll(101.0).reports == ()  # the same codes dropped again: told once


def test_an_unsubscribed_code_the_server_goes_on_sending_is_not_delivered():
    protocol = make("itick")
    protocol.receive(b'{"resAc":"auth","code":1,"msg":"ok"}', 100.0)
    protocol.lingering.add("ETHUSDT")

    assert protocol.receive(itick_trade("ETHUSDT"), 100.1) == []
    assert [tick.symbol for tick in protocol.receive(itick_trade("BTCUSDT"), 100.2)] == ["BTCUSDT"]
    assert protocol.stats["records"] == 1


# -- Records and bad frames -------------------------------------------------------------------------


def test_records_are_returned_in_order_and_make_the_connection_healthy():
    protocol = make("alltick")

    records = protocol.receive(alltick_trade(price=1.0), 100.1)

    assert records == [Tick("BTCUSDT", 1700000000123, 1.0, 0.01, 1.0, seq=1, direction=1)]
    assert protocol.healthy and protocol.last_frame == 100.1 and protocol.stats["frames"] == 1


def test_a_malformed_frame_is_counted_skipped_and_reported():
    protocol = make("alltick")
    protocol.notices.clear()

    assert protocol.receive(b"{not json", 100.1) == []

    assert protocol.stats["malformed"] == 1
    [notice] = protocol.notices
    assert isinstance(notice, Report) and notice.kind == "malformed"
    assert isinstance(notice.error, ProtocolError)
