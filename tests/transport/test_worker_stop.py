"""A worker's stop cuts short the REST calls it waits in, and only those: the client stays open."""

from __future__ import annotations

import threading

from backtrader_alltick import errors
from backtrader_alltick.transport.rest import RestClient
from backtrader_alltick.transport.worker_stop import WorkerStop, unguarded


def _klines_or_error(client, stop=None):
    try:
        if stop is None:
            return client.klines("BTCUSDT", "1m", 2)
        with stop.guarding():
            return client.klines("BTCUSDT", "1m", 2)
    except errors.AllTickError as e:
        return e


def test_a_stop_ends_its_workers_call_waiting_on_the_rate_limiter(alltick_sim):
    client = RestClient("alltick", alltick_sim.token, alltick_sim.rest_url, "free")
    try:
        client.klines("BTCUSDT", "1m", 2)  # the next call must wait ten seconds (Free plan)
        stop, outcome = WorkerStop(), []
        worker = threading.Thread(target=lambda: outcome.append(_klines_or_error(client, stop)))
        worker.start()

        stop.set()
        worker.join(timeout=5)

        assert not worker.is_alive()
        assert isinstance(outcome[0], errors.TransportError) and "worker making it stopped" in str(outcome[0])
        assert alltick_sim.counters["rest_requests"] == 1
    finally:
        client.close()


def test_a_stop_ends_its_workers_pause_between_retries(alltick_sim):
    alltick_sim.faults.update(server_error_burst=1_000)
    client = RestClient("alltick", alltick_sim.token, alltick_sim.rest_url, "unlimited", backoff_initial=30.0)
    try:
        stop, outcome = WorkerStop(), []
        worker = threading.Thread(target=lambda: outcome.append(_klines_or_error(client, stop)))
        worker.start()
        alltick_sim.journal.wait_for(lambda entry: entry.kind == "rest")

        stop.set()
        worker.join(timeout=5)

        assert not worker.is_alive()
        assert isinstance(outcome[0], errors.TransportError)
    finally:
        client.close()


def test_the_client_serves_on_after_a_stopped_call_and_a_call_made_for_others_runs_on(alltick_sim):
    client = RestClient("alltick", alltick_sim.token, alltick_sim.rest_url, "unlimited")
    stop = WorkerStop()
    stop.set()
    try:
        with stop.guarding():
            assert isinstance(_klines_or_error(client), errors.TransportError)
            with unguarded():
                assert len(client.klines("BTCUSDT", "1m", 2)) == 2
    finally:
        client.close()


def test_hooks_run_once_when_set_and_at_once_when_set_already():
    stop, calls = WorkerStop(), []
    forget = stop.on_set(lambda: calls.append("first"))
    stop.on_set(lambda: calls.append("second"))
    forget()

    stop.set()
    stop.set()
    stop.on_set(lambda: calls.append("late"))

    assert calls == ["second", "late"] and stop.wait(0)
