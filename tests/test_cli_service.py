"""``cli/service.py``: the store a command talks to: the service's with a token, else a simulator's."""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

import pytest
from test_cli import clean_environment  # noqa: F401 - the autouse fixture applies here too

from backtrader_alltick.cli.service import common_options, open_service, open_store
from backtrader_alltick.errors import AuthError


def options(*argv: str, speed: float = 120.0, seed: int = 3):
    args = common_options().parse_args(list(argv))
    args.speed, args.seed = speed, seed  # what demo and record add for the simulator
    return args


def accepts_connections(url: str) -> bool:
    parts = urlsplit(url)
    with socket.socket() as probe:
        return probe.connect_ex((parts.hostname, parts.port)) == 0


def test_without_a_token_a_simulator_serves_and_stops_with_the_block(capsys):
    with open_service(options("--dialect", "itick"), ["BTCUSDT"], "trying") as service:
        assert service.simulated
        assert service.description == "built-in simulator (itick dialect, seed 3, clock x120)"
        assert [tick.symbol for tick in service.store.latest_trades(["BTCUSDT"])] == ["BTCUSDT"]
        assert service.store.cache is None  # simulated bars never land in the user cache
        url = service.store.rest_url

    assert capsys.readouterr().err == (
        "no ALLTICK_TOKEN: trying the built-in simulator (itick dialect, seed 3, clock x120)\n"
    )
    assert not accepts_connections(url)


def test_the_simulator_writes_a_cache_only_when_one_is_named(tmp_path):
    path = tmp_path / "sim.sqlite"

    with open_service(options("--cache", str(path)), ["BTCUSDT"], "trying") as service:
        service.store.fetch_klines("BTCUSDT", "1m", count=3)

    assert path.is_file()


def test_with_a_token_the_service_the_options_name_is_used_without_any_request(capsys, monkeypatch):
    monkeypatch.setenv("ALLTICK_TOKEN", "secret-token-123")
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"

        with open_service(options("--rest-url", url), ["BTCUSDT"], "trying") as service:
            assert not service.simulated
            assert service.description == f"alltick service at {url}"

        listener.setblocking(False)
        with pytest.raises(BlockingIOError):
            listener.accept()  # nobody connected
    assert capsys.readouterr().err == ""


def test_open_store_without_a_token_fails_before_building_a_store():
    with pytest.raises(AuthError, match="set ALLTICK_TOKEN or pass --token"), open_store(options()):
        pass
