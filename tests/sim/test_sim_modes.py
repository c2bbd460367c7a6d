"""The simulator's session modes over real loopback WebSockets, in both dialects.

Real tapes print trades a moment after the close (``late_print_ms``), some services repeat a
closed market's last trade (``resend_when_closed_s``), and iTick stock ticks say which session
a trade belongs to (``te``, itick.md 4.1: 0 regular, 1 pre-market, 2 after-hours).
"""

from __future__ import annotations

import json
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
import requests
import websocket

from backtrader_alltick.errors import ConfigError

NEW_YORK = "America/New_York"


def at(*fields: int, zone: str = NEW_YORK) -> int:
    return int(datetime(*fields, tzinfo=ZoneInfo(zone)).timestamp() * 1000)


CLOSE = at(2024, 3, 5, 16)  # the regular close of Tuesday 2024-03-05, New York


def trade_stream(sim, symbol: str):
    """Yield (time, price, seq or None, te or None) of every trade frame pushed for ``symbol``."""
    if sim.dialect == "alltick":
        connection = websocket.create_connection(
            f"{sim.ws_url}/quote-stock-b-ws-api?token={sim.token}", timeout=10
        )
        connection.send(
            json.dumps(
                {"cmd_id": 22004, "seq_id": 1, "trace": "t", "data": {"symbol_list": [{"code": symbol}]}}
            )
        )
    else:
        connection = websocket.create_connection(
            sim.ws_url + "/stock", header={"token": sim.token}, timeout=10
        )
        connection.send(json.dumps({"ac": "subscribe", "params": symbol.replace(".", "$"), "types": "tick"}))
    try:
        while True:
            message = json.loads(connection.recv())
            data = message.get("data")
            if message.get("cmd_id") == 22998:
                yield data["tick_time"], float(data["price"]), data["seq"], None
            elif isinstance(data, dict) and data.get("type") == "tick":
                yield data["t"], data["ld"], None, data.get("te")
    finally:
        connection.close()


def frames_until(sim, symbol: str, end_ms: int, limit: int = 5_000) -> list[tuple]:
    """Every trade frame up to the first one stamped at or after ``end_ms`` (or sent for one before)."""
    out = []
    for frame in trade_stream(sim, symbol):
        out.append(frame)
        if frame[0] >= end_ms or len(out) >= limit or sim.clock.now_ms() > end_ms + 3_600_000:
            return out
    return out


@pytest.mark.parametrize("dialect", ["alltick", "itick"])
def test_a_late_print_arrives_after_the_close_and_is_in_the_kline(make_sim, dialect):
    """``late_print_ms=400``: one trade stamped 400 ms after the 16:00 close, pushed and in the K-lines."""
    sim = make_sim(dialect=dialect, symbols=["AAPL.US"], start=CLOSE - 120_000, speed=60, late_print_ms=400)

    frames = frames_until(sim, "AAPL.US", CLOSE)

    late = frames[-1]
    assert late[0] == CLOSE + 400
    assert all(frame[0] < CLOSE for frame in frames[:-1])
    truth = sim.trades("AAPL.US", CLOSE, CLOSE + 60_000)
    assert [(tick.time, tick.price) for tick in truth] == [(late[0], late[1])]
    minute = sim.model.latest_klines("AAPL.US", "1m", 1, CLOSE, sim.clock.now_ms())  # as /kline serves it
    assert [(bar.start, bar.close, bar.volume) for bar in minute] == [(CLOSE, late[1], truth[0].volume)]
    if dialect == "itick":
        assert late[3] == 2  # stamped after the regular close: an after-hours print


@pytest.mark.parametrize("dialect", ["alltick", "itick"])
def test_a_closed_market_re_sends_its_last_trade_unchanged(make_sim, dialect):
    """``resend_when_closed_s=30``: after the close the last trade comes again, same seq and time, every
    30 market seconds; while the market is open nothing is repeated."""
    sim = make_sim(
        dialect=dialect, symbols=["AAPL.US"], start=CLOSE - 600_000, speed=600, resend_when_closed_s=30
    )

    frames = []
    for frame in trade_stream(sim, "AAPL.US"):
        frames.append(frame)
        if len(frames) > 3 and frames[-3:] == [frames[-4]] * 3:
            break

    last_trade = sim.trades("AAPL.US", CLOSE - 60_000, CLOSE)[-1]
    assert frames[-1][:2] == (last_trade.time, last_trade.price)
    if dialect == "alltick":
        seqs = [frame[2] for frame in frames]
        assert seqs[-1] == last_trade.seq
        first_repeat = seqs.index(last_trade.seq) + 1
        assert len(set(seqs[:first_repeat])) == first_repeat  # the open market repeated nothing
        assert set(seqs[first_repeat:]) == {last_trade.seq}
    assert sim.klines("AAPL.US", "1m", CLOSE - 60_000, CLOSE)[-1].close == last_trade.price


def test_itick_stock_ticks_say_pre_market_regular_and_after_hours(make_sim):
    """itick.md 4.1 ``te``: 1 pre-market, 0 regular, 2 after-hours, from the simulator's own hours."""
    open_ = at(2024, 3, 5, 9, 30)
    sim = make_sim(dialect="itick", symbols=["AAPL.US"], start=open_ - 180_000, speed=60, hours="extended")

    frames = frames_until(sim, "AAPL.US", open_ + 20_000)

    assert {te for time, _, _, te in frames if time < open_} == {1}
    assert {te for time, _, _, te in frames if time >= open_} == {0}
    evening = make_sim(dialect="itick", symbols=["AAPL.US"], start=CLOSE + 3_600_000, hours="extended")
    tick = requests.get(
        evening.rest_url + "/stock/tick",
        params={"region": "US", "code": "AAPL"},
        headers={"token": evening.token},
        timeout=10,
    ).json()["data"]
    assert tick["te"] == 2 and CLOSE < tick["t"] <= CLOSE + 3_660_000


def test_itick_te_is_0_for_auction_matches_and_2_overnight(make_sim):
    """The reference has no ``te`` for auctions or the overnight session: the simulator reports an
    auction match as 0 (it sets the official price) and an overnight trade as 2."""
    sim = make_sim(
        dialect="itick",
        symbols=["700.HK", "AAPL.US"],
        hours="overnight",
        start=at(2024, 3, 5, 16, 30, zone="Asia/Hong_Kong"),
    )

    def te(code, region):
        return requests.get(
            sim.rest_url + "/stock/tick",
            params={"region": region, "code": code},
            headers={"token": sim.token},
            timeout=10,
        ).json()["data"]

    auction, overnight = te("700", "HK"), te("AAPL", "US")
    assert (
        at(2024, 3, 5, 16, 8, zone="Asia/Hong_Kong")
        <= auction["t"]
        < at(2024, 3, 5, 16, 10, zone="Asia/Hong_Kong")
    )
    assert auction["te"] == 0
    assert at(2024, 3, 4, 20) <= overnight["t"] < at(2024, 3, 5, 4) and overnight["te"] == 2


@pytest.mark.parametrize(
    ("settings", "word"),
    [
        ({"hours": "24h"}, "hours"),
        ({"late_print_ms": -1}, "late_print_ms"),
        ({"late_print_ms": 3_600_000}, "late_print_ms"),
        ({"resend_when_closed_s": -5}, "resend_when_closed_s"),
    ],
)
def test_bad_mode_settings_are_config_errors(settings, word):
    from backtrader_alltick.sim import Simulator

    with pytest.raises(ConfigError, match=word):
        Simulator(**settings)
