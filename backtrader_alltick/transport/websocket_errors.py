"""What WebSocket failures mean: websocket-client and socket exceptions turned into the errors tree.

:func:`map_errors` is the single translation point of the stream path.  Foreign texts may carry the
URL (and so the token): they are redacted and raised ``from None``; whoever keeps the error cuts the
foreign one off its ``__context__`` (``redaction.detached``).
"""

from __future__ import annotations

import contextlib
import socket
import ssl
from collections.abc import Iterator, Mapping

import websocket

from ..errors import (
    AllTickError,
    APIError,
    AuthError,
    ConnectError,
    RateLimited,
    Timeout,
    TransportError,
    redact,
)


@contextlib.contextmanager
def map_errors(safe_url: str, token: str, *, connecting: bool) -> Iterator[None]:
    """Translate every websocket-client or socket exception raised inside; let ours through.

    Example::

        with map_errors(safe_url, token, connecting=True):
            ws = websocket.create_connection(url)   # a refused port raises ConnectError
    """
    try:
        yield
    except AllTickError:
        raise
    except websocket.WebSocketBadStatusException as e:
        raise upgrade_error(safe_url, e.status_code, e.resp_headers) from None
    except (websocket.WebSocketTimeoutException, TimeoutError) as e:
        raise Timeout(
            f"WebSocket {safe_url} did not answer in time ({redact(str(e), token)}); "
            "check the network or raise connect_timeout"
        ) from None
    except (
        websocket.WebSocketAddressException,
        websocket.WebSocketProxyException,
        ConnectionRefusedError,
        ssl.SSLError,
        socket.gaierror,
    ) as e:
        raise ConnectError(
            f"cannot open WebSocket {safe_url}: {type(e).__name__}: "
            f"{redact(str(e), token)}; check the ws URL and the network"
        ) from None
    except (websocket.WebSocketException, OSError) as e:
        # Framing and payload violations break the connection, not one frame: reconnecting helps.
        cls = ConnectError if connecting else TransportError
        raise cls(
            f"WebSocket {safe_url} failed: {type(e).__name__}: {redact(str(e), token) or 'closed'}; "
            "the stream reconnects"
        ) from None


def upgrade_error(safe_url: str, status: int, headers: Mapping[str, str] | None) -> APIError:
    """Return the error an HTTP status refusing the WebSocket upgrade stands for."""
    if status in (401, 403):
        return AuthError(
            f"token rejected by {safe_url} (HTTP {status}); check the token or ALLTICK_TOKEN", status=status
        )
    if status == 429:
        retry_after = (headers or {}).get("retry-after")
        return RateLimited(
            f"WebSocket {safe_url} refused the upgrade (HTTP 429); reconnecting too fast",
            status=status,
            retry_after=float(retry_after) if retry_after else None,
        )
    return APIError(
        f"WebSocket {safe_url} refused the upgrade (HTTP {status}); check the ws URL or retry later",
        status=status,
    )
