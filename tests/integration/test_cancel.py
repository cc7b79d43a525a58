"""
test_cancel.py — a client that goes away cancels its request: the handler's
pending cf_sleep returns CF_ECANCELED at once (not when the 5 s sleep would
end), the teardown hook still runs and sees cf_req_error() == CF_ECANCELED,
and the worker goes on serving.
"""
import json
import os
import socket
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import Conn, check, eq, request_bytes  # noqa: E402

srv = None


def stats():
    r = H.http(srv.port, "GET", "/stats")
    eq(r.status, 200, "/stats status")
    return json.loads(r.body)


def wait_stats(pred, timeout):
    deadline = time.monotonic() + timeout
    while True:
        s = stats()
        if pred(s):
            return s
        if time.monotonic() > deadline:
            raise AssertionError(f"stats never matched within {timeout}s: {s}")
        time.sleep(0.02)


def t_disconnect_cancels():
    before = stats()
    c = Conn(srv.port)
    c.send(request_bytes("GET", "/slowcancel"))
    wait_stats(lambda s: s["slow_started"] == before["slow_started"] + 1, 2)
    time.sleep(0.2)
    t0 = time.monotonic()
    c.close()
    s = wait_stats(lambda s: s["slow_teardown"] == before["slow_teardown"] + 1, 2)
    dt = time.monotonic() - t0
    eq(s["slow_cancelled"], before["slow_cancelled"] + 1, "teardown saw CF_ECANCELED")
    eq(s["slow_other_error"], before["slow_other_error"], "teardown saw another error")
    print(f"     teardown ran {dt * 1000:.0f} ms after the client closed")
    check(dt < 2.0, f"cancellation took {dt:.2f}s")


def t_reset_cancels():
    """A client that resets (SO_LINGER 0) instead of closing also cancels."""
    before = stats()
    c = Conn(srv.port)
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    c.send(request_bytes("GET", "/slowcancel"))
    wait_stats(lambda s: s["slow_started"] == before["slow_started"] + 1, 2)
    c.close()  # RST
    s = wait_stats(lambda s: s["slow_teardown"] == before["slow_teardown"] + 1, 2)
    eq(s["slow_cancelled"], before["slow_cancelled"] + 1, "cancelled by a reset")


def t_many_cancelled_at_once():
    before = stats()
    conns = []
    try:
        for _ in range(50):
            c = Conn(srv.port)
            c.send(request_bytes("GET", "/slowcancel"))
            conns.append(c)
        wait_stats(lambda s: s["slow_started"] == before["slow_started"] + 50, 3)
    finally:
        for c in conns:
            c.close()
    s = wait_stats(lambda s: s["slow_teardown"] == before["slow_teardown"] + 50, 3)
    eq(s["slow_cancelled"], before["slow_cancelled"] + 50, "all 50 cancelled")


def t_pipelined_request_behind_cancelled_one_not_run():
    """Closing with a second request queued behind a sleeping one: the
    sleeping one is cancelled; nothing is answered on a closed socket."""
    before = stats()
    c = Conn(srv.port)
    c.send(request_bytes("GET", "/slowcancel") + request_bytes("GET", "/slowcancel"))
    wait_stats(lambda s: s["slow_started"] == before["slow_started"] + 1, 2)
    c.close()
    s = wait_stats(lambda s: s["slow_teardown"] == before["slow_teardown"] + 1, 2)
    time.sleep(0.1)
    s = stats()
    eq(s["slow_started"], before["slow_started"] + 1, "the queued request was started anyway")
    eq(s["slow_cancelled"], before["slow_cancelled"] + 1, "cancelled")


def t_server_still_serves():
    r = H.http(srv.port, "GET", "/hello")
    eq((r.status, r.body), (200, b"Hello, World!"), "after the cancellations")
    r = H.http(srv.port, "GET", "/sleep?ms=50")
    eq((r.status, r.body), (200, b"slept 50"), "a sleep after the cancellations")


def main():
    global srv
    H.watchdog(100)
    srv = H.Server(H.app_path("testapp"), name="cancel")
    failures, errors = H.run_with_server(srv, globals())
    H.finish(failures, errors)


if __name__ == "__main__":
    main()
