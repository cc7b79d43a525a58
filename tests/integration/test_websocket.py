"""
test_websocket.py — WebSocket sessions over real sockets (the /ws echo of
tests/integration/apps/streamapp.c), with python3-websockets and a raw
socket client for frames a proper client will not send:
  echo         text, binary, unicode, a 500 KB message, a fragmented one
  control      a ping is answered; the server's close (4000 "bye"); the
               client's close (1000) seen by the session
  failures     a failing session closes with 1011; a message over the
               route's limit with 1009; text that is not UTF-8 with 1007
  handshake    a plain GET, a wrong version, a bad key: 426 / 426 / 400
  the client   vanishing without a close frame cancels the session
  flow         a session that stops reading while the client sends 10 MB:
               nothing is lost, everything echoed in order afterwards
  many         200 sessions at once
  stop         SIGTERM closes open sessions with 1001 and the worker exits
"""
import asyncio
import base64
import json
import os
import signal
import struct
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import Conn, check, eq, request_bytes  # noqa: E402

websockets = None  # python3-websockets, imported by main()
APP = H.app_path("streamapp")
srv = None


def stats():
    return json.loads(H.http(srv.port, "GET", "/stats").body)


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


def ws_url(path="/ws"):
    return f"ws://127.0.0.1:{srv.port}{path}"


def t_echo():
    async def go():
        async with websockets.connect(ws_url(), max_size=None) as ws:
            for msg in ["hello", b"\x00\x01\xff", "héllo wörld ✓ 🚀", "x" * 500_000]:
                await ws.send(msg)
                eq(await ws.recv(), msg, f"echo of a {type(msg).__name__} of {len(msg)}")
            await ws.send(["frag-1 ", "frag-2 ", "frag-3"])  # one message in three frames
            eq(await ws.recv(), "frag-1 frag-2 frag-3", "fragments joined")
            pong = await ws.ping(b"are you there")
            await asyncio.wait_for(pong, 5)
    run(go())


def t_server_close_and_client_close():
    async def server_closes():
        async with websockets.connect(ws_url()) as ws:
            await ws.send("close")
            try:
                await ws.recv()
                raise AssertionError("a message after the server's close")
            except websockets.ConnectionClosed as e:
                eq((e.rcvd.code, e.rcvd.reason), (4000, "bye"), "the server's close frame")
    run(server_closes())
    H.wait_until(lambda: stats()["ws_last_result"] == -1003, 3, what="the session saw CF_ECLOSED")

    async def client_closes():
        ws = await websockets.connect(ws_url())
        await ws.send("hi")
        await ws.recv()
        await ws.close(code=1000, reason="done")
    run(client_closes())
    H.wait_until(lambda: stats()["ws_last_close"] == 1000, 3, what="the session saw the 1000")


def close_code_after(send):
    async def go():
        async with websockets.connect(ws_url(), max_size=None) as ws:
            await ws.send(send)
            try:
                await ws.recv()
            except websockets.ConnectionClosed as e:
                return e.rcvd.code if e.rcvd else None
        return None
    return run(go())


def t_failing_session_1011():
    eq(close_code_after("fail"), 1011, "close code of a failed session")


def t_too_big_1009():
    eq(close_code_after(b"z" * (1024 * 1024 + 1)), 1009, "close code of a message over 1 MiB")


def raw_session():
    """A handshaken raw connection: (Conn, leftover bytes)."""
    key = base64.b64encode(os.urandom(16)).decode()
    c = Conn(srv.port)
    c.send(request_bytes("GET", "/ws", headers={"Upgrade": "websocket", "Connection": "Upgrade",
                                                "Sec-WebSocket-Key": key,
                                                "Sec-WebSocket-Version": "13"}))
    r = c.read_response(head_request=True)
    eq(r.status, 101, "handshake status")
    return c


def frame(opcode, payload, fin=True):
    mask = os.urandom(4)
    head = bytes([(0x80 if fin else 0) | opcode])
    n = len(payload)
    head += bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + struct.pack("!H", n)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def t_invalid_utf8_1007():
    for bad in [b"ok \xc3\x28 bad continuation", b"\xc0\xaf overlong slash",
                b"\xed\xa0\x80 a surrogate", b"\xf4\x90\x80\x80 above U+10FFFF", b"cut \xe2\x82"]:
        c = raw_session()
        try:
            c.send(frame(0x1, bad))
            closed, data = c.wait_closed(5)
            check(data[:1] == b"\x88", f"{bad!r}: no close frame: {data[:20]!r}")
            eq(struct.unpack("!H", data[2:4])[0], 1007, f"close code for {bad!r}")
        finally:
            c.close()
    c = raw_session()  # and the same bytes as a binary message are fine
    try:
        c.send(frame(0x2, b"\xc0\xaf"))
        eq(c._read_until(b"\xc0\xaf", time.monotonic() + 5)[:2], b"\x82\x02", "binary echo frame")
    finally:
        c.close()


def t_handshake_refusals():
    r = H.http(srv.port, "GET", "/ws")
    eq((r.status, r.header("Upgrade")), (426, "websocket"), "a plain GET")
    base = {"Upgrade": "websocket", "Connection": "keep-alive, Upgrade"}
    r = H.http(srv.port, "GET", "/ws", headers={**base, "Sec-WebSocket-Version": "8",
                                                "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
    eq((r.status, r.header("Sec-WebSocket-Version")), (426, "13"), "version 8")
    r = H.http(srv.port, "GET", "/ws", headers={**base, "Sec-WebSocket-Version": "13",
                                                "Sec-WebSocket-Key": "short"})
    eq(r.status, 400, "a bad key")
    # RFC 6455's example key and its accept value
    with Conn(srv.port) as c:
        c.send(request_bytes("GET", "/ws", headers={**base, "Sec-WebSocket-Version": "13",
                                                    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}))
        r = c.read_response(head_request=True)
        eq((r.status, r.header("Sec-WebSocket-Accept")), (101, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
           "the RFC's example")


def t_client_vanishing_cancels():
    c = raw_session()
    c.send(frame(0x1, b"ping?"))
    c._read_until(b"ping?", time.monotonic() + 5)
    c.close()  # no close frame
    H.wait_until(lambda: stats()["ws_last_result"] == -125, 3, what="the session cancelled")


def t_flow_control():
    async def go():
        async with websockets.connect(ws_url(), max_size=None, write_limit=2**20) as ws:
            await ws.send("hold")  # the session sleeps 2 s without reading
            sent = [bytes([i]) * 256 * 1024 for i in range(40)]
            for m in sent:
                await ws.send(m)
            for i, m in enumerate(sent):
                eq(await ws.recv(), m, f"echo {i} after the hold")
    run(go())


def t_many_sessions():
    async def one(i):
        async with websockets.connect(ws_url()) as ws:
            for k in range(5):
                await ws.send(f"{i}:{k}")
                eq(await ws.recv(), f"{i}:{k}", "echo")

    async def go():
        await asyncio.gather(*(one(i) for i in range(200)))
    run(go())


def t_sigterm_closes_1001():
    global srv
    main_srv = srv
    srv = H.Server(APP, args=["--workers", "1"], name="ws-stop")
    try:
        srv.start()

        async def go():
            async with websockets.connect(ws_url()) as ws:
                await ws.send("before")
                await ws.recv()
                t0 = time.monotonic()
                srv.signal(signal.SIGTERM)
                try:
                    await ws.recv()
                except websockets.ConnectionClosed as e:
                    return e.rcvd.code if e.rcvd else None, time.monotonic() - t0
            return None, 0
        code, dt = run(go())
        eq(code, 1001, "close code on a graceful stop")
        check(dt < 2, f"the session was closed {dt:.2f}s after SIGTERM")
        print(f"     closed with 1001 {dt * 1000:.0f} ms after SIGTERM")
        H.stop_and_check(srv, expect_status=0)
    finally:
        srv = main_srv


def main():
    global srv, websockets
    H.watchdog(200)
    try:
        websockets = H.websockets_client()
    except AssertionError as e:
        print(f"FAIL {e}")
        sys.exit(1)
    srv = H.Server(APP, args=["--workers", "1"], name="websocket")
    failures, errors = H.run_with_server(srv, globals())
    H.finish(failures, errors)


if __name__ == "__main__":
    main()
