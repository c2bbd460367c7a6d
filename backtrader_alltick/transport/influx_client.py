"""The InfluxDB 1.x HTTP client the archive's sink and reader share: URLs, requests and error mapping.

Spoken over plain HTTP with requests (``/write`` with line protocol, ``/query`` with InfluxQL); no extra
package.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests

from ..errors import ConfigError, ConnectError, Timeout, TransportError

DEFAULT_URL = "http://127.0.0.1:8086"
DEFAULT_TIMEOUT = (3.05, 10.0)
DEFAULT_DATABASE = "alltick"


def split_influx_url(url: str) -> tuple[str, str]:
    """Split ``http://host:8086/mydb`` into the API root and the database (default ``alltick``)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(
            f"InfluxDB URL must look like http://host:8086 or http://host:8086/database, was {url!r}"
        )
    database = parts.path.strip("/") or DEFAULT_DATABASE
    if "/" in database:
        raise ConfigError(f"InfluxDB URL may name one database after the port, was {url!r}")
    return urlunsplit((parts.scheme, parts.netloc, "", "", "")), database


def new_session(username: str | None, password: str | None) -> requests.Session:
    session = requests.Session()
    if username is not None:
        session.auth = (username, password or "")
    return session


def request(
    session: requests.Session, method: str, url: str, target: str, timeout: tuple[float, float], **kwargs: Any
) -> requests.Response:
    try:
        return session.request(method, url, timeout=timeout, **kwargs)
    except requests.Timeout as e:
        raise Timeout(
            f"InfluxDB at {target} did not answer within {timeout} s ({type(e).__name__})"
        ) from None
    except requests.ConnectionError as e:
        raise ConnectError(
            f"InfluxDB at {target} is unreachable ({type(e).__name__}); is influxd running?"
        ) from None
    except requests.RequestException as e:
        raise TransportError(f"InfluxDB request to {target} failed ({type(e).__name__})") from None


def error_text(response: requests.Response) -> str:
    try:
        return str(response.json().get("error", response.text))[:300]
    except ValueError:
        return response.text[:300]


def result_error(payload: dict[str, Any]) -> str | None:
    if payload.get("error"):
        return str(payload["error"])
    for result in payload.get("results", []):
        if result.get("error"):
            return str(result["error"])
    return None
