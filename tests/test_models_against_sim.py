"""The client's model against the simulator's own: calendars (markets.py with exchange_calendars
against sim/hours.py and sim/holidays.py) and plan limits (plans.py against sim/plan_table.py).

The two are written from different sources: the client from exchange_calendars and the vendor's
documents as the README states them, the simulator from the exchanges' published rules and the
vendors' documents read on their own.  Where they disagree is a
finding, not a bug in either by default: each one is pinned here with both sources, so a new
difference fails until someone has looked at it and listed it.
"""

from __future__ import annotations

import dataclasses
from datetime import date, datetime, time, timedelta, timezone

import pytest

from backtrader_alltick.plans import get_plan
from backtrader_alltick.sim.hours import CLOSE_AUCTION, REGULAR, hours_for
from backtrader_alltick.sim.plan_table import PLANS
from backtrader_alltick.symbols import parse_symbol

pytest.importorskip("exchange_calendars")  # without it the client has no holidays: every one differs

FIRST, LAST = date(2023, 1, 2), date(2025, 12, 31)  # inside the simulator's holiday lists (2022-2026)

# The client's regular session is the exchange's trading day; the simulator splits the A-share
# closing call auction 14:57-15:00 (SSE/SZSE trading rules 3.1.5) out of its continuous session.
REGULAR_IN_SIM = {"SH": {REGULAR, CLOSE_AUCTION}, "SZ": {REGULAR, CLOSE_AUCTION}}

# Days the client's calendar and the simulator's hours disagree, with both sources.
FINDINGS = {
    "700.HK": {
        # exchange_calendars' XHKG has no trading on these days (Typhoon Signal No. 8 in force past
        # noon: under HKEX's rules before 2024-09-23 the day's trading is cancelled); the simulator's
        # HKEX_HOLIDAYS lists HKEX's scheduled holidays only, so it trades them.
        date(2023, 7, 17),
        date(2024, 9, 6),
    },
}


def _utc_ms(day: date, clock: time = time()) -> int:
    return int(datetime.combine(day, clock, tzinfo=timezone.utc).timestamp() * 1000)


def _merged(spans) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for low, high in sorted(spans):
        if out and low <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], high))
        elif low < high:
            out.append((low, high))
    return out


def _days():
    day = FIRST
    while day <= LAST:
        yield day, _utc_ms(day), _utc_ms(day + timedelta(days=1))
        day += timedelta(days=1)


def _both(symbol: str, low: int, high: int) -> tuple[list, list]:
    """The client's regular spans and the simulator's, clipped to ``[low, high)``."""
    inst = parse_symbol(symbol)
    kinds = REGULAR_IN_SIM.get(inst.region, {REGULAR})
    sim = hours_for(inst.asset, inst.region, inst.code).sessions(low, high, kinds)
    ours = _merged((max(s.start, low), min(s.end, high)) for s in sim)
    return _merged(inst.market.open_spans(low, high)), ours


@pytest.mark.parametrize(
    "symbol",
    # UKOIL, the base metals and AUS200 have their own lines in the product list (alltick.md section 8).
    [
        "AAPL.US",
        "700.HK",
        "600519.SH",
        "000001.SZ",
        "EURUSD",
        "GOLD",
        "UKOIL",
        "COPPER",
        "US500",
        "AUS200",
        "BTCUSDT",
    ],
)
def test_the_calendar_and_the_simulators_hours_differ_only_in_the_findings(symbol):
    differ = set()
    for day, low, high in _days():
        client, sim = _both(symbol, low, high)
        if client != sim:
            differ.add(day)

    assert differ == FINDINGS.get(symbol, set())


@pytest.mark.parametrize(("dialect", "name"), [(d, n) for d, plans in PLANS.items() for n in plans])
def test_the_clients_plan_limits_are_the_services(dialect, name):
    # Both are read from the vendors' documents (alltick.md 4.2, 5.4-5.5, 6; itick.md 8.2, 9.1).
    service = PLANS[dialect][name]
    client = get_plan(dialect, name)
    # The client has no field for the 3 s between requests on different connections: its hub spaces
    # them by the plan's reconnect interval, never shorter on a plan where the service asks for 3 s.
    asked = dataclasses.asdict(service)
    between_connections = asked.pop("ws_connection_spacing")

    assert {field: getattr(client, field) for field in asked} == asked
    assert between_connections <= client.reconnect_interval
