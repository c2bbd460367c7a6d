"""URLs fit for the sinks' messages and logs: a password in a Redis or InfluxDB URL is masked."""

from __future__ import annotations

from urllib.parse import urlsplit

from ..errors import redact


def safe_url(url: str) -> str:
    """Return ``url`` with any password in it masked, fit for messages and logs."""
    try:
        password = urlsplit(url).password
    except ValueError:
        password = None
    return redact(url, password)
