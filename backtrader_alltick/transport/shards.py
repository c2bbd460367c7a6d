"""Which connection carries which code: the plan's connection allowance and the codes placed on it.

Pure and not thread-safe: :class:`~backtrader_alltick.transport.stream_hub.StreamHub` holds a lock
around it.  A code (trades, depth or both) takes one place on one connection of its endpoint family.

AllTick (protocol/alltick.md 5.4, 6.3): each family (stock, everything else) has the plan's
connections, each serving the plan's codes per list; codes past a list's cap are silently ignored.
iTick (protocol/itick.md 8.2, 9.1): at most 500 products per connection, the plan's connections and
subscriptions are the account's, shared by every asset class.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass

from .. import plans
from ..errors import ConfigError
from ..symbols import Instrument


@dataclass(frozen=True)
class Capacity:
    """How many codes a plan serves: per connection, connections, and in all.

    ``pooled``: the connections and the total are the account's, shared by every family (iTick);
    otherwise each family has them all (AllTick).

    Example::

        capacity = Capacity.of("alltick", plans.get_plan("alltick", "premium"))
        capacity.per_link, capacity.links     # (200, 3)
        capacity.problem({"stock": 601})      # "... 601 stock codes ..., at most 600 ..."
    """

    plan: str
    per_link: int
    links: int
    total: int
    pooled: bool

    @classmethod
    def of(cls, dialect: str, plan: plans.Plan) -> Capacity:
        """The capacity of ``plan`` for ``dialect`` (``"alltick"`` or ``"itick"``)."""
        if dialect == "itick":
            per_link = min(plan.ws_symbols, plans.ITICK_SYMBOLS_PER_CONNECTION)
            return cls(
                plan.name,
                per_link,
                plan.ws_connections,
                min(plan.ws_symbols, per_link * plan.ws_connections),
                True,
            )
        return cls(
            plan.name, plan.ws_symbols, plan.ws_connections, plan.ws_symbols * plan.ws_connections, False
        )

    def links_for(self, codes: int) -> int:
        """Connections needed for ``codes`` codes of one family."""
        return -(-codes // self.per_link)

    def problem(self, counts: dict[str, int]) -> str | None:
        """What is wrong with wanting ``counts[family]`` codes per family at once, or None if it fits."""
        if self.pooled:
            codes, links = sum(counts.values()), sum(self.links_for(n) for n in counts.values())
            if codes > self.total or links > self.links:
                return (
                    f"{codes} codes over {len(counts)} asset classes need {links} connections of at "
                    f"most {self.per_link} codes; plan {self.plan!r} serves {self.total} codes on "
                    f"{self.links} connections"
                )
            return None
        for family, codes in counts.items():
            if codes > self.total:
                return (
                    f"{codes} {family} codes are wanted; plan {self.plan!r} serves at most {self.total} "
                    f"({self.links} connections of {self.per_link} codes)"
                )
        return None


class Shards:
    """The codes of one family placed on numbered connections (slots), each holding at most ``per_link``.

    A code keeps its slot while it is wanted and its connection is up, so a working connection's
    list changes only when its own codes do (moving a served code would cut its trades); a new
    code goes to the lowest slot with room, so codes fill as few connections as they can, and the
    room an unsubscribed code leaves goes to the next new one.  When a connection drops, its codes
    are served by nobody until it is back: :meth:`rebalance` then moves them into the room of
    connections that are up.  No slot ever holds more than ``per_link`` codes and no code is ever
    left without a slot.

    Example::

        shards = Shards(per_link=2)
        [shards.place(parse_symbol(s)) for s in ("A.US", "B.US", "C.US")]   # [0, 0, 1]
        shards.release(parse_symbol("A.US")); shards.place(parse_symbol("D.US"))   # 0 (the room it left)
        shards.release(parse_symbol("D.US")); shards.rebalance(1, up=[0])   # {C.US: 0}: slot 1 dropped
    """

    def __init__(self, per_link: int) -> None:
        self.per_link = per_link
        self._slot_of: dict[Instrument, int] = {}
        self._sizes: list[int] = []

    def __len__(self) -> int:
        return len(self._slot_of)

    def slot_of(self, inst: Instrument) -> int | None:
        """The slot carrying ``inst``, or None when it is not placed."""
        return self._slot_of.get(inst)

    def place(self, inst: Instrument) -> int:
        """Place ``inst`` (if it is not yet) and return its slot."""
        slot = self._slot_of.get(inst)
        if slot is not None:
            return slot
        slot = next((index for index, size in enumerate(self._sizes) if size < self.per_link), None)
        if slot is None:
            slot = len(self._sizes)
            self._sizes.append(0)
        self._sizes[slot] += 1
        self._slot_of[inst] = slot
        return slot

    def release(self, inst: Instrument) -> int | None:
        """Take ``inst`` off its slot; return the slot, or None when it was not placed."""
        slot = self._slot_of.pop(inst, None)
        if slot is not None:
            self._sizes[slot] -= 1
        return slot

    def sizes(self) -> list[int]:
        """Codes per slot, slot 0 first."""
        return list(self._sizes)

    def codes_on(self, slot: int) -> list[Instrument]:
        """The codes placed on ``slot``, oldest placement first."""
        return [inst for inst, placed in self._slot_of.items() if placed == slot]

    def rebalance(self, down: int, up: Iterable[int]) -> dict[Instrument, int]:
        """Move the codes of slot ``down`` (its connection dropped) into the room of slots ``up``.

        Slots are filled lowest first, each to ``per_link``; codes that find no room stay on
        ``down`` and are resubscribed when its connection is back.  Returns each moved code's new
        slot.
        """
        moved: dict[Instrument, int] = {}
        targets = sorted(slot for slot in set(up) if slot != down and 0 <= slot < len(self._sizes))
        codes = iter(self.codes_on(down))
        for slot in targets:
            for inst in itertools.islice(codes, max(0, self.per_link - self._sizes[slot])):
                # Re-inserted: a moved code counts as the newest placement of its new slot.
                del self._slot_of[inst]
                self._slot_of[inst] = slot
                self._sizes[down] -= 1
                self._sizes[slot] += 1
                moved[inst] = slot
        return moved


# Added to a documented spacing: the service times an attempt or a request when it arrives, and a
# handshake or a busy machine may bring one in a little earlier relative to the previous one.
PACING_MARGIN = 0.2


class Pacer:
    """Spaces events of several connections of one family: ``claim`` says when the next may happen.

    Thread-safe.  ``spacing`` applies between events of *different* connections (alltick.md 6.3: 3 s
    between requests on different connections; 5.5: connection attempts at least that far apart);
    each connection spaces its own events itself.

    Example::

        pacer = Pacer(3.0)
        pacer.claim("stock#1", now)   # 0.0: go ahead
        pacer.claim("stock#2", now)   # 3.0: wait that long, then claim again
    """

    def __init__(self, spacing: float) -> None:
        self.spacing = spacing
        self._lock = threading.Lock()
        self._last: tuple[object, float] | None = None

    def claim(self, who: object, now: float | None = None) -> float:
        """Return 0 and record the event when ``who`` may act at ``now``; else the seconds to wait."""
        now = time.monotonic() if now is None else now
        with self._lock:
            if self._last is not None and self._last[0] != who:
                wait = self._last[1] + self.spacing - now
                if wait > 0:
                    return wait
            self._last = (who, now)
            return 0.0

    def touch(self, who: object, now: float | None = None) -> None:
        """Move ``who``'s last event on to ``now`` (it ended then), unless another came since."""
        now = time.monotonic() if now is None else now
        with self._lock:
            if self._last is not None and self._last[0] == who and now > self._last[1]:
                self._last = (who, now)


def over_capacity(capacity: Capacity, counts: dict[str, int]) -> ConfigError | None:
    """The ConfigError for wanting ``counts`` codes per family on ``capacity``, or None when they fit."""
    problem = capacity.problem(counts)
    if problem is None:
        return None
    return ConfigError(
        f"too many symbols for one token: {problem}; the service would silently ignore the "
        "rest. Subscribe fewer symbols, choose a higher plan, or split them over tokens"
    )
