"""Quota ledgers: the token's count and spacing outlive a process, turn with the service's day,
and are shared through a file or a real redis-server; clocks are injected where the rule is time."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from datetime import datetime, timezone

import pytest

from backtrader_alltick import sqlite_files
from backtrader_alltick.errors import CacheError, ConfigError, PlanLimitError, TransportError
from backtrader_alltick.plans import get_plan
from backtrader_alltick.sim.plan_table import service_plan
from backtrader_alltick.transport.quota_ledger import LEDGER_FILE, MemoryLedger, quota_key
from backtrader_alltick.transport.quota_redis import RedisLedger
from backtrader_alltick.transport.quota_sqlite import FileLedger
from backtrader_alltick.transport.ratelimit import RateLimiter

FREE = get_plan("alltick", "free")
KEY = quota_key("alltick", "https://quote.alltick.co", "secret-token-1234")


class WallClock:
    """Wall-clock seconds that move only when told to (or when a limiter sleeps)."""

    def __init__(self, moment: datetime) -> None:
        self.now = moment.timestamp()

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


def file_limiter(path, clock: WallClock, plan=FREE) -> RateLimiter:
    # A limiter as a new process would build it: a fresh ledger object on the same file.
    return RateLimiter(plan, ledger=FileLedger(path, KEY, clock=clock), monotonic=clock, sleep=clock.sleep)


def test_the_daily_count_survives_a_restart_and_resets_at_the_service_midnight(tmp_path):
    clock = WallClock(utc(2024, 3, 5, 23, 58))
    path = tmp_path / LEDGER_FILE
    first = file_limiter(path, clock)
    first.acquire("kline")
    first.acquire("trade-tick")
    first.close()

    restarted = file_limiter(path, clock)
    assert restarted.used_today() == 2
    restarted.acquire("kline")
    assert restarted.used_today() == 3

    clock.now = utc(2024, 3, 6).timestamp()  # midnight UTC: the service's new day
    assert restarted.used_today() == 0
    restarted.close()


def test_a_restarted_process_keeps_the_daily_cap_of_the_one_before(tmp_path):
    clock = WallClock(utc(2024, 3, 5, 12))
    plan = replace(FREE, per_day=2)
    first = file_limiter(tmp_path / LEDGER_FILE, clock, plan)
    first.acquire("kline")
    first.acquire("kline")
    first.close()

    with pytest.raises(PlanLimitError, match="2 calls today by every process on this token"):
        file_limiter(tmp_path / LEDGER_FILE, clock, plan).acquire("kline")


def test_a_new_process_waits_out_the_spacing_of_the_call_before_it(tmp_path):
    clock = WallClock(utc(2024, 3, 5, 12))
    first = file_limiter(tmp_path / LEDGER_FILE, clock)
    first.acquire("kline")
    clock.now += 4.0

    second = file_limiter(tmp_path / LEDGER_FILE, clock)

    assert second.acquire("trade-tick") == pytest.approx(6.05)  # Free: 10 s between any two calls, + margin


def test_a_service_hold_after_429_holds_every_process_on_the_token(tmp_path):
    clock = WallClock(utc(2024, 3, 5, 12))
    plan = get_plan("alltick", "basic")
    hit, other = (file_limiter(tmp_path / LEDGER_FILE, clock, plan) for _ in range(2))

    hit.penalize(30.0)

    assert other.delay_for("depth-tick", clock.now) == pytest.approx(30.0)


def test_a_wall_clock_set_back_does_not_stall_calls(tmp_path):
    clock = WallClock(utc(2024, 3, 5, 12))
    limiter = file_limiter(tmp_path / LEDGER_FILE, clock)
    limiter.acquire("kline")

    clock.now -= 3600.0

    assert limiter.delay_for("kline", clock.now) == pytest.approx(10.05)
    assert limiter.used_today() == 1  # the same day still: the count is not forgiven


def test_tokens_have_separate_ledgers_and_the_file_holds_no_token(tmp_path):
    clock = WallClock(utc(2024, 3, 5, 12))
    path = tmp_path / LEDGER_FILE
    mine = RateLimiter(FREE, ledger=FileLedger(path, KEY, clock=clock), monotonic=clock, sleep=clock.sleep)
    other_key = quota_key("alltick", "https://quote.alltick.co", "another-token-5678")
    theirs = RateLimiter(FREE, ledger=FileLedger(path, other_key, clock=clock), monotonic=clock)
    mine.acquire("kline")

    assert theirs.delay_for("kline", clock.now) == 0.0
    mine.close()
    theirs.close()
    content = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert b"secret-token-1234" not in content and b"another-token-5678" not in content


def test_a_file_of_another_program_is_refused_and_left_untouched(tmp_path):
    path = tmp_path / LEDGER_FILE
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE notes (body TEXT)")
    before = path.read_bytes()

    with pytest.raises(CacheError, match=f"request-quota ledger {path} is an SQLite database of another"):
        FileLedger(path, KEY)

    assert path.read_bytes() == before


# -- A new file opened by several processes at once (optimisation workers on a cold cache) ---------

LEDGER_SCHEMA = "CREATE TABLE quota (key TEXT PRIMARY KEY, state TEXT NOT NULL) WITHOUT ROWID"


def test_a_new_ledger_opens_while_another_process_holds_its_write_lock(tmp_path, monkeypatch):
    # SQLite refuses a switch to WAL at once, without its busy timeout, while another connection
    # writes the file: the other process is creating its table.
    path = tmp_path / LEDGER_FILE
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    other.execute(LEDGER_SCHEMA)
    other.execute("PRAGMA user_version = 1")
    pauses = []

    def other_commits_meanwhile(seconds: float) -> None:
        pauses.append(seconds)
        if other.in_transaction:
            other.execute("COMMIT")

    monkeypatch.setattr(sqlite_files, "_pause", other_commits_meanwhile)
    try:
        ledger = FileLedger(path, KEY)
        try:
            assert ledger.transact(lambda state, now: state.day_count) == 0
        finally:
            ledger.close()
    finally:
        other.close()
    assert pauses  # it met the other's lock


def test_a_ledger_created_by_another_process_between_two_reads_is_ours(tmp_path, monkeypatch):
    # The other process commits its table and version while this one looks the new file over.
    path = tmp_path / LEDGER_FILE
    connect = sqlite3.connect
    other = connect(path, isolation_level=None, timeout=0)
    created = []

    def other_creates_the_ledger(statement: str) -> None:
        if created == ["committed"] or not statement.startswith(("PRAGMA user_version", "PRAGMA journal")):
            return
        try:
            if not other.in_transaction:
                other.execute("BEGIN IMMEDIATE")
                other.execute(LEDGER_SCHEMA)
                other.execute("PRAGMA user_version = 1")
            other.execute("COMMIT")
            created[:] = ["committed"]
        except sqlite3.OperationalError:  # this one's reads hold the file: the other commits after them
            created[:] = ["waiting"]

    def traced_connect(*args, **kwargs):
        db = connect(*args, **kwargs)
        db.set_trace_callback(other_creates_the_ledger)
        return db

    monkeypatch.setattr(sqlite3, "connect", traced_connect)
    try:
        ledger = FileLedger(path, KEY)
        try:
            assert ledger.transact(lambda state, now: state.day_count) == 0
        finally:
            ledger.close()
    finally:
        other.close()
    assert created == ["committed"]


def test_redis_ledger_shares_spacing_and_count_across_clients_and_a_server_restart(redis_server):
    plan = get_plan("alltick", "basic")
    first = RateLimiter(plan, ledger=RedisLedger(redis_server.url, KEY))
    first.acquire("kline")
    first.acquire("trade-tick")
    waits: list[float] = []
    second = RateLimiter(
        plan,
        ledger=RedisLedger(redis_server.url, KEY),
        on_wait=lambda seconds, endpoint: waits.append(seconds),
    )

    second.acquire("kline")  # Basic: 1 s between two /kline calls, whoever makes them

    assert waits and 0 < waits[0] <= 1.05
    first.close()
    redis_server.restart()
    assert second.used_today() == 3
    second.close()


def test_an_unreachable_quota_redis_names_the_url_and_the_fix(redis_server):
    url = redis_server.url.replace("redis://", "redis://:hunter2@")
    redis_server.stop()
    limiter = RateLimiter(FREE, ledger=RedisLedger(url, KEY))

    with pytest.raises(TransportError, match="cannot be reached") as info:
        limiter.acquire("kline")

    assert "hunter2" not in str(info.value) and "ALLTICK_QUOTA_URL" in str(info.value)


def test_a_quota_redis_lost_during_a_call_does_not_lose_the_answer(redis_server, caplog):
    limiter = RateLimiter(FREE, ledger=RedisLedger(redis_server.url, KEY))
    limiter.acquire("kline")
    redis_server.stop()

    limiter.finished("kline")  # the call was answered: its answer still reaches the caller

    assert "could not be noted" in caplog.text
    with pytest.raises(TransportError, match="cannot be reached"):
        limiter.acquire("kline")


# -- which ledger a store uses ------------------------------------------------------------------------


def test_a_store_counts_in_the_file_beside_its_cache_and_a_new_store_reads_it(make_sim, make_store, tmp_path):
    sim = make_sim(dialect="alltick")
    fast = {"name": "free-x50", "endpoint_interval": 0.2, "batch_interval": 0.2, "min_spacing": 0.2}
    sim.set_plan(replace(service_plan("alltick", "free"), **fast))
    plan = replace(FREE, **fast)
    store = make_store(sim, plan=plan)
    store.rest.klines("BTCUSDT", "1m", 5)
    store.rest.klines("EURUSD", "1m", 5)
    store.stop()

    again = make_store(sim, plan=plan)

    assert again.rest.limiter.ledger.path == str(tmp_path / LEDGER_FILE)
    assert again.rest.limiter.used_today() == sim.counters["rest_requests"] == 2


@pytest.mark.parametrize(("cache", "plan"), [(False, "free"), (":memory:", "free"), (None, "unlimited")])
def test_no_cache_or_no_limits_keeps_the_count_in_this_process(alltick_sim, make_store, cache, plan):
    store = make_store(alltick_sim, plan=plan, **({} if cache is None else {"cache": cache}))

    assert isinstance(store.rest.limiter.ledger, MemoryLedger)


def test_a_plan_of_your_own_must_be_of_the_store_dialect(alltick_sim, make_store):
    with pytest.raises(ConfigError, match="plan must be a plan of the alltick dialect, was one of 'itick'"):
        make_store(alltick_sim, plan=get_plan("itick", "free"))
