"""Shards, Capacity and Pacer: where codes go, how many a plan serves, and the spacing between connections."""

import pytest

from backtrader_alltick import plans
from backtrader_alltick.errors import ConfigError
from backtrader_alltick.symbols import parse_symbol
from backtrader_alltick.transport.shards import Capacity, Pacer, Shards, over_capacity


def _codes(count: int) -> list:
    return [parse_symbol(f"S{index:04d}.US") for index in range(count)]


def test_codes_fill_one_connection_before_the_next():
    shards = Shards(per_link=200)

    slots = [shards.place(inst) for inst in _codes(450)]

    assert shards.sizes() == [200, 200, 50]
    assert slots[199] == 0 and slots[200] == 1 and slots[449] == 2


def test_a_code_keeps_its_connection_and_a_freed_place_is_reused():
    shards = Shards(per_link=2)
    a, b, c, d = _codes(4)
    for inst in (a, b, c):
        shards.place(inst)

    assert shards.place(a) == 0  # placing again changes nothing
    assert shards.release(a) == 0
    assert shards.place(d) == 0
    assert shards.slot_of(c) == 1 and shards.sizes() == [2, 1]
    assert shards.release(a) is None


@pytest.mark.parametrize(
    ("plan", "per_link", "links"),
    [("free", 5, 1), ("basic", 100, 1), ("premium", 200, 3), ("professional", 3000, 10)],
)
def test_alltick_capacity_follows_the_documented_plans(plan, per_link, links):
    capacity = Capacity.of("alltick", plans.get_plan("alltick", plan))

    assert (capacity.per_link, capacity.links, capacity.total) == (per_link, links, per_link * links)
    assert capacity.problem({"stock": per_link * links, "other": per_link * links}) is None
    assert "plan" in capacity.problem({"stock": per_link * links + 1})


def test_itick_capacity_is_the_accounts_shared_by_every_asset_class():
    capacity = Capacity.of("itick", plans.get_plan("itick", "premium"))

    assert (capacity.per_link, capacity.links, capacity.total) == (500, 12, 2000)
    assert capacity.problem({"stock": 1500, "crypto": 500}) is None
    assert "2001 codes" in capacity.problem({"stock": 1501, "crypto": 500})


def test_itick_capacity_counts_the_connections_each_asset_class_needs():
    capacity = Capacity.of("itick", plans.get_plan("itick", "basic"))  # 3 connections, 200 codes

    assert capacity.problem({"stock": 100, "crypto": 50, "forex": 50}) is None
    assert "need 4 connections" in capacity.problem({"stock": 50, "crypto": 50, "forex": 50, "indices": 1})


def test_over_capacity_names_the_plan_and_the_fix():
    error = over_capacity(Capacity.of("alltick", plans.get_plan("alltick", "premium")), {"stock": 601})

    assert isinstance(error, ConfigError)
    assert (
        "601 stock codes are wanted; plan 'premium' serves at most 600 (3 connections of 200 codes)"
        in str(error)
    )
    assert "choose a higher plan" in str(error)


def test_pacer_spaces_different_connections_only():
    pacer = Pacer(3.0)

    assert pacer.claim("a", 10.0) == 0.0
    assert pacer.claim("a", 10.5) == 0.0  # the same connection spaces itself
    assert pacer.claim("b", 11.0) == pytest.approx(2.5)
    assert pacer.claim("b", 13.5) == 0.0
    assert pacer.claim("a", 14.0) == pytest.approx(2.5)


def test_a_dropped_connections_codes_move_into_the_room_of_connections_that_are_up():
    shards = Shards(per_link=3)
    codes = _codes(8)
    for inst in codes:
        shards.place(inst)  # [3, 3, 2]
    shards.release(codes[0])  # room for one on slot 0

    moved = shards.rebalance(1, up=[0, 2])

    assert moved == {codes[3]: 0, codes[4]: 2}
    assert shards.sizes() == [3, 1, 3]
    assert shards.codes_on(1) == [codes[5]]  # no room left: it waits for its own connection
    assert sorted(inst.symbol for slot in range(3) for inst in shards.codes_on(slot)) == [
        inst.symbol for inst in codes[1:]
    ]


def test_rebalance_never_fills_a_connection_past_its_cap_nor_moves_onto_one_that_is_down():
    shards = Shards(per_link=2)
    codes = _codes(6)
    for inst in codes:
        shards.place(inst)  # [2, 2, 2]
    shards.release(codes[4])

    assert shards.rebalance(0, up=[1]) == {}  # slot 1 is full
    assert shards.rebalance(0, up=[0, 5, -1]) == {}  # itself, and slots that do not exist
    assert shards.rebalance(0, up=[1, 2]) == {codes[0]: 2}
    assert shards.sizes() == [1, 2, 2]
    assert shards.place(codes[4]) == 0  # the room the move left goes to the next new code


def test_pacer_counts_the_spacing_from_when_the_event_ended():
    pacer = Pacer(3.0)
    pacer.claim("a", 10.0)

    pacer.touch("a", 11.5)  # a's handshake took 1.5 s: the service may have timed it then
    pacer.touch("b", 20.0)  # not the last event: changes nothing

    assert pacer.claim("b", 13.0) == pytest.approx(1.5)
