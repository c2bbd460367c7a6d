"""How many tick frames per second the simulator pushes to one websocket-client reader.

Run standalone: ``python benchmarks/bench_sim_push.py [--seconds 5] [--dialect alltick]``.

The baseline, measured in the same run, is a bare loopback socket that sends pre-built
frames of the same size as fast as it can to the same kind of reader: it is the most
the reader can take.  The ratio says whether the simulator or the reader is the limit.
A third figure drains the simulator with a raw socket that only counts bytes: the
simulator's own push capacity, with no WebSocket parsing on the client side.

The reader passes ``skip_utf8_validation=True``: websocket-client's pure-Python UTF-8
check otherwise costs about three quarters of its read throughput.
"""

from __future__ import annotations

import argparse
import json
import socket
import threading
import time

import websocket

from backtrader_alltick.sim import Simulator
from backtrader_alltick.sim import websocket as ws

CRYPTO = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT", "BNBUSDT", "DOGEUSDT"]


def read_frames(connection: websocket.WebSocket, seconds: float, wanted: str) -> tuple[int, float]:
    count, started = 0, time.perf_counter()
    deadline = started + seconds
    while True:
        message = connection.recv()
        if wanted in message:
            count += 1
        if not count % 1000 and time.perf_counter() >= deadline:
            return count, time.perf_counter() - started


def measure_simulator(seconds: float, dialect: str) -> tuple[int, float, dict]:
    # About 1.25 trades per symbol-minute-second of speed: 80,000x gives ~100,000 trades/s.
    with Simulator(dialect=dialect, speed=80_000, symbols=CRYPTO) as sim:
        if dialect == "alltick":
            connection = websocket.create_connection(
                f"{sim.ws_url}/quote-b-ws-api?token={sim.token}", skip_utf8_validation=True
            )
            codes = [{"code": code} for code in CRYPTO]
            connection.send(
                json.dumps({"cmd_id": 22004, "seq_id": 1, "trace": "bench", "data": {"symbol_list": codes}})
            )
            wanted = '"cmd_id":22998'
        else:
            connection = websocket.create_connection(
                f"{sim.ws_url}/crypto", header={"token": sim.token}, skip_utf8_validation=True
            )
            connection.recv(), connection.recv()
            connection.send(
                json.dumps(
                    {"ac": "subscribe", "params": ",".join(f"{c}$BA" for c in CRYPTO), "types": "tick"}
                )
            )
            wanted = '"type":"tick"'
        count, elapsed = read_frames(connection, seconds, wanted)
        connection.close()
        return count, elapsed, sim.counters


def measure_baseline(seconds: float, frame_text: str) -> tuple[int, float]:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    stop = threading.Event()

    def serve() -> None:
        conn, _ = listener.accept()
        request = b""
        while b"\r\n\r\n" not in request:
            request += conn.recv(4096)
        key = next(
            line.split(b":", 1)[1].strip()
            for line in request.split(b"\r\n")
            if line.lower().startswith(b"sec-websocket-key")
        )
        conn.sendall(ws.handshake_response(key.decode()))
        batch = ws.text_frame(frame_text) * 500
        try:
            while not stop.is_set():
                conn.sendall(batch)
        except OSError:
            pass
        finally:
            conn.close()

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    connection = websocket.create_connection(f"ws://127.0.0.1:{port}/", skip_utf8_validation=True)
    count, elapsed = read_frames(connection, seconds, "22998")
    stop.set()
    connection.close()
    server.join(5)
    listener.close()
    return count, elapsed


def measure_capacity(seconds: float) -> float:
    """Frames per second the simulator sends to a reader that only counts bytes."""
    with Simulator(dialect="alltick", speed=400_000, symbols=CRYPTO) as sim:
        return raw_capacity(sim, seconds)


def raw_capacity(sim: Simulator, seconds: float) -> float:
    """Frames per second ``sim`` (alltick dialect) sends to a byte-counting reader of every CRYPTO symbol."""
    sock = socket.create_connection((sim.host, sim.port))
    sock.sendall(
        (
            f"GET /quote-b-ws-api?token={sim.token} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    body = json.dumps(
        {
            "cmd_id": 22004,
            "seq_id": 1,
            "trace": "bench",
            "data": {"symbol_list": [{"code": code} for code in CRYPTO]},
        }
    ).encode()
    mask = b"\x01\x02\x03\x04"
    sock.sendall(bytes([0x81, 0xFE]) + len(body).to_bytes(2, "big") + mask + ws.unmask(body, mask))
    received, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        received += len(sock.recv(1 << 20))
    elapsed = time.perf_counter() - started
    sock.close()
    counters = sim.counters
    return received / (counters["bytes_sent"] / max(1, counters["frames_sent"])) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--dialect", choices=("alltick", "itick"), default="alltick")
    args = parser.parse_args()
    sample = (
        '{"cmd_id":22998,"data":{"code":"BTCUSDT","seq":2849418001,"tick_time":1709650800498,'
        '"price":"63355.81","volume":"0.2912","turnover":"18449.211872","trade_direction":2}}'
    )
    base_count, base_elapsed = measure_baseline(args.seconds, sample)
    count, elapsed, counters = measure_simulator(args.seconds, args.dialect)
    rate, base_rate = count / elapsed, base_count / base_elapsed
    print(f"simulator ({args.dialect}): {rate:,.0f} tick frames/s to one websocket-client reader")
    print(f"baseline (bare loopback socket, same reader): {base_rate:,.0f} frames/s")
    print(f"ratio simulator/baseline: {rate / base_rate:.2f}")
    print(
        f"server counters: frames_sent={counters['frames_sent']:,}, ticks_pushed={counters['ticks_pushed']:,}"
    )
    capacity = measure_capacity(args.seconds)
    print(f"simulator push capacity (raw byte-counting reader): {capacity:,.0f} frames/s")


if __name__ == "__main__":
    main()
