"""Smoke tests of the pieces the benchmarks share (bench/_harness.py, bench/_netem.py): the
benchmarks themselves are run by hand, so a break in these would only show there."""

from __future__ import annotations

import socket
import sys
import threading
import time
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture(scope="module", autouse=True)
def bench_on_path():  # noqa: ANN201
    sys.path.insert(0, str(BENCH))
    yield
    sys.path.remove(str(BENCH))


def test_code_state_names_the_commit_and_changed_files() -> None:
    from _harness import code_state

    state = code_state("bench")
    assert len(state["commit"]) >= 7 and isinstance(state["uncommitted"], list)


def _echo_server() -> tuple[socket.socket, int]:
    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            while data := conn.recv(65536):
                conn.sendall(data)

    threading.Thread(target=serve, daemon=True).start()
    return server, server.getsockname()[1]


def test_delay_proxy_delivers_every_byte_in_order_a_round_trip_later() -> None:
    from _netem import DelayProxy

    server, port = _echo_server()
    proxy = DelayProxy(port, rtt_ms=60)
    try:
        with socket.create_connection(("127.0.0.1", proxy.port)) as client:
            payload = bytes(range(256)) * 1000  # 256 kB: several reads on the way
            started = time.perf_counter()
            client.sendall(payload)
            received = b""
            while len(received) < len(payload):
                received += client.recv(65536)
            elapsed = time.perf_counter() - started
        assert received == payload
        assert elapsed >= 0.060  # a lower bound by construction: half the round trip each way
    finally:
        proxy.stop()
        server.close()
