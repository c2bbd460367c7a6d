"""Fault injection and run-time controls: each fault does what it says and is counted."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
import websocket

from backtrader_alltick.errors import ConfigError
from backtrader_alltick.sim import Faults

KLINE_QUERY = json.dumps(
    {
        "trace": "f",
        "data": {
            "code": "BTCUSDT",
            "kline_type": 1,
            "kline_timestamp_end": 0,
            "query_kline_num": 1,
            "adjust_type": 0,
        },
    }
)


def kline(sim, token=None):
    return requests.get(
        sim.rest_url + "/quote-b-api/kline",
        timeout=10,
        params={"token": token or sim.token, "query": KLINE_QUERY},
    )


def stream(sim, codes=("BTCUSDT", "ETHUSDT")):
    connection = websocket.create_connection(f"{sim.ws_url}/quote-b-ws-api?token={sim.token}", timeout=10)
    connection.send(
        json.dumps(
            {
                "cmd_id": 22004,
                "seq_id": 1,
                "trace": "f",
                "data": {"symbol_list": [{"code": code} for code in codes]},
            }
        )
    )
    assert json.loads(connection.recv())["cmd_id"] == 22005
    return connection


def read_until_closed(connection) -> list[str]:
    texts = []
    try:
        while True:
            text = connection.recv()
            if not connection.connected:
                break
            texts.append(text)
    except (websocket.WebSocketConnectionClosedException, ConnectionError):
        pass
    connection.close()
    return texts


def test_rate_limit_burst_answers_ret_605_with_http_200_by_default(alltick_sim):
    alltick_sim.faults.rate_limit_burst = 2

    replies = [kline(alltick_sim) for _ in range(3)]

    assert [(r.status_code, r.json()["ret"]) for r in replies] == [(200, 605), (200, 605), (200, 200)]
    assert replies[0].json()["msg"] == "too many requests" and "Retry-After" in replies[0].headers
    assert alltick_sim.counters["faults"]["rate_limit_burst"] == 2
    assert alltick_sim.counters["errors_sent"]["605"] == 2


def test_rate_limit_reply_can_be_http_429_with_retry_after(make_sim):
    sim = make_sim(dialect="alltick", faults={"rate_limit_reply": "http429", "rate_limit_burst": 1})

    reply = kline(sim)

    assert reply.status_code == 429 and reply.json()["ret"] == 429
    assert int(reply.headers["Retry-After"]) >= 1


def test_plan_rate_limit_uses_wall_time_and_the_selected_reply(make_sim):
    sim = make_sim(dialect="alltick", plan="basic", speed=10_000)  # a fast market clock changes nothing

    first, second = kline(sim), kline(sim)

    assert (first.json()["ret"], second.json()["ret"]) == (200, 605)


def test_a_burst_within_the_plans_rate_per_second_is_answered(make_sim):
    # Professional's /kline takes 20 calls a second (alltick.md 6.1): ten sent at once arrive a few
    # milliseconds apart, and all are within the rate.
    sim = make_sim(dialect="alltick", plan="professional")
    start = threading.Barrier(10)

    def call(_: int) -> int:
        start.wait()
        return kline(sim).json()["ret"]

    with ThreadPoolExecutor(10) as pool:
        rets = list(pool.map(call, range(10)))

    assert rets == [200] * 10
    assert sim.counters["errors_sent"] == {}


def test_server_error_burst_answers_5xx(sim):
    sim.faults.update(server_error_burst=1, server_error_status=502)

    reply = requests.get(sim.rest_url + "/anything", timeout=10)

    assert reply.status_code == 502
    assert sim.counters["faults"] == {"server_error_burst": 1}


def test_slow_responses_outlast_a_client_timeout_shorter_than_the_delay(alltick_sim):
    alltick_sim.faults.slow_ms = 300

    with pytest.raises(requests.ReadTimeout):
        requests.get(
            alltick_sim.rest_url + "/quote-b-api/kline",
            timeout=(10, 0.05),
            params={"token": alltick_sim.token, "query": KLINE_QUERY},
        )
    assert kline(alltick_sim).json()["ret"] == 200  # a patient client gets its answer


def test_reject_token_refuses_a_valid_token(alltick_sim):
    alltick_sim.faults.reject_token = True

    assert kline(alltick_sim).json()["ret"] == 401


def test_tokens_can_be_added_and_revoked(alltick_sim):
    alltick_sim.add_token("second")
    accepted = kline(alltick_sim, "second").json()["ret"]
    alltick_sim.revoke_token("second")

    assert (accepted, kline(alltick_sim, "second").json()["ret"]) == (200, 401)


def test_drop_after_frames_cuts_the_socket_after_n_pushes(make_sim):
    sim = make_sim(dialect="alltick", speed=600, faults=Faults(drop_after_frames=20))
    connection = stream(sim)

    pushes = read_until_closed(connection)

    assert len(pushes) == 20  # pushes only: the subscribe ack does not count
    assert sim.counters["faults"]["drop_after_frames"] == 1


def test_drop_every_cuts_every_socket(make_sim):
    sim = make_sim(dialect="alltick", faults={"drop_every": 0.2})

    # A client that reconnects is cut again.  read_until_closed returns only when the server
    # closes the socket; a socket left open raises WebSocketTimeoutException after 10 s.
    for _ in range(2):
        read_until_closed(stream(sim))


def test_drop_connections_cuts_open_sockets_now(alltick_sim):
    connection = stream(alltick_sim)

    assert alltick_sim.drop_connections() == 1
    read_until_closed(connection)
    alltick_sim.journal.wait_for(lambda e: e.kind == "ws_close")
    assert alltick_sim.counters["ws_connections_open"] == 0


def test_ignore_heartbeats_stops_the_answers(make_sim):
    sim = make_sim(dialect="itick", faults={"ignore_heartbeats": True})
    connection = websocket.create_connection(sim.ws_url + "/stock", header={"token": sim.token}, timeout=10)
    connection.recv(), connection.recv()

    connection.send(json.dumps({"ac": "ping", "params": "1"}))
    connection.send(json.dumps({"ac": "subscribe", "params": "AAPL$US", "types": "tick"}))

    assert json.loads(connection.recv())["resAc"] == "subscribe"  # no pong came before the ack
    assert sim.counters["faults"]["ignore_heartbeats"] == 1
    connection.close()


def test_malformed_frames_are_not_json(make_sim):
    sim = make_sim(dialect="alltick", speed=600)
    connection = stream(sim)
    sim.faults.malformed_frames = 2

    texts = [connection.recv() for _ in range(6)]
    connection.close()

    broken = [text for text in texts if not _is_json(text)]
    assert len(broken) == 2
    assert sim.counters["faults"]["malformed_frames"] == 2


def test_truncated_frame_is_cut_mid_frame(make_sim):
    sim = make_sim(dialect="alltick", speed=600)
    connection = stream(sim)
    sim.faults.truncated_frames = 1

    with pytest.raises((websocket.WebSocketConnectionClosedException, ConnectionError)):
        for _ in range(10_000):
            connection.recv()

    assert sim.counters["faults"]["truncated_frames"] == 1
    connection.close()


def test_duplicate_and_reorder_disturb_the_tick_sequence(make_sim):
    sim = make_sim(dialect="alltick", speed=600, faults={"duplicate_every": 5, "reorder_every": 7})
    connection = stream(sim, ["BTCUSDT"])

    seqs = [json.loads(connection.recv())["data"]["seq"] for _ in range(140)]
    connection.close()

    trades = len(set(seqs))
    assert len(seqs) - trades >= trades // 5 - 1  # every fifth sent twice (the last may be in flight)
    # Every seventh passes the one before, also where they were pushed in different steps.
    assert sum(later < earlier for earlier, later in zip(seqs, seqs[1:])) >= trades // 7 - 1
    assert {"duplicate_every", "reorder_every"} <= set(sim.counters["faults"])


def test_unknown_fault_names_are_refused(alltick_sim):
    with pytest.raises(ConfigError, match="fault must be one of"):
        alltick_sim.faults.update(explode=True)


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True
