"""The simulator's own plan table, as the vendors document their plans.

Sources: alltick.md 6.1 (request rates), 6.3 (connections), 5.4 (codes per subscription), 4.2
(batch groups); itick.md 9.1 (calls per minute, connections, subscriptions) and 8.2 (500
products per connection).
"""

from __future__ import annotations

import pytest

from backtrader_alltick.errors import ConfigError
from backtrader_alltick.sim.plan_table import ITICK_SYMBOLS_PER_CONNECTION, PLAN_NAMES, service_plan


@pytest.mark.parametrize("dialect", ["alltick", "itick"])
@pytest.mark.parametrize("name", [*PLAN_NAMES, "Basic", "base", "advanced"])
def test_every_plan_name_the_simulator_and_cli_accept_is_in_the_table(make_sim, dialect, name):
    sim = make_sim(dialect=dialect, plan=name)

    sim.set_plan("free")

    assert sim.plan.dialect == dialect and sim.plan.name == "free"


@pytest.mark.parametrize(
    ("name", "per_minute", "per_day", "connections", "codes", "groups"),
    [
        ("free", 10, 1_000, 1, 5, 5),
        ("basic", 60, 86_400, 1, 100, 100),
        ("premium", 600, 864_000, 3, 200, 200),
        ("professional", 1_200, 1_728_000, 10, 3_000, 500),
    ],
)
def test_alltick_plans_as_documented(name, per_minute, per_day, connections, codes, groups):
    """alltick.md 6.1, 6.3, 5.4 and 4.2."""
    plan = service_plan("alltick", name)

    assert (plan.per_minute, plan.per_day, plan.ws_connections, plan.ws_symbols, plan.batch_groups) == (
        per_minute,
        per_day,
        connections,
        codes,
        groups,
    )


@pytest.mark.parametrize(
    ("name", "per_minute", "connections", "subscriptions"),
    [("free", 5, 1, 3), ("basic", 120, 3, 200), ("professional", 600, 6, 500), ("premium", 1_200, 12, 2_000)],
)
def test_itick_plans_as_documented(name, per_minute, connections, subscriptions):
    """itick.md 9.1; 8.2 caps one connection at 500 products whatever the plan."""
    plan = service_plan("itick", name)

    assert (plan.per_minute, plan.ws_connections, plan.ws_symbols) == (per_minute, connections, subscriptions)
    assert ITICK_SYMBOLS_PER_CONNECTION == 500


def test_an_unknown_plan_names_the_choices():
    with pytest.raises(ConfigError, match="free, basic, premium, professional, unlimited"):
        service_plan("alltick", "gold")
