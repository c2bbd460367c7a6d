"""Keeping the token out of every text: messages, log records of any library, exception chains.

A token reaches text in many spellings: raw, percent-encoded by ``quote`` / ``quote_plus`` (upper-
or lower-case escapes, even twice), JSON-escaped (``\\/``, ``\\u002b``), HTML-escaped, or cut off by
a message that clips a payload.  :func:`redact` matches all of them, in any mix, with one pattern
per secret built character by character.

Log records are redacted where they are made: :func:`protect` (called by the store, the REST client
and the stream hub for their token) installs a record factory, so records of ``urllib3``,
``requests``, ``websocket-client`` (``websocket.enableTrace``) and the program's own loggers are
clean before any handler sees them, including handlers added later.  A program that replaces the
record factory after that can put :class:`RedactingFilter` on its handlers instead::

    handler.addFilter(RedactingFilter())
"""

from __future__ import annotations

import html
import logging
import re
import threading
import weakref
from collections.abc import Callable
from functools import lru_cache
from typing import Any, TypeVar

__all__ = ["RedactingFilter", "detached", "mask_token", "protect", "redact"]

# A clipped message may end inside the token: its first characters are masked from this length on.
_MIN_PREFIX = 8


def mask_token(token: str | None) -> str:
    """Show enough of a token to tell two apart, never enough to use it."""
    if not token:
        return "<none>"
    if len(token) <= _MIN_PREFIX:
        return "***"
    return f"{token[:4]}…{token[-4:]}"


def _hex(value: int, digits: int) -> str:
    return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else c for c in f"{value:0{digits}X}")


def _spellings(char: str) -> str:
    # Every way one character of a secret may be written: raw, %XX per UTF-8 byte (also %25XX from
    # double encoding), JSON \uXXXX or \/, and an HTML entity.  The raw character comes last: the
    # first alternative that fits wins, and "&" must not stop a match short of "&amp;".
    options = ["".join(f"%(?:25)?{_hex(byte, 2)}" for byte in char.encode("utf-8"))]
    if ord(char) <= 0xFFFF:
        options.append(rf"\\u{_hex(ord(char), 4)}")
    if char == "/":
        options.append(r"\\/")
    if html.escape(char) != char:
        options.append(re.escape(html.escape(char)))
    options.append(f"&#{ord(char)};")
    options.append(re.escape(char))
    return f"(?:{'|'.join(options)})"


@lru_cache(maxsize=64)
def _pattern(secret: str) -> re.Pattern[str]:
    # The whole secret, or a start of at least _MIN_PREFIX characters, in any spelling: the optional
    # tail is nested so that the longest start wins.
    parts = [_spellings(char) for char in secret]
    if len(parts) <= _MIN_PREFIX:
        return re.compile("".join(parts))
    tail = ""
    for part in reversed(parts[_MIN_PREFIX:]):
        tail = f"(?:{part}{tail})?"
    return re.compile("".join(parts[:_MIN_PREFIX]) + tail)


def redact(text: str, *secrets: str | None) -> str:
    """Replace every spelling of each secret in ``text``, or a cut-off start of one, by its mask.

    Without ``secrets``, the tokens given to :func:`protect` (and still in use) are redacted.

    Example::

        redact("GET /kline?token=ab%2Bcdefgh123", "ab+cdefgh123")   # 'GET /kline?token=ab+c…h123'
    """
    if not secrets:
        for pattern, mask in tuple(_protected.values()):
            text = pattern.sub(mask, text)
        return text
    for secret in secrets:
        if secret:
            text = _pattern(secret).sub(mask_token(secret), text)
    return text


_E = TypeVar("_E", bound=BaseException)


def detached(error: _E) -> _E:
    """Return ``error`` cut from the exceptions it was raised during or from.

    ``raise ... from None`` only hides the chain from tracebacks; ``__context__`` still holds the
    foreign exception, whose text may carry the token, for any error reporter that walks it.
    Raise the result outside an ``except`` block, or Python chains the handled exception again.
    """
    error.__cause__ = None
    error.__context__ = None
    error.__suppress_context__ = True
    return error


# -- Log records -----------------------------------------------------------------------------------

# token -> (pattern, mask), and how many live owners use it: a long test run or a service that makes
# stores for many tokens must not check every record against every token it ever saw.
_protected: dict[str, tuple[re.Pattern[str], str]] = {}
_owners: dict[str, int] = {}
# Reentrant: a garbage collection inside protect() may run an owner's finalizer, _release, on this thread.
_lock = threading.RLock()
_previous_factory: Callable[..., logging.LogRecord] | None = None


def protect(token: str | None, owner: object | None = None) -> None:
    """Redact ``token`` in every log record made from now on in this process, by any logger.

    With ``owner``, the token is protected while the owner lives (each store, REST client and stream
    hub owns its token); without one, for the rest of the process.
    """
    global _previous_factory
    if not token:
        return
    with _lock:
        if token not in _protected:
            _protected[token] = (_pattern(token), mask_token(token))
        _owners[token] = _owners.get(token, 0) + 1  # without an owner, never released
        if _previous_factory is None:
            _previous_factory = logging.getLogRecordFactory()
            logging.setLogRecordFactory(_redacting_factory)
    if owner is not None:
        weakref.finalize(owner, _release, token)


def _release(token: str) -> None:
    with _lock:
        _owners[token] -= 1
        if _owners[token] <= 0:
            del _owners[token], _protected[token]


def _redacting_factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
    record = (_previous_factory or logging.LogRecord)(*args, **kwargs)
    scrub_record(record)
    return record


def scrub_record(record: logging.LogRecord) -> None:
    """Redact the protected tokens in a record's message, traceback and stack, in place."""
    if not _protected:
        return
    try:
        message = record.getMessage()
    except Exception:  # a broken format string is the handler's to report, as usual
        return
    clean = redact(message)
    if clean != message:
        record.msg, record.args = clean, ()
    if record.exc_info and record.exc_info[1] is not None and not record.exc_text:
        text = logging.Formatter().formatException(record.exc_info)
        clean = redact(text)
        if clean != text:
            record.exc_text = clean
    if record.stack_info:
        record.stack_info = redact(record.stack_info)


class RedactingFilter(logging.Filter):
    """A filter that redacts the protected tokens, for handlers of programs with their own record factory.

    Example::

        logging.getLogger().handlers[0].addFilter(RedactingFilter())
    """

    def filter(self, record: logging.LogRecord) -> bool:
        scrub_record(record)
        return True
