"""Server side of RFC 6455: the opening handshake and frame encoding/decoding.

Only what a market-data server needs: text frames out (unmasked), any frame in (masked,
as RFC 6455 section 5.1 requires of clients), ping/pong/close control frames and
fragmented messages.  Reading works on a buffered binary file (``socket.makefile``).
"""

from __future__ import annotations

import base64
import hashlib
import struct
from collections.abc import Mapping
from email.message import Message
from typing import Protocol

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 section 1.3
OP_CONTINUATION, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
CLOSE_NORMAL, CLOSE_GOING_AWAY, CLOSE_PROTOCOL_ERROR, CLOSE_POLICY = 1000, 1001, 1002, 1008
MAX_MESSAGE = 1 << 20  # clients send small JSON requests; anything larger is abuse


class ByteReader(Protocol):
    """A binary stream to read frames from (a socket's ``makefile("rb")``)."""

    def read(self, size: int, /) -> bytes | None: ...


class FrameError(Exception):
    """The peer broke the framing rules; the connection must close with ``code``."""

    def __init__(self, message: str, code: int = CLOSE_PROTOCOL_ERROR) -> None:
        super().__init__(message)
        self.code = code


def accept_key(client_key: str) -> str:
    """The ``Sec-WebSocket-Accept`` value for a client's ``Sec-WebSocket-Key``."""
    digest = hashlib.sha1((client_key.strip() + GUID).encode("ascii")).digest()
    return base64.b64encode(digest).decode("ascii")


def is_upgrade(headers: Message | Mapping[str, str]) -> bool:
    """True when an HTTP request asks to switch to the WebSocket protocol."""
    upgrade = (headers.get("Upgrade") or "").lower()
    connection = (headers.get("Connection") or "").lower()
    return upgrade == "websocket" and "upgrade" in connection and bool(headers.get("Sec-WebSocket-Key"))


def handshake_response(client_key: str, date: str | None = None) -> bytes:
    """The 101 answer to an upgrade; ``date``: its ``Date`` header (an origin server with a clock sends
    one on every answer, RFC 9110 6.6.1)."""
    return (
        "HTTP/1.1 101 Switching Protocols\r\n"
        "Upgrade: websocket\r\n"
        "Connection: Upgrade\r\n"
        + (f"Date: {date}\r\n" if date else "")
        + f"Sec-WebSocket-Accept: {accept_key(client_key)}\r\n\r\n"
    ).encode("ascii")


def encode_frame(payload: bytes, opcode: int = OP_TEXT, fin: bool = True) -> bytes:
    """One unmasked frame (servers never mask, RFC 6455 section 5.1)."""
    first = (0x80 if fin else 0) | opcode
    length = len(payload)
    if length < 126:
        return struct.pack("!BB", first, length) + payload
    if length < 65536:
        return struct.pack("!BBH", first, 126, length) + payload
    return struct.pack("!BBQ", first, 127, length) + payload


def text_frame(text: str) -> bytes:
    return encode_frame(text.encode("utf-8"))


def close_frame(code: int = CLOSE_NORMAL, reason: str = "") -> bytes:
    return encode_frame(struct.pack("!H", code) + reason.encode("utf-8")[:120], OP_CLOSE)


def unmask(data: bytes, mask: bytes) -> bytes:
    # XOR as one big integer: far faster in CPython than a byte loop.
    length = len(data)
    if not length:
        return data
    repeated = (mask * (length // 4 + 1))[:length]
    return (int.from_bytes(data, "little") ^ int.from_bytes(repeated, "little")).to_bytes(length, "little")


def read_frame(stream: ByteReader) -> tuple[bool, int, bytes]:
    """Read one frame: (fin, opcode, unmasked payload).  Raise EOFError when the peer went away."""
    head = _read_exact(stream, 2)
    fin, opcode = bool(head[0] & 0x80), head[0] & 0x0F
    if head[0] & 0x70:
        raise FrameError("reserved bits set without a negotiated extension")
    masked, length = bool(head[1] & 0x80), head[1] & 0x7F
    if length == 126:
        length = struct.unpack("!H", _read_exact(stream, 2))[0]
    elif length == 127:
        length = struct.unpack("!Q", _read_exact(stream, 8))[0]
    if opcode >= OP_CLOSE and (length > 125 or not fin):
        raise FrameError("control frames must be short and unfragmented")
    if length > MAX_MESSAGE:
        raise FrameError(f"frame of {length} bytes is larger than {MAX_MESSAGE}", 1009)
    if not masked:
        raise FrameError("client frames must be masked")
    mask = _read_exact(stream, 4)
    return fin, opcode, unmask(_read_exact(stream, length), mask)


class MessageReader:
    """Reassembles fragmented messages; yields ('text' | 'ping' | 'pong' | 'close', payload).

    Example::

        reader = MessageReader(sock.makefile("rb"))
        kind, payload = reader.next()
    """

    def __init__(self, stream: ByteReader) -> None:
        self.stream = stream
        self._parts: list[bytes] = []
        self._opcode: int | None = None

    def next(self) -> tuple[str, bytes]:
        while True:
            fin, opcode, payload = read_frame(self.stream)
            if opcode == OP_PING:
                return "ping", payload
            if opcode == OP_PONG:
                return "pong", payload
            if opcode == OP_CLOSE:
                return "close", payload
            if opcode in (OP_TEXT, OP_BINARY):
                if self._opcode is not None:
                    raise FrameError("new message started inside a fragmented one")
                self._opcode, self._parts = opcode, []
            elif opcode != OP_CONTINUATION or self._opcode is None:
                raise FrameError(f"unexpected opcode {opcode}")
            self._parts.append(payload)
            if sum(len(part) for part in self._parts) > MAX_MESSAGE:
                raise FrameError("message too large", 1009)
            if fin:
                kind = "text" if self._opcode == OP_TEXT else "binary"
                self._opcode = None
                return kind, b"".join(self._parts)


def _read_exact(stream: ByteReader, count: int) -> bytes:
    data = stream.read(count)
    if data is None or len(data) < count:
        raise EOFError("connection closed mid-frame" if data else "connection closed")
    return data
