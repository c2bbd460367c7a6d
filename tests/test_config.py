"""Settings for every call: argument > environment (ALLTICK_*) > config file > default."""

from __future__ import annotations

import pytest
from test_cli import run

from backtrader_alltick import AllTickStore, config
from backtrader_alltick.errors import ConfigError

SECRET = "tok-in-a-file-0123456789"


@pytest.fixture
def config_file(user_settings):
    """Write the config file the tests see (conftest's ``user_settings`` path)."""

    def write(text: str):
        user_settings.parent.mkdir(parents=True, exist_ok=True)
        user_settings.write_text(text, encoding="utf-8")
        return user_settings

    return write


def test_argument_beats_environment_beats_file_beats_default(config_file, monkeypatch):
    assert AllTickStore(cache=False).plan.name == "free"
    config_file('plan = "basic"\ndialect = "itick"\n')
    store = AllTickStore(cache=False)
    assert (store.plan.name, store.p.dialect) == ("basic", "itick")
    monkeypatch.setenv("ALLTICK_PLAN", "premium")
    assert AllTickStore(cache=False).plan.name == "premium"
    assert AllTickStore(plan="professional", cache=False).plan.name == "professional"


def test_cache_from_the_environment_or_the_file(config_file, monkeypatch, tmp_path):
    config_file(f'cache = "{tmp_path / "from-file.sqlite"}"\n')
    assert AllTickStore().cache.path == str(tmp_path / "from-file.sqlite")
    monkeypatch.setenv("ALLTICK_CACHE", "off")
    assert AllTickStore().cache is None


def test_the_token_comes_from_a_file_named_by_the_environment_or_the_config_file(
    config_file, monkeypatch, tmp_path
):
    token_file = tmp_path / "token"
    token_file.write_text(SECRET + "\n")
    config_file(f'token_file = "{token_file}"\n')
    assert config.token() == SECRET
    assert SECRET not in repr(AllTickStore(cache=False))
    monkeypatch.setenv("ALLTICK_TOKEN_FILE", str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match="the token file .*missing cannot be read"):
        config.token()
    monkeypatch.setenv("ALLTICK_TOKEN", "from-the-environment")
    assert config.token() == "from-the-environment"
    assert config.token("given") == "given"


@pytest.mark.parametrize(
    "text, message",
    [
        ("plan = basic", "is not valid TOML"),
        ('plan = "gold"', "plan in .* must be one of free, basic"),
        ('colour = "blue"', "may set plan, dialect, cache, rest_url, ws_url, token_file, was colour"),
        (f'token = "{SECRET}"', "must not hold the token: put it in a file of its own"),
        ("cache = 3", "cache in .* must be a file path, true .* or false"),
    ],
)
def test_a_bad_config_file_is_a_config_error_naming_the_file(config_file, text, message):
    path = config_file(text + "\n")

    with pytest.raises(ConfigError, match=message) as caught:
        AllTickStore()
    assert str(path) in str(caught.value) and SECRET not in str(caught.value)


def test_a_bad_environment_value_names_the_variable(monkeypatch):
    monkeypatch.setenv("ALLTICK_DIALECT", "bloomberg")
    with pytest.raises(ConfigError, match="ALLTICK_DIALECT must be one of alltick, itick, was 'bloomberg'"):
        AllTickStore()


def test_the_config_file_lives_in_the_user_config_directory(monkeypatch, tmp_path):
    monkeypatch.delenv("ALLTICK_CONFIG")
    monkeypatch.setattr(config.sys, "platform", "linux")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert config.config_path() == tmp_path / "alltick-bt" / "config.toml"
    monkeypatch.delenv("XDG_CONFIG_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert config.config_path() == tmp_path / ".config" / "alltick-bt" / "config.toml"


# -- the command line ------------------------------------------------------------------------------


def test_commands_take_plan_dialect_and_token_file_from_the_environment_and_the_file(
    capsys, config_file, monkeypatch, itick_sim, tmp_path
):
    token_file = tmp_path / "token"
    token_file.write_text(itick_sim.token)
    config_file(f'dialect = "itick"\nplan = "unlimited"\nrest_url = "{itick_sim.rest_url}"\n')
    monkeypatch.setenv("ALLTICK_CACHE", "off")

    code, out, err = run(capsys, "quote", "BTCUSDT", "--json", "--token-file", str(token_file))

    assert code == 0, err
    assert '"symbol":"BTCUSDT"' in out
    assert itick_sim.token not in out + err


def test_cache_info_shows_the_cache_the_environment_names(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("ALLTICK_CACHE", str(tmp_path / "named.sqlite"))

    code, out, _ = run(capsys, "cache", "info")

    assert code == 0 and out.splitlines()[0] == f"cache: {tmp_path / 'named.sqlite'}"


def test_help_says_to_prefer_the_environment_or_a_token_file_to_token(capsys):
    _, out, _ = run(capsys, "klines", "--help")
    assert "--token-file FILE" in out and "shows in `ps`" in out
