"""Settings that hold for every call: the environment and a small TOML file, under the arguments.

Precedence, for each setting on its own: **argument > environment > file > default**.  An
argument is a store parameter (``AllTickStore(plan="basic")``) or a command option
(``--plan basic``); the environment is ``ALLTICK_PLAN`` and its siblings (:data:`ENVIRONMENT`);
the file is ``config.toml`` in the user's config directory (:func:`config_path`), or the file
``ALLTICK_CONFIG`` names.  The file may hold ``plan``, ``dialect``, ``cache``, ``rest_url``,
``ws_url`` and ``token_file``, never the token itself: a config file is shared and copied more
than a secret should be.

Example ``~/.config/alltick-bt/config.toml``::

    plan = "basic"
    cache = "~/data/alltick.sqlite"        # or false for none
    token_file = "~/.config/alltick-bt/token"

and in Python::

    config.setting("plan")                 # "basic" (unless ALLTICK_PLAN says otherwise)
    config.setting("plan", "premium")      # "premium": an argument wins
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from .errors import ConfigError
from .plans import PLAN_NAMES

APP_DIR = "alltick-bt"
CONFIG_FILE = "config.toml"
DIALECTS = ("alltick", "itick")

# Setting -> the environment variable that sets it.  ALLTICK_TOKEN and ALLTICK_TOKEN_FILE give the token.
ENVIRONMENT = {
    "plan": "ALLTICK_PLAN",
    "dialect": "ALLTICK_DIALECT",
    "cache": "ALLTICK_CACHE",
    "rest_url": "ALLTICK_REST_URL",
    "ws_url": "ALLTICK_WS_URL",
    "token_file": "ALLTICK_TOKEN_FILE",
}
DEFAULTS: dict[str, Any] = {
    "plan": "free",
    "dialect": "alltick",
    "cache": True,
    "rest_url": None,
    "ws_url": None,
    "token_file": None,
}
# Words that turn the cache off, from an environment variable or a command option.
CACHE_OFF = ("off", "none", "no", "false", "0")


def config_path() -> Path:
    """The config file: ``ALLTICK_CONFIG`` if set, else ``config.toml`` in the user config directory.

    Linux and other Unix: ``$XDG_CONFIG_HOME/alltick-bt`` (default ``~/.config/alltick-bt``);
    macOS: ``~/Library/Application Support/alltick-bt``; Windows: ``%APPDATA%\\alltick-bt``.
    """
    named = os.environ.get("ALLTICK_CONFIG")
    if named:
        return Path(named).expanduser()
    if sys.platform.startswith("win"):
        root = os.environ.get("APPDATA") or str(Path.home() / "AppData" / "Roaming")
    elif sys.platform == "darwin":
        root = str(Path.home() / "Library" / "Application Support")
    else:
        root = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(root) / APP_DIR / CONFIG_FILE


def read_file(path: Path | None = None) -> dict[str, Any]:
    """The settings of the config file (``path``, default :func:`config_path`); {} when there is none."""
    path = config_path() if path is None else path
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as e:
        raise ConfigError(f"the config file {path} cannot be read: {e.strerror}") from None
    try:
        settings = _toml().loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        # tomllib's messages give the line and column, never the text there (which could be a secret).
        raise ConfigError(f"the config file {path} is not valid TOML: {e}") from None
    if "token" in settings:
        raise ConfigError(
            f"the config file {path} must not hold the token: put it in a file of its own and "
            'name that file with token_file = "...", or set ALLTICK_TOKEN'
        )
    unknown = sorted(set(settings) - set(DEFAULTS))
    if unknown:
        raise ConfigError(f"the config file {path} may set {', '.join(DEFAULTS)}, was {', '.join(unknown)}")
    return {name: _checked(name, value, f"{name} in {path}") for name, value in settings.items()}


def setting(name: str, given: Any = None) -> Any:
    """The value of setting ``name``: ``given`` if not None, else the environment, the file, the default."""
    if name not in DEFAULTS:
        raise ConfigError(f"setting must be one of {', '.join(DEFAULTS)}, was {name!r}")
    if given is not None:
        return given
    variable = ENVIRONMENT[name]
    text = os.environ.get(variable)
    if text:
        return _checked(name, _from_text(name, text), variable)
    from_file = read_file()
    if name in from_file:
        return from_file[name]
    return DEFAULTS[name]


def cache_value(text: str | None) -> bool | str | None:
    """A cache setting typed as text (``--cache``): None stays None, ``off`` is False, else a path."""
    if text is None:
        return None
    return _from_text("cache", text)


def token(given: str | None = None, token_file: str | Path | None = None) -> str | None:
    """The API token: ``given``, else the ``token_file`` given, else ``ALLTICK_TOKEN``, else the file named
    by ``ALLTICK_TOKEN_FILE`` or the config file's ``token_file``; None when none of them has one."""
    if given:
        return given.strip() or None
    if token_file is not None:
        return read_token_file(token_file)
    from_environment = (os.environ.get("ALLTICK_TOKEN") or "").strip()
    if from_environment:
        return from_environment
    named = setting("token_file")
    return None if named is None else read_token_file(named)


def read_token_file(path: str | Path) -> str | None:
    """The token kept in the file at ``path`` (its first line, without spaces); None for an empty file."""
    path = Path(path).expanduser()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        why = e.strerror if isinstance(e, OSError) else "not UTF-8 text"
        raise ConfigError(f"the token file {path} cannot be read: {why}") from None
    lines = text.strip().splitlines()
    return (lines[0].strip() or None) if lines else None


def _from_text(name: str, text: str) -> Any:
    if name == "cache":
        return False if text.strip().lower() in CACHE_OFF else text
    return text.strip()


def _checked(name: str, value: Any, where: str) -> Any:
    if name == "cache":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip():
            return str(Path(value).expanduser())
        raise ConfigError(
            f"{where} must be a file path, true (the user cache) or false (none), was {value!r}"
        )
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where} must be a non-empty text, was {value!r}")
    if name == "plan" and value not in PLAN_NAMES:
        raise ConfigError(f"{where} must be one of {', '.join(PLAN_NAMES)}, was {value!r}")
    if name == "dialect" and value not in DIALECTS:
        raise ConfigError(f"{where} must be one of {', '.join(DIALECTS)}, was {value!r}")
    if name == "token_file":
        return str(Path(value).expanduser())
    return value


def _toml() -> ModuleType:
    if sys.version_info >= (3, 11):
        import tomllib

        return tomllib
    try:
        import tomli
    except ImportError:  # a dependency on 3.10; missing only in a broken install
        raise ConfigError("reading the config file needs tomli on Python 3.10: pip install tomli") from None
    return tomli
