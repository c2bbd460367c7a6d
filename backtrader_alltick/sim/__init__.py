"""A protocol-faithful local AllTick service (``alltick`` and ``itick`` dialects) for demos and tests.

Example::

    from backtrader_alltick.sim import Simulator

    with Simulator(dialect="alltick", speed=60) as sim:
        store = AllTickStore.from_simulator(sim)   # sim.rest_url, sim.ws_url, sim.token, sim.clock
"""

from .control import Faults, Journal, JournalEntry
from .holding import resume_when_anchored
from .simulator import DEFAULT_START_MS, DEFAULT_SYMBOLS, Simulator

__all__ = [
    "DEFAULT_START_MS",
    "DEFAULT_SYMBOLS",
    "Faults",
    "Journal",
    "JournalEntry",
    "Simulator",
    "resume_when_anchored",
]
