"""What a user must know reaches a plain script: warnings shown by default, once, at the user's line.

The scripts (tests/notice_scripts.py) set up no logging, as most Backtrader scripts and notebooks
do; each meets one condition.  Run in a fresh interpreter, the warning is on stderr once, located
in the script; run under ``warnings.simplefilter("error", ...)``, it is an exception.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import warnings
from pathlib import Path

import notice_scripts
import pytest

import backtrader_alltick
from backtrader_alltick import (
    AllTickWarning,
    BarLengthWarning,
    CacheWarning,
    FeedEndedWarning,
    HistoryLimitWarning,
    LateTradeWarning,
    LiveOnlyWarning,
    MarketClosedWarning,
    NoBarsWarning,
    RateLimitWarning,
    SessionPolicyWarning,
)
from backtrader_alltick.notices import Notice, handing_to, warn_user

TESTS = Path(__file__).resolve().parent
SOURCE = TESTS.parent  # this checkout, imported ahead of any installed copy

RECORDING = "<recording>"  # stands for the path of the pre-market recording
CACHE_HOME = "<cache home>"  # stands for a user cache directory whose K-line cache is a text file
# condition: (script function, its arguments, category, a phrase of the message that says the fix)
CONDITIONS = {
    "no_bars_feed": ("no_bars_feed", (), NoBarsWarning, "widen fromdate/todate"),
    "no_bars_fetch": ("no_bars_fetch", (), NoBarsWarning, "so the frame is empty"),
    "history_limit": ("history_limit", (), HistoryLimitWarning, "is not available from the service"),
    "feed_ended": ("feed_ended", (), FeedEndedWarning, "data.last_error holds it"),
    "market_closed": ("market_closed", (), MarketClosedWarning, "HK market closed"),
    "offhours_history": (
        "offhours_history",
        (RECORDING,),
        SessionPolicyWarning,
        "bars outside the regular session left out",
    ),
    "offhours_stream": (
        "offhours_stream",
        (RECORDING,),
        SessionPolicyWarning,
        "trades outside the regular session are left out",
    ),
    "offhours_backfill": (
        "offhours_stream",
        (RECORDING,),
        SessionPolicyWarning,
        "REST bars outside the regular session are left out",
    ),
    "live_only_gap": ("live_only", ("False", "True"), LiveOnlyWarning, "pass backfill=True"),
    "live_only_rest": ("live_only", ("True", "False"), LiveOnlyWarning, "although backfill_start=False"),
    "rate_limit": ("rate_limit", (), RateLimitWarning, "request for EURUSD waits 90 s"),
    # on the backfill thread
    "rate_limit_live": ("rate_limit_live", (), RateLimitWarning, "request for BTCUSDT waits 90 s"),
    "cache_refused": ("cache_refused", (CACHE_HOME,), CacheWarning, "goes on without a cache"),
}


def arguments(args: tuple[str, ...], recording: str, cache_home: str = "") -> tuple[str, ...]:
    return tuple({RECORDING: recording, CACHE_HOME: cache_home}.get(arg, arg) for arg in args)


@pytest.fixture(scope="module")
def recording(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("premarket") / "aapl.rec"
    notice_scripts.write_premarket_recording(str(path))
    return str(path)


def run_script(function: str, args: tuple[str, ...], cwd: Path) -> subprocess.CompletedProcess:
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SOURCE), str(TESTS)])}
    environment.pop("PYTHONWARNINGS", None)  # Python's default filters, as a user has them
    script = f"import notice_scripts\nnotice_scripts.{function}(*{args!r})"
    return subprocess.run(
        [sys.executable, "-c", script], cwd=cwd, env=environment, capture_output=True, text=True, timeout=120
    )


def warning_lines(stderr: str, category: type[Warning]) -> list[str]:
    return [line for line in stderr.splitlines() if f" {category.__name__}: " in line]


@pytest.fixture(scope="module")
def script_runs() -> dict[tuple, subprocess.CompletedProcess]:
    """Runs of a script with arguments that name no directory of a test, kept for the module: two
    conditions met by one run (offhours_stream: its REST bars and then its trades) read its output."""
    return {}


@pytest.mark.parametrize("condition", list(CONDITIONS))
def test_a_plain_script_shows_the_warning_once_at_its_own_line(condition, recording, tmp_path, script_runs):
    function, args, category, fix = CONDITIONS[condition]

    notice_scripts.write_foreign_cache(str(tmp_path / "cache"))
    if CACHE_HOME in args:
        done = run_script(function, arguments(args, recording, str(tmp_path / "cache")), tmp_path)
    else:
        if (function, args) not in script_runs:
            script_runs[function, args] = run_script(function, arguments(args, recording), tmp_path)
        done = script_runs[function, args]

    assert done.returncode == 0, done.stderr
    lines = [line for line in warning_lines(done.stderr, category) if fix in line]
    assert len(lines) == 1, done.stderr
    # Python prints the location first: the script's file, never the package's or Backtrader's.
    assert lines[0].startswith(notice_scripts.__file__ + ":"), lines[0]
    every = [line for line in done.stderr.splitlines() if "Warning: " in line]
    assert len(every) == len(set(every)), done.stderr  # no message twice
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("condition", list(CONDITIONS))
def test_an_error_filter_turns_the_warning_into_an_exception(condition, recording, tmp_path):
    function, args, category, fix = CONDITIONS[condition]
    notice_scripts.write_foreign_cache(str(tmp_path / "cache"))

    with warnings.catch_warnings():
        # This message only: a script may meet others of the category first (REST bars, then trades).
        warnings.filterwarnings("error", f".*{re.escape(fix)}", category)
        with pytest.raises(category, match=re.escape(fix)):
            getattr(notice_scripts, function)(*arguments(args, recording, str(tmp_path / "cache")))


def test_escalating_the_root_category_makes_any_of_them_an_exception():
    with warnings.catch_warnings():
        warnings.simplefilter("error", AllTickWarning)
        with pytest.raises(NoBarsWarning, match="^AAPL.US: no 1m bars"):
            notice_scripts.no_bars_fetch()


def test_warn_user_locates_the_warning_at_the_first_frame_outside_the_package():
    with pytest.warns(AllTickWarning) as caught:
        warn_user("AAPL.US: something to act on")

    assert caught[0].filename == __file__


def test_a_handing_off_thread_posts_notices_that_the_consumer_shows_as_its_own():
    posted: list[Notice] = []

    def worker() -> None:
        with handing_to(posted.append):
            warn_user("BTCUSDT: waited", RateLimitWarning)

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        thread = threading.Thread(target=worker)
        thread.start()
        thread.join()
    assert seen == [] and posted == [Notice("BTCUSDT: waited", RateLimitWarning)]

    with pytest.warns(RateLimitWarning, match="BTCUSDT: waited") as caught:
        posted[0].show()
    assert caught[0].filename == __file__


def test_every_warning_category_is_exported_under_one_root():
    names = [name for name in backtrader_alltick.__all__ if name.endswith("Warning")]

    assert {getattr(backtrader_alltick, name) for name in names} == {
        AllTickWarning,
        NoBarsWarning,
        HistoryLimitWarning,
        FeedEndedWarning,
        MarketClosedWarning,
        SessionPolicyWarning,
        LiveOnlyWarning,
        RateLimitWarning,
        CacheWarning,
        BarLengthWarning,
        LateTradeWarning,
    }
    assert all(issubclass(getattr(backtrader_alltick, name), AllTickWarning) for name in names)
    assert issubclass(AllTickWarning, UserWarning)
