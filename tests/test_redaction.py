"""redaction: every spelling of a token is masked in texts, log records and exception chains."""

from __future__ import annotations

import gc
import io
import json
import logging
import socket
import threading
from urllib.parse import quote, quote_plus

import pytest

from backtrader_alltick import wire
from backtrader_alltick.errors import ConnectError
from backtrader_alltick.plans import get_plan
from backtrader_alltick.redaction import RedactingFilter, detached, mask_token, protect, redact
from backtrader_alltick.transport import rest
from backtrader_alltick.transport.rest import RestClient
from backtrader_alltick.transport.stream_hub import StreamHub

TOKEN = "UNITTEST+tok/1a2b=3c4d&9z8y"


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize(
    "spelling",
    [
        TOKEN,
        quote(TOKEN, safe=""),
        quote(TOKEN),
        quote_plus(TOKEN),
        quote(TOKEN, safe="").replace("%2B", "%2b").replace("%2F", "%2f").replace("%3D", "%3d"),
        quote(quote(TOKEN, safe=""), safe=""),
        json.dumps(TOKEN)[1:-1],
        TOKEN.replace("/", "\\/"),
        json.dumps(TOKEN, ensure_ascii=True).replace("+", "\\u002B")[1:-1],
        TOKEN.replace("&", "&amp;"),
    ],
)
def test_every_spelling_of_the_token_is_masked(spelling):
    text = f"GET /kline?query=x&token={spelling} HTTP/1.1"

    assert redact(text, TOKEN) == f"GET /kline?query=x&token={mask_token(TOKEN)} HTTP/1.1"


def test_the_encoded_form_is_masked_whole_not_from_the_raw_prefix():
    # The raw token's first 8 characters also start the URL-encoded form: masking that prefix first
    # would leave the rest of the encoded token in the text.
    text = "token=" + quote(TOKEN, safe="")

    assert redact(text, TOKEN) == "token=" + mask_token(TOKEN)


def test_a_message_clipped_inside_the_token_masks_the_start():
    assert redact(f"payload {quote(TOKEN, safe='')[:14]}...", TOKEN) == f"payload {mask_token(TOKEN)}..."
    assert redact("the word UNITTES alone stays", TOKEN) == "the word UNITTES alone stays"


def _capture(logger_name: str) -> tuple[logging.Logger, io.StringIO, logging.Handler]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger(logger_name)
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    return logger, stream, handler


def test_records_of_any_logger_are_redacted_once_the_token_is_protected():
    protect(TOKEN)
    logger, stream, handler = _capture("some.other.library")
    try:
        logger.debug('"GET /x?token=%s HTTP/1.1" 200', quote_plus(TOKEN))
        try:
            raise ValueError(f"failed on {TOKEN}")
        except ValueError:
            logger.exception("request failed")
    finally:
        logger.removeHandler(handler)

    text = stream.getvalue()
    assert "request failed" in text and "ValueError" in text
    assert "1a2b" not in text and text.count(mask_token(TOKEN)) == 2


def test_redacting_filter_serves_programs_with_their_own_record_factory():
    protect(TOKEN)
    factory = logging.getLogRecordFactory()
    logging.setLogRecordFactory(logging.LogRecord)  # the program's own, installed after ours
    logger, stream, handler = _capture("program.with.factory")
    handler.addFilter(RedactingFilter())
    try:
        logger.info("token %s", TOKEN)
    finally:
        logging.setLogRecordFactory(factory)
        logger.removeHandler(handler)

    assert stream.getvalue() == f"token {mask_token(TOKEN)}\n"


def test_a_token_is_protected_while_an_owner_lives():
    class Owner:
        pass

    token, first, second = "OWNED+token/5e6f7a8b", Owner(), Owner()
    protect(token, first)
    protect(token, second)
    del first
    gc.collect()
    while_one_lives = redact(f"x {token}")
    del second
    gc.collect()

    assert while_one_lives == f"x {mask_token(token)}"
    assert redact(f"x {token}") == f"x {token}"  # no longer checked in every record


def test_detached_cuts_the_chain():
    try:
        try:
            raise OSError(f"GET /x?token={TOKEN}")
        except OSError:
            raise ConnectError("could not connect") from None
    except ConnectError as e:
        error = detached(e)

    assert error.__context__ is None and error.__cause__ is None and error.__suppress_context__


def _chain(error: BaseException) -> list[BaseException]:
    out = []
    while error is not None:
        out.append(error)
        error = error.__context__ or error.__cause__
    return out


def test_an_unreachable_rest_host_raises_an_error_without_the_request_exception(monkeypatch):
    monkeypatch.setattr(rest, "backoff_delay", lambda *args, **kwargs: 0.0)
    client = RestClient("alltick", TOKEN, f"http://127.0.0.1:{closed_port()}", "unlimited", max_retries=1)
    with pytest.raises(ConnectError) as raised:
        client.latest_trades(["AAPL.US"])
    client.close()

    assert _chain(raised.value) == [raised.value]  # the requests exception held the full URL
    assert "1a2b" not in str(raised.value) and "token=" + mask_token(TOKEN) in str(raised.value)


def test_an_unreachable_websocket_reports_an_error_without_the_socket_exception():
    statuses, failed = [], threading.Event()
    hub = StreamHub(
        wire.get_dialect("alltick"),
        f"ws://127.0.0.1:{closed_port()}",
        TOKEN,
        get_plan("alltick", "unlimited"),
        on_event=lambda event: None,
        on_status=lambda status: (statuses.append(status), failed.set()),
        reconnections=0,
    )
    hub.subscribe("BTCUSDT")
    hub.start()
    try:
        assert failed.wait(30)
    finally:
        hub.stop()

    error = next(status.error for status in statuses if status.error is not None)
    assert isinstance(error, ConnectError)
    assert _chain(error) == [error] and "1a2b" not in repr(error)
