"""
test_stream.py — streaming bodies and Server-Sent Events over real sockets
(tests/integration/apps/streamapp.c), with raw sockets, python3-requests
and curl as clients:
  framing      chunked pieces and the last chunk, keep-alive afterwards,
               a pipelined request answered after the stream, HTTP/1.0
               (no chunking, ended by close), HEAD (head only);
  timing       pieces reach the client as they are written, not at the end;
  SSE          event-stream format read by curl -N, Last-Event-ID;
  the client   leaving mid-stream cancels the producer (CF_ECANCELED);
  backpressure a client that reads nothing holds the producer at a few MB
               (not the 256 MB it asked for), others are served meanwhile,
               then it reads everything intact; with --send-timeout 1 such
               a client is dropped and the producer sees CF_ETIMEDOUT;
  failures     a failing producer cuts the body (no last chunk);
  access log   one line per stream, after it, with the body's bytes;
  stop         SIGTERM ends an endless event stream properly at once (not
               after the graceful timeout), and lets a finite stream finish.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import Conn, check, eq, request_bytes  # noqa: E402

APP = H.app_path("streamapp")
srv = None


def stats():
    r = H.http(srv.port, "GET", "/stats")
    eq(r.status, 200, "/stats status")
    return json.loads(r.body)


def wait_stats(pred, timeout, what):
    H.wait_until(lambda: pred(stats()), timeout, what=what)
    return stats()


def t_chunked_then_keepalive():
    with Conn(srv.port) as c:
        c.send(request_bytes("GET", "/count?n=3"))
        r = c.read_response()
        eq(r.status, 200, "status")
        eq(r.header("Transfer-Encoding"), "chunked", "Transfer-Encoding")
        eq(r.header("Content-Length"), None, "Content-Length on a streamed body")
        eq(r.body, b"piece 1\npiece 2\npiece 3\n", "de-chunked body")
        # the same connection serves the next request
        c.send(request_bytes("GET", "/hello"))
        eq(c.read_response().body, b"Hello, World!", "next request on the connection")


def t_pipelined_after_stream():
    with Conn(srv.port) as c:
        c.send(request_bytes("GET", "/count?n=2&ms=50") + request_bytes("GET", "/hello"))
        eq(c.read_response().body, b"piece 1\npiece 2\n", "the stream first")
        eq(c.read_response().body, b"Hello, World!", "then the pipelined request")


def t_http10_close_delimited():
    with Conn(srv.port) as c:
        c.send(request_bytes("GET", "/count?n=2", version="HTTP/1.0"))
        r = c.read_response()
        eq(r.header("Transfer-Encoding"), None, "no chunking for HTTP/1.0")
        check(r.closes, f"no Connection: close: {r.headers}")
        eq(r.body, b"piece 1\npiece 2\n", "body up to the close")


def t_head_has_no_body():
    before = stats()["count_done"]
    with Conn(srv.port) as c:
        c.send(request_bytes("HEAD", "/count?n=2"))
        r = c.read_response(head_request=True)
        eq(r.status, 200, "HEAD status")
        c.send(request_bytes("GET", "/hello"))
        eq(c.read_response().body, b"Hello, World!", "no body bytes before the next response")
    eq(stats()["count_done"], before, "the producer ran for HEAD")


def t_pieces_arrive_as_written():
    import requests  # python3-requests
    t0 = time.monotonic()
    seen = []
    with requests.get(srv.url("/count?n=5&ms=200"), stream=True, timeout=10) as r:
        for line in r.iter_lines():
            seen.append((time.monotonic() - t0, line))
    eq([x for _, x in seen], [f"piece {i}".encode() for i in range(1, 6)], "lines")
    first, last = seen[0][0], seen[-1][0]
    print(f"     first piece after {first * 1000:.0f} ms, last after {last * 1000:.0f} ms")
    check(last - first > 0.6, f"pieces arrived together ({first:.2f}s, {last:.2f}s)")


def t_sse_with_curl():
    curl = shutil.which("curl")
    check(curl, "curl is not installed")
    out = subprocess.run([curl, "-sN", "--max-time", "10", srv.url("/events?n=3&ms=20")],
                         stdout=subprocess.PIPE, timeout=15).stdout
    eq(out, b"id: 1\ndata: tick 1\n\nid: 2\ndata: tick 2\n\nid: 3\ndata: tick 3\n\n", "event stream")
    hdr = subprocess.run([curl, "-sN", "-D", "-", "-o", "/dev/null", "--max-time", "10",
                          "-H", "Last-Event-ID: 41", srv.url("/events?n=1")],
                         stdout=subprocess.PIPE, timeout=15).stdout.decode()
    check("content-type: text/event-stream" in hdr.lower(), f"headers: {hdr}")
    check("cache-control: no-cache" in hdr.lower(), f"headers: {hdr}")
    r = H.http(srv.port, "GET", "/events?n=1", headers={"Last-Event-ID": "41"})
    eq(r.body, b"id: 42\ndata: tick 42\n\n", "resumed after Last-Event-ID")


def t_client_leaving_cancels_producer():
    before = stats()["events_cancelled"]
    c = Conn(srv.port)
    c.send(request_bytes("GET", "/events?n=0&ms=50"))
    c._read_until(b"tick 2", time.monotonic() + 5)
    t0 = time.monotonic()
    c.close()
    wait_stats(lambda s: s["events_cancelled"] == before + 1, 3, "the producer cancelled")
    print(f"     producer ended {(time.monotonic() - t0) * 1000:.0f} ms after the client left")


def flood_client(mb, rcvbuf=65536):
    """A connection asking for `mb` MiB that reads nothing yet."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(10)
    s.connect(("127.0.0.1", srv.port))
    s.sendall(request_bytes("GET", f"/flood?mb={mb}"))
    return s


def t_backpressure():
    s = flood_client(256)
    try:
        wait_stats(lambda st: st["flood_running"] == 1 and st["flood_written"] > 0, 5, "flood started")
        time.sleep(1.0)
        held = stats()["flood_written"]
        lat = []
        for _ in range(20):
            t0 = time.monotonic()
            eq(H.http(srv.port, "GET", "/hello").status, 200, "/hello during the flood")
            lat.append(time.monotonic() - t0)
        time.sleep(0.5)
        held2 = stats()["flood_written"]
        print(f"     producer held at {held / 2**20:.1f} MiB then {held2 / 2**20:.1f} MiB of 256 "
              f"while the client read nothing; /hello worst {max(lat) * 1000:.1f} ms")
        check(held2 < 16 * 2**20, f"the producer wrote {held2} bytes to a client reading nothing")
        eq(held2, held, "the producer moved on while the client read nothing")
        # Now read it all: every byte, in order.
        got, total, pos = b"", 0, 0
        head = b""
        while b"\r\n\r\n" not in head:
            head += s.recv(65536)
        i = head.index(b"\r\n\r\n") + 4
        check(b"transfer-encoding: chunked" in head[:i].lower(), f"head: {head[:i]!r}")
        got = head[i:]
        pattern = bytes(range(256)) * 256  # one 64 KiB piece
        while True:  # de-chunk as it comes
            while b"\r\n" not in got[pos:]:
                got = got[pos:] + s.recv(1 << 20)
                pos = 0
            j = got.index(b"\r\n", pos)
            size = int(got[pos:j], 16)
            pos = j + 2
            if size == 0:
                break
            while len(got) - pos < size + 2:
                got = got[pos:] + s.recv(1 << 20)
                pos = 0
            if got[pos:pos + size] != pattern[:size]:
                raise AssertionError(f"piece at {total} differs")
            total += size
            pos += size + 2
        eq(total, 256 * 2**20, "bytes read")
        st = wait_stats(lambda st: st["flood_running"] == 0, 5, "flood ended")
        eq(st["flood_result"], 0, "producer result")
    finally:
        s.close()


def t_failing_producer_cuts_body():
    with Conn(srv.port) as c:
        c.send(request_bytes("GET", "/fail"))
        closed, raw = c.wait_closed(5)
        check(closed, "the connection stayed open after the producer failed")
        check(raw.endswith(b"\r\n\r\n7\r\npartial\r\n"), f"what arrived: {raw[-60:]!r}")


def t_access_log_after_stream():
    H.http(srv.port, "GET", "/count?n=3&ms=10")
    mine = '"GET /count?n=3&ms=10 HTTP/1.1" 200 24 '
    H.wait_until(lambda: mine in srv.stdout(), 3, what=f"an access log line with {mine!r}")


def t_send_timeout():
    global srv
    main_srv = srv
    srv = H.Server(APP, args=["--workers", "1", "--send-timeout", "1"], name="stream-sendtimeout")
    try:
        srv.start()
        s = flood_client(256)
        try:
            t0 = time.monotonic()
            st = wait_stats(lambda st: st["flood_result"] != 0, 5, "the producer ended")
            dt = time.monotonic() - t0
            eq(st["flood_result"], -110, "producer result (CF_ETIMEDOUT)")
            print(f"     producer ended with CF_ETIMEDOUT {dt * 1000:.0f} ms after the client "
                  "stopped reading")
            check(0.8 < dt < 4, f"the send timeout of 1 s took {dt:.2f}s")
            s.settimeout(5)
            n = 0
            try:
                while True:
                    chunk = s.recv(1 << 20)
                    if not chunk:
                        break
                    n += len(chunk)
            except ConnectionResetError:
                pass
            check(n < 64 * 2**20, f"the dropped client still read {n} bytes")
            check("send timeout" in srv.stdout(), "no access log line for the send timeout")
        finally:
            s.close()
        H.stop_and_check(srv, expect_status=0)
    finally:
        srv = main_srv


def t_sigterm_ends_event_stream():
    global srv
    main_srv = srv
    srv = H.Server(APP, args=["--workers", "1"], name="stream-stop")
    try:
        srv.start()
        c = Conn(srv.port, timeout=10)
        # an event every 5 s: the stop must not wait for the next one
        c.send(request_bytes("GET", "/events?n=0&ms=5000"))
        c._read_until(b"tick 1\n\n", time.monotonic() + 5)
        # a finite stream (an export) is let finish, like any request
        export = Conn(srv.port, timeout=10)
        export.send(request_bytes("GET", "/count?n=5&ms=200"))
        export._read_until(b"\r\n\r\n", time.monotonic() + 5)
        t0 = time.monotonic()
        srv.signal(signal.SIGTERM)
        closed, _ = c.wait_closed(10)
        dt = time.monotonic() - t0
        check(closed, "the stream did not end after SIGTERM")
        # after the first event: its chunk's CRLF, then the last chunk
        eq(c.buf, b"\r\n0\r\n\r\n", "the rest of the stream")
        print(f"     stream ended properly {dt * 1000:.0f} ms after SIGTERM")
        check(dt < 2, f"stopping took {dt:.2f}s (the producer's sleep is 5 s, the graceful "
                      "timeout 30 s)")
        c.close()
        closed, rest = export.wait_closed(10)
        export.close()
        check(closed, "the export's connection stayed open after its end")
        body = b"".join(rest.split(b"\r\n")[1::2])  # the chunks' data
        eq(body, b"piece 1\npiece 2\npiece 3\npiece 4\npiece 5\n", "the export, whole")
        check(rest.endswith(b"0\r\n\r\n"), f"the export's end: {rest[-20:]!r}")
        H.stop_and_check(srv, expect_status=0)
    finally:
        srv = main_srv


def t_example_stream():
    """examples/stream: the clock (resumed), the progress log, the CSV export,
    the WebSocket."""
    ex = H.Server(H.example_path("stream"), args=["--workers", "1"], name="example-stream")
    try:
        ex.start()
        r = H.http(ex.port, "GET", "/progress?steps=2")
        eq(r.body, b"step 1/2 done\nstep 2/2 done\nfinished\n", "/progress")
        r = H.http(ex.port, "GET", "/export.csv?rows=1000")
        lines = r.body.decode().splitlines()
        eq((len(lines), lines[0], lines[-1]), (1001, "id,square,label", "1000,1000000,row-1000"),
           "/export.csv rows")
        with Conn(ex.port) as c:
            c.send(request_bytes("GET", "/clock", headers={"Last-Event-ID": "41"}))
            ev = c._read_until(b"\n\n", time.monotonic() + 5)
        check(b"event: tick\nid: 42\ndata: 20" in ev, f"first clock event: {ev!r}")
        websockets = H.websockets_client()

        async def shout():
            async with websockets.connect(f"ws://127.0.0.1:{ex.port}/shout") as ws:
                got = []
                for text in ["hello", "again"]:
                    await ws.send(text)
                    got.append(await ws.recv())
                return got
        import asyncio
        eq(asyncio.run(asyncio.wait_for(shout(), 10)), ["1: HELLO", "2: AGAIN"], "/shout")
        H.stop_and_check(ex, expect_status=0)
    finally:
        ex.kill()


def main():
    global srv
    H.watchdog(200)
    srv = H.Server(APP, args=["--workers", "1"], name="stream")
    failures, errors = H.run_with_server(srv, globals())
    H.finish(failures, errors)


if __name__ == "__main__":
    main()
