"""The token inside a pickled store: sealed, so only this run's processes can read it.

``cerebro.optstrategy(..., maxcpus=N)`` pickles the store into worker processes, which
need the token to reach the service.  The same pickle could be written to a file, where
a plaintext token must never land.  The token is therefore sealed with the
``multiprocessing`` authentication key: 32 random bytes made per run, never written to
disk, and handed by ``multiprocessing`` to every child it starts (fork, spawn and
forkserver alike).  A worker opens the seal; a pickle read back in another run cannot.

Example::

    blob = seal_token("my-token")
    assert open_token(blob) == "my-token"    # in this process or one of its workers
"""

from __future__ import annotations

import hashlib
import hmac
import multiprocessing
import os

_NONCE_BYTES = 16
_TAG_BYTES = 32


def seal_token(token: str | None) -> bytes | None:
    """Encrypt and authenticate ``token`` under this run's multiprocessing key."""
    if token is None:
        return None
    key = _run_key()
    nonce = os.urandom(_NONCE_BYTES)
    plain = token.encode()
    cipher = bytes(a ^ b for a, b in zip(plain, _keystream(key, nonce, len(plain))))
    tag = hmac.new(key, nonce + cipher, hashlib.sha256).digest()
    return nonce + tag + cipher


def open_token(blob: bytes | None) -> str | None:
    """The token sealed in ``blob``, or ``None`` when it was sealed by another run (or is damaged)."""
    if not blob or len(blob) < _NONCE_BYTES + _TAG_BYTES:
        return None
    key = _run_key()
    nonce, tag, cipher = (
        blob[:_NONCE_BYTES],
        blob[_NONCE_BYTES : _NONCE_BYTES + _TAG_BYTES],
        blob[_NONCE_BYTES + _TAG_BYTES :],
    )
    if not hmac.compare_digest(tag, hmac.new(key, nonce + cipher, hashlib.sha256).digest()):
        return None
    return bytes(a ^ b for a, b in zip(cipher, _keystream(key, nonce, len(cipher)))).decode()


def _run_key() -> bytes:
    return bytes(multiprocessing.current_process().authkey)


def _keystream(key: bytes, nonce: bytes, length: int) -> bytes:
    return hashlib.shake_256(key + nonce).digest(length)
