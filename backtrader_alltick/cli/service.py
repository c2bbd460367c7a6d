"""Which service a command talks to: the options every data command takes, and the store they describe.

``open_store`` builds the store of ``--dialect``, ``--plan``, ``--token``, the URLs and
``--cache``, and stops it (sockets, threads, cache file) however the command ends.  An option
left out comes from the environment or the config file (:mod:`backtrader_alltick.config`).
``open_service`` is the same with a token; without one (no ``--token``, ``--token-file``,
``ALLTICK_TOKEN`` or token file) it starts the built-in simulator in this process instead, so
``demo`` and ``record`` can be tried offline.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import sys
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, NamedTuple

from .. import config
from ..errors import AuthError
from ..plans import PLAN_NAMES
from ..store import AllTickStore
from . import arguments

if TYPE_CHECKING:
    from ..sim import Simulator

NO_TOKEN = (
    "no token for the {dialect} service: set ALLTICK_TOKEN or pass --token-file FILE "
    "(to try the package without one, run `alltick-bt demo`)"
)


def common_options() -> argparse.ArgumentParser:
    """A parent parser with the options every data command takes."""
    parser = argparse.ArgumentParser(add_help=False)
    group = parser.add_argument_group("service options")
    group.add_argument(
        "--dialect",
        choices=("alltick", "itick"),
        default=None,
        help="wire dialect: the real AllTick service or the iTick shape (default: "
        "$ALLTICK_DIALECT, the config file, else alltick)",
    )
    group.add_argument(
        "--plan",
        choices=PLAN_NAMES,
        default=None,
        help="your plan, sets rate limits (default: $ALLTICK_PLAN, the config file, "
        "else free; the built-in simulator: unlimited)",
    )
    group.add_argument(
        "--token-file",
        default=None,
        metavar="FILE",
        help="read the API token from FILE (default: $ALLTICK_TOKEN, else the file named by "
        "$ALLTICK_TOKEN_FILE or the config file's token_file)",
    )
    group.add_argument(
        "--token",
        default=None,
        help="API token; it shows in `ps` and the shell history: prefer ALLTICK_TOKEN or --token-file",
    )
    group.add_argument(
        "--rest-url",
        default=None,
        type=arguments.url_of("http", "https"),
        help="REST root (default: $ALLTICK_REST_URL, the config file, else the real service)",
    )
    group.add_argument(
        "--ws-url",
        default=None,
        type=arguments.url_of("ws", "wss"),
        help="WebSocket root (default: $ALLTICK_WS_URL, the config file, else the real service)",
    )
    group.add_argument(
        "--cache",
        default=None,
        metavar="PATH|off",
        help="K-line cache file, or 'off' for none (default: $ALLTICK_CACHE, the config file, "
        "else the user cache directory)",
    )
    group.add_argument(
        "--quota-url",
        default=None,
        metavar="redis://HOST:PORT/DB",
        help="Redis that counts the token's requests for every machine naming it (default: "
        "$ALLTICK_QUOTA_URL; without one, processes sharing the cache directory share "
        "the count)",
    )
    group.add_argument(
        "--regular-hours",
        dest="extended_hours",
        action="store_false",
        default=True,
        help="only bars of slots with a regular session (default: every slot the service "
        "has trades in: pre-market, after hours, overnight, auctions)",
    )
    group.add_argument("-v", "--verbose", action="count", default=0, help="log more (-vv: debug)")
    # SUPPRESS keeps `alltick-bt --debug CMD` working: a default here would overwrite the top-level flag.
    group.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help="debug logs and tracebacks"
    )
    return parser


def settled(command: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """``command`` with the options it was not given taken from the environment and the config file.

    Only ``--dialect`` is settled here, since commands read it themselves; the store settles
    the rest (``--plan``, the URLs, ``--cache``) when it is made.
    """

    @functools.wraps(command)
    def run(args: argparse.Namespace) -> int:
        settle(args)
        return command(args)

    return run


def settle(args: argparse.Namespace) -> None:
    """Fill a ``--dialect`` left out from the environment or the config file (in place; once is enough)."""
    if getattr(args, "dialect", "") is None:
        args.dialect = config.setting("dialect")


def token_of(args: argparse.Namespace) -> str | None:
    """``--token``, ``--token-file``, ``$ALLTICK_TOKEN``, then a token file the environment or the config
    file names; None when none of them holds one."""
    return config.token(args.token, getattr(args, "token_file", None))


@contextlib.contextmanager
def open_store(
    args: argparse.Namespace, *, needs_token: bool = True, **params: Any
) -> Iterator[AllTickStore]:
    """The store the common options describe, plus store ``params``; no token fails before any I/O."""
    settle(args)
    token = token_of(args)
    if needs_token and not token:
        raise AuthError(NO_TOKEN.format(dialect=args.dialect))
    store = AllTickStore(
        token=token,
        dialect=args.dialect,
        plan=args.plan,
        rest_url=args.rest_url,
        ws_url=args.ws_url,
        cache=cache_setting(args.cache),
        quota_url=getattr(args, "quota_url", None),
        extended_hours=getattr(args, "extended_hours", True),
        **params,
    )
    try:
        yield store
    finally:
        store.stop()


def cache_setting(value: str | None) -> bool | str:
    """``--cache`` as the store's ``cache`` param: True (user cache), False (off) or a path; left out, what
    ``ALLTICK_CACHE`` or the config file says."""
    return config.setting("cache", config.cache_value(value))


class Service(NamedTuple):
    """The store a command uses, what it talks to in words, and whether that is the built-in simulator."""

    store: AllTickStore
    description: str
    simulated: bool
    simulator: Simulator | None = None  # the built-in Simulator, when simulated


@contextlib.contextmanager
def open_service(
    args: argparse.Namespace, symbols: list[str], doing: str, *, paused: bool = False
) -> Iterator[Service]:
    """The service the options name when there is a token; else a simulator of ``symbols`` in this process.

    The simulator follows ``--dialect``, ``--plan`` (default unlimited), ``--speed`` and ``--seed``; its
    K-lines go to a cache only when ``--cache`` names one, never to the user cache of the real service.
    Says on stderr that it is ``doing`` (e.g. "using", "recording") the simulator.  ``paused``: its
    clock stands at its start until the command resumes it (``Service.simulator.clock.resume()``).
    """
    settle(args)
    if token_of(args):
        with open_store(args) as store:
            yield Service(store, f"{args.dialect} service at {store.rest_url}", False)
        return
    from ..sim import Simulator

    with Simulator(
        dialect=args.dialect,
        plan=args.plan or "unlimited",
        speed=args.speed,
        seed=args.seed,
        symbols=symbols,
        paused=paused,
    ) as sim:
        store = AllTickStore.from_simulator(sim, cache=cache_setting(args.cache) if args.cache else False)
        description = f"built-in simulator ({args.dialect} dialect, seed {args.seed}, clock x{args.speed:g})"
        print(f"no ALLTICK_TOKEN: {doing} the {description}", file=sys.stderr, flush=True)
        try:
            yield Service(store, description, True, sim)
        finally:
            store.stop()
