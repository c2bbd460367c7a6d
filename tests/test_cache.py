"""KlineCache: bars round-trip, coverage merges, default location, two writers at once."""

from __future__ import annotations

import multiprocessing
import sqlite3
from pathlib import Path

import pytest

from backtrader_alltick import cache as cache_module
from backtrader_alltick import sqlite_files
from backtrader_alltick.cache import KlineCache, default_cache_path
from backtrader_alltick.errors import CacheError, ConfigError
from backtrader_alltick.records import Kline

MINUTE = 60_000
T0 = 1_700_000_040_000  # a minute boundary


def bar(symbol: str, index: int, close: float = 1.0, period: str = "1m") -> Kline:
    start = T0 + index * MINUTE
    return Kline(symbol, period, start, start + MINUTE, close, close + 1, close - 1, close, 10.0 + index, 5.0)


@pytest.fixture
def cache(tmp_path):
    with KlineCache(tmp_path / "klines.sqlite") as opened:
        yield opened


def test_get_returns_bars_in_half_open_range_sorted(cache):
    cache.put("alltick", [bar("BTCUSDT", i) for i in (5, 1, 3, 2, 4)])

    got = cache.get("alltick", "BTCUSDT", "1m", T0 + 2 * MINUTE, T0 + 5 * MINUTE)

    assert got == [bar("BTCUSDT", 2), bar("BTCUSDT", 3), bar("BTCUSDT", 4)]


def test_put_upserts_same_bar(cache):
    cache.put("alltick", [bar("BTCUSDT", 0, close=1.0)])
    cache.put("alltick", [bar("BTCUSDT", 0, close=2.0)])

    assert cache.get("alltick", "BTCUSDT", "1m", T0, T0 + MINUTE) == [bar("BTCUSDT", 0, close=2.0)]


def test_rows_are_keyed_by_dialect_symbol_and_period(cache):
    cache.put("alltick", [bar("BTCUSDT", 0, 1.0), bar("ETHUSDT", 0, 2.0), bar("BTCUSDT", 0, 3.0, "5m")])
    cache.put("itick", [bar("BTCUSDT", 0, 4.0)])

    assert cache.get("alltick", "BTCUSDT", "1m", T0, T0 + MINUTE)[0].close == 1.0
    assert cache.get("itick", "BTCUSDT", "1m", T0, T0 + MINUTE)[0].close == 4.0
    assert cache.get("alltick", "BTCUSDT", "5m", T0, T0 + MINUTE)[0].close == 3.0


def test_put_refuses_a_forming_bar_when_now_is_given(cache):
    with pytest.raises(ConfigError, match="still forming"):
        cache.put("alltick", [bar("BTCUSDT", 0), bar("BTCUSDT", 1)], now_ms=T0 + MINUTE + 1)

    assert cache.get("alltick", "BTCUSDT", "1m", T0, T0 + 10 * MINUTE) == []


def test_missing_is_everything_before_any_coverage(cache):
    assert cache.missing("alltick", "AAPL.US", "1m", T0, T0 + 10 * MINUTE) == [(T0, T0 + 10 * MINUTE)]


def test_coverage_without_bars_means_closed_market_not_missing(cache):
    cache.mark_covered("alltick", "AAPL.US", "1m", T0, T0 + 60 * MINUTE)

    assert cache.missing("alltick", "AAPL.US", "1m", T0, T0 + 60 * MINUTE) == []
    assert cache.get("alltick", "AAPL.US", "1m", T0, T0 + 60 * MINUTE) == []


def test_mark_covered_merges_overlapping_and_touching_ranges(cache):
    def cover(low: int, high: int) -> None:
        cache.mark_covered("alltick", "EURUSD", "1m", T0 + low * MINUTE, T0 + high * MINUTE)

    cover(0, 10)
    cover(20, 30)
    cover(10, 12)  # touches the first range
    cover(25, 40)  # overlaps the second
    cover(50, 60)

    ranges = cache.covered("alltick", "EURUSD", "1m", T0 - MINUTE, T0 + 100 * MINUTE)
    assert ranges == [
        (T0, T0 + 12 * MINUTE),
        (T0 + 20 * MINUTE, T0 + 40 * MINUTE),
        (T0 + 50 * MINUTE, T0 + 60 * MINUTE),
    ]

    cover(5, 55)  # swallows everything into one range
    assert cache.covered("alltick", "EURUSD", "1m", T0 - MINUTE, T0 + 100 * MINUTE) == [
        (T0, T0 + 60 * MINUTE)
    ]


def test_missing_lists_the_gaps_between_covered_ranges(cache):
    cache.mark_covered("alltick", "EURUSD", "1m", T0 + 10 * MINUTE, T0 + 20 * MINUTE)
    cache.mark_covered("alltick", "EURUSD", "1m", T0 + 30 * MINUTE, T0 + 40 * MINUTE)

    gaps = cache.missing("alltick", "EURUSD", "1m", T0, T0 + 35 * MINUTE)

    assert gaps == [(T0, T0 + 10 * MINUTE), (T0 + 20 * MINUTE, T0 + 30 * MINUTE)]
    assert cache.missing("itick", "EURUSD", "1m", T0, T0 + MINUTE) == [(T0, T0 + MINUTE)]


def test_info_summarises_each_series(cache):
    cache.put("alltick", [bar("BTCUSDT", i) for i in range(3)])
    cache.put("itick", [bar("AAPL", 7)])

    assert cache.info() == [
        {
            "dialect": "alltick",
            "symbol": "BTCUSDT",
            "period": "1m",
            "bars": 3,
            "first": T0,
            "last": T0 + 3 * MINUTE,
        },
        {
            "dialect": "itick",
            "symbol": "AAPL",
            "period": "1m",
            "bars": 1,
            "first": T0 + 7 * MINUTE,
            "last": T0 + 8 * MINUTE,
        },
    ]


def test_clear_one_symbol_keeps_the_others(cache):
    cache.put("alltick", [bar("BTCUSDT", 0), bar("ETHUSDT", 0)])
    cache.mark_covered("alltick", "BTCUSDT", "1m", T0, T0 + MINUTE)
    cache.mark_covered("alltick", "ETHUSDT", "1m", T0, T0 + MINUTE)

    cache.clear("BTCUSDT")

    assert [row["symbol"] for row in cache.info()] == ["ETHUSDT"]
    assert cache.missing("alltick", "BTCUSDT", "1m", T0, T0 + MINUTE) == [(T0, T0 + MINUTE)]
    assert cache.missing("alltick", "ETHUSDT", "1m", T0, T0 + MINUTE) == []
    cache.clear()
    assert cache.info() == []


def test_bars_and_coverage_survive_reopening(tmp_path):
    path = tmp_path / "nested" / "klines.sqlite"
    with KlineCache(path) as first:
        first.put("alltick", [bar("BTCUSDT", 0)])
        first.mark_covered("alltick", "BTCUSDT", "1m", T0, T0 + MINUTE)

    with KlineCache(path) as second:
        assert second.get("alltick", "BTCUSDT", "1m", T0, T0 + MINUTE) == [bar("BTCUSDT", 0)]
        assert second.missing("alltick", "BTCUSDT", "1m", T0, T0 + MINUTE) == []


def test_memory_cache_writes_no_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with KlineCache(":memory:") as memory:
        memory.put("alltick", [bar("BTCUSDT", 0)])
        assert len(memory.get("alltick", "BTCUSDT", "1m", T0, T0 + MINUTE)) == 1
    assert list(tmp_path.iterdir()) == []


def test_default_path_follows_xdg_cache_home_on_linux(tmp_path, monkeypatch):
    monkeypatch.setattr(cache_module.sys, "platform", "linux")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))

    assert default_cache_path() == tmp_path / "backtrader_alltick" / "klines.sqlite"

    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setattr(cache_module.Path, "home", lambda: tmp_path / "home")
    assert default_cache_path() == tmp_path / "home" / ".cache" / "backtrader_alltick" / "klines.sqlite"


def test_default_path_on_macos_and_windows(tmp_path, monkeypatch):
    monkeypatch.setattr(cache_module.Path, "home", lambda: tmp_path)
    monkeypatch.setattr(cache_module.sys, "platform", "darwin")
    assert default_cache_path() == tmp_path / "Library" / "Caches" / "backtrader_alltick" / "klines.sqlite"

    monkeypatch.setattr(cache_module.sys, "platform", "win32")
    monkeypatch.setenv("LOCALAPPDATA", str(tmp_path / "Local"))
    assert default_cache_path() == tmp_path / "Local" / "backtrader_alltick" / "klines.sqlite"


def test_default_cache_is_created_in_the_user_cache_directory(tmp_path, monkeypatch):
    monkeypatch.setattr(cache_module.sys, "platform", "linux")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))

    with KlineCache() as default:
        default.put("alltick", [bar("BTCUSDT", 0)])

    assert (tmp_path / "backtrader_alltick" / "klines.sqlite").is_file()


def _write_concurrently(path: str, symbol: str, start, rounds: int) -> None:
    start.wait(30)
    with KlineCache(path) as shared:
        for index in range(rounds):
            shared.put("alltick", [bar(symbol, index), bar("SHARED", index, close=float(index))])
            shared.mark_covered("alltick", "SHARED", "1m", T0 + index * MINUTE, T0 + (index + 1) * MINUTE)
            shared.get("alltick", symbol, "1m", T0, T0 + (index + 1) * MINUTE)


def test_two_processes_write_the_same_file_at_once(tmp_path):
    path = str(tmp_path / "klines.sqlite")
    KlineCache(path).close()
    context = multiprocessing.get_context("spawn")
    start = context.Event()
    rounds = 150
    workers = [
        context.Process(target=_write_concurrently, args=(path, symbol, start, rounds))
        for symbol in ("BTCUSDT", "ETHUSDT")
    ]
    for worker in workers:
        worker.start()
    start.set()
    for worker in workers:
        worker.join(60)

    assert [worker.exitcode for worker in workers] == [0, 0]
    with KlineCache(path) as merged:
        counts = {row["symbol"]: row["bars"] for row in merged.info()}
        assert counts == {"BTCUSDT": rounds, "ETHUSDT": rounds, "SHARED": rounds}
        assert merged.missing("alltick", "SHARED", "1m", T0, T0 + rounds * MINUTE) == []
        assert merged.covered("alltick", "SHARED", "1m", 0, T0 * 2) == [(T0, T0 + rounds * MINUTE)]
    assert Path(path).is_file()


def test_a_new_file_opens_while_another_process_creates_its_tables(tmp_path, monkeypatch):
    # Optimisation workers on a cold cache open one new file at once.  While one writes its tables,
    # SQLite refuses the other's switch to WAL at once, without waiting its busy timeout.
    path = tmp_path / "klines.sqlite"
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    other.execute("PRAGMA user_version = 2")
    pauses = []

    def other_commits_meanwhile(seconds: float) -> None:
        pauses.append(seconds)
        if other.in_transaction:
            other.execute("COMMIT")

    monkeypatch.setattr(sqlite_files, "_pause", other_commits_meanwhile)
    try:
        with KlineCache(path) as opened:
            opened.put("alltick", [bar("BTCUSDT", 0)])
            assert opened.get("alltick", "BTCUSDT", "1m", T0, T0 + MINUTE) == [bar("BTCUSDT", 0)]
    finally:
        other.close()
    assert pauses  # it met the other's lock


# -- Files that are not ours --------------------------------------------------------------------


def sqlite_file(path: Path, *statements: str) -> None:
    """Another program's SQLite database at ``path``, made by ``statements``."""
    import sqlite3

    db = sqlite3.connect(path)
    for statement in statements:
        db.execute(statement)
    db.commit()
    db.close()


def foreign_sqlite(path: Path) -> None:
    sqlite_file(
        path,
        "CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT)",
        "INSERT INTO notes (text) VALUES ('keep me')",
        "PRAGMA user_version = 7",
    )


def lookalike_sqlite(path: Path) -> None:
    sqlite_file(
        path,
        "CREATE TABLE klines (id INTEGER PRIMARY KEY, text TEXT)",
        "CREATE TABLE coverage (day TEXT, hours REAL)",
        "INSERT INTO klines (text) VALUES ('keep me')",
    )


UNUSABLE = {
    "directory": (lambda path: path.mkdir(), "is a directory"),
    "garbage": (lambda path: path.write_bytes(bytes(range(256)) * 20), "is not a K-line cache"),
    "text": (lambda path: path.write_text("symbol,close\nBTCUSDT,1\n" * 200), "is not a K-line cache"),
    "other schema": (foreign_sqlite, "SQLite database of another program .*tables: notes"),
    "our table names, other columns": (
        lookalike_sqlite,
        "SQLite database of another program .*table coverage has columns day",
    ),
    "parent is a file": (lambda path: path.parent.write_text("x"), "cannot be created"),
}


@pytest.mark.parametrize("kind", UNUSABLE)
def test_a_path_that_is_not_our_cache_is_a_cache_error_and_is_left_untouched(tmp_path, kind):
    make, problem = UNUSABLE[kind]
    path = tmp_path / "place" / "klines.sqlite"
    path.parent.mkdir()
    if kind == "parent is a file":
        path.parent.rmdir()
    make(path)
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}

    with pytest.raises(CacheError, match=problem) as info:
        KlineCache(path)

    assert str(path) in str(info.value)
    assert "--cache off" in str(info.value) and "another file" in str(info.value)
    assert info.value.__cause__ is None
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before


def test_a_cache_of_a_newer_schema_is_refused_untouched(tmp_path):
    path = tmp_path / "klines.sqlite"
    KlineCache(path).close()
    import sqlite3

    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version = 99")
    before = path.read_bytes()

    with pytest.raises(CacheError, match="newer backtrader-alltick"):
        KlineCache(path)
    assert path.read_bytes() == before


def test_an_empty_file_and_our_own_file_open(tmp_path):
    path = tmp_path / "klines.sqlite"
    path.write_bytes(b"")
    with KlineCache(path) as first:
        first.put("alltick", [bar("BTCUSDT", 0)])
    with KlineCache(path) as again:
        assert again.get("alltick", "BTCUSDT", "1m", T0, T0 + MINUTE) == [bar("BTCUSDT", 0)]


def test_a_place_where_no_file_can_be_written_is_a_cache_error():
    # /proc refuses new files even to root, where a read-only mode bit would not.
    with pytest.raises(CacheError, match=r"/proc/self/klines.sqlite cannot be opened for writing") as info:
        KlineCache("/proc/self/klines.sqlite")

    assert "--cache off" in str(info.value)


def test_daily_bars_of_an_older_cache_version_are_dropped_on_open(tmp_path):
    # Version 1 stored daily bars closing at the weekday's regular close, even on an early close.
    path = tmp_path / "klines.sqlite"
    daily = Kline("AAPL.US", "1d", 1_688_356_800_000, 1_688_414_400_000, 1, 2, 0.5, 1.5, 10)
    minute = Kline("AAPL.US", "1m", 1_688_391_000_000, 1_688_391_060_000, 1, 2, 0.5, 1.5, 10)
    with KlineCache(path) as old:
        old.put("alltick", [daily, minute])
        old.mark_covered("alltick", "AAPL.US", "1d", daily.start, daily.start + 86_400_000)
        old._db.execute("PRAGMA user_version = 1")

    with KlineCache(path) as cache:
        assert cache.get("alltick", "AAPL.US", "1d", 0, 2**62) == []
        assert cache.missing("alltick", "AAPL.US", "1d", daily.start, daily.start + 86_400_000) != []
        assert cache.get("alltick", "AAPL.US", "1m", 0, 2**62) == [minute]
