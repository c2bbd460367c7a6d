"""A misbehaving HTTP service of the tests' own, on 127.0.0.1: canned answers the simulator cannot give.

``CannedService(answer)`` calls ``answer(request)`` for every request and sends back
what it returns: ``(status, body)`` or ``(status, body, headers)``, where a dict or list
body is sent as JSON and bytes as they are.  ``request.params`` holds the query string,
``request.query`` AllTick's decoded ``query=`` JSON, and ``service.requests`` every
request so far.  Point a RestClient, a store or the CLI at ``service.url``.

Example::

    with CannedService(lambda request: (429, b"slow down")) as service:
        RestClient("alltick", "tok", service.url, "unlimited").klines("BTCUSDT", "1m", 5)
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

MINUTE_S = 60


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    params: dict[str, str]

    @property
    def query(self) -> dict[str, Any]:
        """AllTick's ``query=`` JSON envelope, decoded (empty for other requests)."""
        return json.loads(self.params["query"]) if "query" in self.params else {}


class CannedService:
    """Serve ``answer(request)`` for every request on a free loopback port until closed."""

    def __init__(self, answer: Callable[[Request], tuple]) -> None:
        self.answer = answer
        self.requests: list[Request] = []
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's dispatch name
                parts = urlsplit(self.path)
                request = Request(self.command, parts.path, dict(parse_qsl(parts.query)))
                service.requests.append(request)
                status, body, *rest = service.answer(request)
                payload = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                for name, value in (rest[0] if rest else {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_POST = do_GET  # noqa: N815

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def __enter__(self) -> CannedService:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def alltick_klines(rows: list[dict], code: str = "BTCUSDT", kline_type: int = 1) -> dict:
    """An AllTick ``/kline`` answer carrying ``rows``."""
    return {
        "ret": 200,
        "msg": "ok",
        "trace": "t",
        "data": {"code": code, "kline_type": kline_type, "kline_list": rows},
    }


def minute_rows(count: int, end_s: int | None = None, **override: Any) -> list[dict]:
    """``count`` AllTick one-minute rows, the newest starting at or before ``end_s`` (default: now).

    ``override`` replaces fields of every row, e.g. ``timestamp=-1e11`` or ``open_price="NaN"``.
    """
    newest = int(time.time() if end_s is None else end_s) // MINUTE_S * MINUTE_S
    rows = []
    for start in range(newest - (count - 1) * MINUTE_S, newest + 1, MINUTE_S):
        price = 100 + start // MINUTE_S % 7
        rows.append(
            {
                "timestamp": str(start),
                "open_price": str(price),
                "high_price": str(price + 1),
                "low_price": str(price - 1),
                "close_price": str(price + 0.5),
                "volume": "3",
                "turnover": "300",
                **override,
            }
        )
    return rows


def alltick_history(request: Request, depth: int | None = None) -> tuple[int, dict]:
    """Answer an AllTick ``/kline`` request like the service: the newest bars up to its end time.

    ``depth`` limits how many minutes back from now history reaches (None: unlimited).
    """
    data = request.query["data"]
    now_s = int(time.time())
    end_s = int(data["kline_timestamp_end"]) or now_s
    count = int(data["query_kline_num"])
    if depth is not None:
        oldest = now_s // MINUTE_S * MINUTE_S - (depth - 1) * MINUTE_S
        count = max(0, min(count, (min(end_s, now_s) // MINUTE_S * MINUTE_S - oldest) // MINUTE_S + 1))
    return 200, alltick_klines(minute_rows(count, min(end_s, now_s)) if count else [], data["code"])
