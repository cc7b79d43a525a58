"""
test_http_raw.py — the HTTP/1.1 connection probed with raw sockets: framing
(Content-Length, chunked, pipelining, keep-alive, HEAD, HTTP/1.0, 100-continue),
the request-smuggling and malformed-request refusals (400 + close), limits
(413, 414, 431, 505), timeouts (408, idle keep-alive), the connection limit,
path attacks, clients that leave mid-request or read slowly or not at all
(responses are neither cut by a timer nor buffered without bound), and
finally that the worker survived all of it.

Three testapp servers: one with default limits, one with short timeouts
(header 500 ms, body 500 ms, keep-alive 300 ms), one with max 5 connections.
"""
import json
import os
import socket
import struct
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import Conn, check, eq, request_bytes  # noqa: E402

main = None      # default limits
timeouts = None  # short timeouts
limited = None   # CF_TEST_MAX_CONNECTIONS=5
json_errors = None  # CF_TEST_JSON_ERRORS=1: the app's error handlers answer in JSON


def get(conn, path, **kw):
    conn.send(request_bytes("GET", path, **kw))
    return conn.read_final()[1]


def expect_error_and_close(raw, status, port=None, what=None):
    """Send raw bytes on a fresh connection; expect `status`, Connection:
    close, and the server closing the connection."""
    what = what or repr(raw[:60])
    with Conn(port or main.port) as c:
        c.send(raw)
        _, r = c.read_final(timeout=5)
        eq(r.status, status, f"status for {what}")
        check(r.closes, f"{what}: the {status} response lacks Connection: close ({r.headers})")
        check(b"SECRET" not in r.body, f"{what}: the request was routed")
        closed, extra = c.wait_closed(3)
        check(closed, f"{what}: the server kept the connection open after {status}")
        eq(extra, b"", f"bytes after the {status} response for {what}")
        return r


# ---- framing ----------------------------------------------------------------


def t_keep_alive_two_requests():
    with Conn(main.port) as c:
        r1 = get(c, "/hello")
        eq(r1.status, 200, "first status")
        eq(r1.body, b"Hello, World!", "first body")
        check(not r1.closes, "first response closes the connection")
        eq(r1.header("Content-Length"), "13", "Content-Length")
        check(r1.header("Date"), "no Date header")
        r2 = get(c, "/user/42")
        eq(r2.status, 200, "second status")
        eq(r2.body, b'{"id":42}', "second body")
        check(c.is_open_after(0.2), "connection closed after a keep-alive response")


def t_pipelining_three_in_one_send():
    reqs = (request_bytes("GET", "/hello")
            + request_bytes("POST", "/echo", {"Content-Type": "text/x-one"}, b"ping\r\n\r\nGET /x")
            + request_bytes("GET", "/user/3", {"Connection": "close"}))
    with Conn(main.port) as c:
        c.send(reqs)
        r1 = c.read_response()
        r2 = c.read_response()
        r3 = c.read_response()
        eq((r1.status, r1.body), (200, b"Hello, World!"), "response 1")
        eq((r2.status, r2.body), (200, b"ping\r\n\r\nGET /x"), "response 2")
        eq(r2.header("Content-Type"), "text/x-one", "echoed Content-Type")
        eq((r3.status, r3.body), (200, b'{"id":3}'), "response 3")
        check(r3.closes, "the last request asked for close")
        closed, extra = c.wait_closed(3)
        check(closed and not extra, "connection not closed after Connection: close")


def t_pipelining_many_small():
    n = 50
    with Conn(main.port) as c:
        c.send(b"".join(request_bytes("GET", f"/user/{i}") for i in range(n)))
        for i in range(n):
            r = c.read_response()
            eq((r.status, r.body), (200, b'{"id":%d}' % i), f"pipelined response {i}")


def t_pipelining_backpressure():
    """More pipelined bytes than the connection buffers while a slow request
    runs: reading pauses and resumes, every response arrives, in order."""
    n = 3000
    reqs = request_bytes("GET", "/sleep?ms=200") + b"".join(
        request_bytes("GET", f"/user/{i}") for i in range(n))
    check(len(reqs) > 100 * 1024, "not enough bytes to exceed the pipeline buffer")
    with Conn(main.port, timeout=20) as c:
        err = []

        def sender():
            try:
                c.sock.sendall(reqs)
            except OSError as e:
                err.append(e)
        t = threading.Thread(target=sender)
        t.start()
        try:
            r = c.read_response(timeout=10)
            eq((r.status, r.body), (200, b"slept 200"), "the slow first response")
            for i in range(n):
                r = c.read_response(timeout=10)
                eq((r.status, r.body), (200, b'{"id":%d}' % i), f"pipelined response {i}")
        finally:
            t.join(10)
        check(not err, f"sending failed: {err}")


def t_absolute_form_target():
    with Conn(main.port) as c:
        c.send(b"GET http://test/user/8?x=1 HTTP/1.1\r\nHost: test\r\n\r\n")
        r = c.read_response()
        eq((r.status, r.body), (200, b'{"id":8}'), "absolute-form request")


def t_client_gone_mid_body():
    for body_head in (request_bytes("POST", "/echo", {"Content-Length": "100000"}) + b"x" * 5000,
                      request_bytes("POST", "/echo", {"Transfer-Encoding": "chunked"})
                      + b"1000\r\n" + b"y" * 300):
        for rst in (False, True):
            c = Conn(main.port)
            if rst:
                c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            c.send(body_head)
            time.sleep(0.05)
            c.close()
    time.sleep(0.1)
    r = H.http(main.port, "GET", "/hello")
    eq(r.status, 200, "server after clients left mid-body")


def t_client_gone_while_writing_big_response():
    for i in range(10):
        c = Conn(main.port)
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        c.send(request_bytes("GET", f"/big?n={8 << 20}"))
        c.sock.settimeout(2)
        c.sock.recv(1000)  # the response has started
        if i % 2:
            c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        c.close()
    r = H.http(main.port, "GET", "/hello")
    eq(r.status, 200, "server after clients left during big responses")


def t_pipelined_without_reading_is_bounded():
    """100 pipelined 1 MiB responses to a client that does not read: the
    server holds back the next requests instead of buffering 100 MiB, and
    answers them all once the client reads."""
    n = 100
    with Conn(main.port, timeout=30) as c:
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        before = main.vm_status("VmRSS")
        c.send(b"".join(request_bytes("GET", "/big") for _ in range(n)))
        time.sleep(1.0)
        grown = (main.vm_status("VmRSS") - before) / 1024
        print(f"     server RSS grew {grown:.1f} MiB with {n} x 1 MiB responses unread")
        check(grown < 32, f"the server buffered {grown:.1f} MiB for a client that does not read")
        for i in range(n):
            r = c.read_response(timeout=20)
            eq((r.status, len(r.body)), (200, 1 << 20), f"pipelined big response {i}")
        check(r.body == H.big_pattern(1 << 20), "last big body differs")


def t_slow_reader_gets_whole_response():
    """A response that takes longer to deliver than the keep-alive timeout
    (300 ms here) is not cut when that timer fires."""
    n = 16 << 20
    with Conn(timeouts.port) as c:
        c.send(request_bytes("GET", f"/big?n={n}"))
        t0 = time.monotonic()
        c._read_until(b"\r\n\r\n", t0 + 5)
        got = len(c.buf)
        c.buf = b""
        c.sock.settimeout(3)
        while got < n:
            chunk = c.sock.recv(262144)
            if not chunk:
                break
            got += len(chunk)
            time.sleep(0.01)
        dt = time.monotonic() - t0
        eq(got, n, f"body bytes received over {dt:.2f}s")
        check(dt > 0.3, f"the response came too fast ({dt:.2f}s) to test the timer")


def t_slow_reader_with_connection_close():
    """With Connection: close the server shuts its side down after the
    response and lingers (2 s) for the client's EOF; a download that takes
    longer than that is not cut either."""
    n = 12 << 20
    with Conn(main.port) as c:
        c.send(request_bytes("GET", f"/big?n={n}", {"Connection": "close"}))
        t0 = time.monotonic()
        c._read_until(b"\r\n\r\n", t0 + 5)
        got = len(c.buf)
        c.buf = b""
        c.sock.settimeout(3)
        while True:
            chunk = c.sock.recv(65536)
            if not chunk:
                break
            got += len(chunk)
            time.sleep(0.015)
        dt = time.monotonic() - t0
        eq(got, n, f"body bytes received over {dt:.2f}s")
        check(dt > 2.0, f"the response came too fast ({dt:.2f}s) to test the linger timer")


def t_stalled_reader_is_dropped():
    """A client that stops reading altogether does not hold the connection
    (and its unsent response) forever: after a timer period without
    progress the server closes."""
    n = 32 << 20
    with Conn(timeouts.port) as c:
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        c.send(request_bytes("GET", f"/big?n={n}"))
        time.sleep(1.5)  # 5 x the 300 ms timeout without reading
        got = 0
        c.sock.settimeout(3)
        try:
            while True:
                chunk = c.sock.recv(1 << 20)
                if not chunk:
                    break
                got += len(chunk)
        except socket.timeout:
            raise AssertionError("the stalled connection was still open") from None
        except ConnectionResetError:
            pass
        check(got < n, "a stalled client still got the whole response")


def t_content_length_body_in_pieces():
    body = bytes(range(256)) * 40 + b"\r\n0\r\n\r\n"
    head = request_bytes("POST", "/echo", {"Content-Type": "application/x-bin",
                                          "Content-Length": str(len(body))})
    with Conn(main.port) as c:
        c.send(head)
        for i in range(0, len(body), 3001):
            time.sleep(0.02)
            c.send(body[i:i + 3001])
        r = c.read_response()
        eq(r.status, 200, "status")
        eq(r.header("Content-Type"), "application/x-bin", "Content-Type")
        check(r.body == body, f"echoed body differs ({len(r.body)} vs {len(body)} bytes)")
        r = get(c, "/hello")  # the connection is still in sync
        eq(r.body, b"Hello, World!", "follow-up on the same connection")


def t_chunked_body_in_pieces_with_extensions_and_trailers():
    part1, part2, part3 = b"hello", b"0123456789abcdefghijklmnopqrstuvwxyz!", b"\r\n\x00\xff end"
    pieces = [
        request_bytes("POST", "/echo", {"Content-Type": "text/x-chunks",
                                        "Transfer-Encoding": "chunked"}),
        b"5;name=value\r\nhel", b"lo\r\n",
        b"2", b"5; a=\"quoted;\\\"x\"\r\n" + part2[:20], part2[20:] + b"\r\n",
        b"%x\r\n" % len(part3) + part3 + b"\r",
        b"\n0;last=1\r\nX-Trailer: one\r\nX-Other:", b" two\r\n\r\n",
    ]
    with Conn(main.port) as c:
        for p in pieces:
            c.send(p)
            time.sleep(0.02)
        r = c.read_response()
        eq(r.status, 200, "status")
        eq(r.header("Content-Type"), "text/x-chunks", "Content-Type")
        eq(r.body, part1 + part2 + part3, "de-chunked body")
        check(not r.closes, "chunked request closed the connection")
        r = get(c, "/hello")
        eq(r.body, b"Hello, World!", "follow-up after a chunked body")


def t_chunked_empty_body():
    with Conn(main.port) as c:
        c.send(request_bytes("POST", "/echo", {"Transfer-Encoding": "chunked"}) + b"0\r\n\r\n")
        r = c.read_response()
        eq((r.status, r.body), (200, b""), "empty chunked body")


def t_expect_100_continue():
    body = b"x" * 3000
    with Conn(main.port) as c:
        c.send(request_bytes("POST", "/echo", {"Content-Type": "text/plain",
                                               "Content-Length": str(len(body)),
                                               "Expect": "100-continue"}))
        r = c.read_response(timeout=1.0)
        eq(r.status, 100, "interim status before the body is sent")
        eq(r.version, "HTTP/1.1", "interim version")
        c.send(body)
        r = c.read_response()
        eq(r.status, 200, "final status")
        eq(r.body, body, "echoed body")


def t_expect_100_continue_refused_with_413():
    with Conn(main.port) as c:
        c.send(request_bytes("POST", "/small-body", {"Content-Length": "5000",
                                                     "Expect": "100-continue"}))
        r = c.read_response(timeout=1.0)
        eq(r.status, 413, "answer to Expect: 100-continue with a body over the limit")


def t_head_404_has_no_body():
    with Conn(main.port) as c:
        c.send(request_bytes("HEAD", "/no/such/thing"))
        r = c.read_response(head_request=True)
        eq(r.status, 404, "HEAD 404")
        check(int(r.header("Content-Length", "0")) > 0, "HEAD 404 without Content-Length")
        r = get(c, "/hello")
        eq((r.status, r.body), (200, b"Hello, World!"), "GET after HEAD 404")


def t_head_has_length_but_no_body():
    with Conn(main.port) as c:
        c.send(request_bytes("HEAD", "/hello"))
        r = c.read_response(head_request=True)
        eq(r.status, 200, "HEAD /hello status")
        eq(r.header("Content-Length"), "13", "HEAD Content-Length")
        check(c.is_open_after(0.2), "connection closed after HEAD")
        eq(c.buf, b"", "bytes after the HEAD response head")
        c.send(request_bytes("HEAD", "/big"))
        r = c.read_response(head_request=True)
        eq(r.header("Content-Length"), str(1 << 20), "HEAD /big Content-Length")
        r = get(c, "/user/1")  # would misparse if a body had been sent
        eq((r.status, r.body), (200, b'{"id":1}'), "GET after HEAD")


def t_http10_closes():
    with Conn(main.port) as c:
        c.send(b"GET /hello HTTP/1.0\r\n\r\n")
        r = c.read_response()
        eq((r.status, r.body), (200, b"Hello, World!"), "HTTP/1.0 response")
        check(r.closes, "HTTP/1.0 response without Connection: close")
        closed, extra = c.wait_closed(3)
        check(closed, "HTTP/1.0 connection not closed")
        eq(extra, b"", "bytes after the HTTP/1.0 response")


def t_http10_keep_alive():
    with Conn(main.port) as c:
        c.send(b"GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        r = c.read_response()
        eq(r.status, 200, "status")
        eq((r.header("Connection") or "").lower(), "keep-alive", "Connection header")
        check(c.is_open_after(0.2), "HTTP/1.0 keep-alive connection closed")
        c.send(b"GET /user/5 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        r = c.read_response()
        eq(r.body, b'{"id":5}', "second HTTP/1.0 response")


# ---- smuggling and malformed requests ------------------------------------------

MALFORMED = [
    ("CL+TE", b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n"
              b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
    ("TE+CL", b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
              b"Content-Length: 5\r\n\r\n0\r\n\r\n"),
    ("differing duplicate CL", b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n"
                               b"Content-Length: 6\r\n\r\nhello!"),
    ("CL list", b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5, 6\r\n\r\nhello!"),
    ("signed CL", b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: +5\r\n\r\nhello"),
    ("bad chunk size", b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                       b"zz\r\nhello\r\n0\r\n\r\n"),
    ("chunk size overflow", b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                            b"10000000000000001\r\nhello\r\n0\r\n\r\n"),
    ("chunk data without CRLF", b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                                b"3\r\nhelloXX\r\n0\r\n\r\n"),
    ("TE not chunked last", b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"),
    ("obs-fold", b"GET /hello HTTP/1.1\r\nHost: t\r\nX-A: a\r\n  folded\r\n\r\n"),
    ("invalid token in method", b"G(T /hello HTTP/1.1\r\nHost: t\r\n\r\n"),
    ("invalid char in field name", b"GET /hello HTTP/1.1\r\nHost: t\r\nX@Y: 1\r\n\r\n"),
    ("space before colon", b"GET /hello HTTP/1.1\r\nHost : t\r\n\r\n"),
    ("missing Host in 1.1", b"GET /hello HTTP/1.1\r\nAccept: */*\r\n\r\n"),
    ("two Host headers", b"GET /hello HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
    ("bare LF", b"GET /hello HTTP/1.1\nHost: t\n\n"),
    ("bare CR in value", b"GET /hello HTTP/1.1\r\nHost: t\r\nX-A: a\rb\r\n\r\n"),
    ("NUL in value", b"GET /hello HTTP/1.1\r\nHost: t\r\nX-A: a\x00b\r\n\r\n"),
    ("space in target", b"GET /hel lo HTTP/1.1\r\nHost: t\r\n\r\n"),
    ("lowercase version", b"GET /hello http/1.1\r\nHost: t\r\n\r\n"),
]


def make_malformed_test(name, raw):
    def t():
        expect_error_and_close(raw, 400, what=name)
    return t


def t_version_505():
    expect_error_and_close(b"GET /hello HTTP/2.0\r\nHost: t\r\n\r\n", 505, what="HTTP/2.0")


def t_header_block_431():
    raw = b"GET /hello HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * (9 * 1024) + b"\r\n\r\n"
    expect_error_and_close(raw, 431, what="9 KiB header block")


def t_target_414():
    raw = b"GET /hello?" + b"a" * (5 * 1024) + b" HTTP/1.1\r\nHost: t\r\n\r\n"
    expect_error_and_close(raw, 414, what="5 KiB target")


def t_content_length_413_before_body():
    for path, cl in (("/echo", 2 * 1024 * 1024), ("/small-body", 2000)):
        with Conn(main.port) as c:
            t0 = time.monotonic()
            c.send(request_bytes("POST", path, {"Content-Length": str(cl)}))  # no body sent
            _, r = c.read_final(timeout=1.0)
            eq(r.status, 413, f"status for {path} with Content-Length {cl}")
            check(time.monotonic() - t0 < 1.0, "413 came late")
            check(r.closes, "413 without Connection: close")
            closed, _ = c.wait_closed(3)
            check(closed, "connection not closed after 413")


def t_content_length_within_route_limit():
    r = H.http(main.port, "POST", "/small-body", body=b"y" * 1024)
    eq((r.status, r.body), (200, b"got 1024"), "body at the route limit")


def t_chunked_413_over_route_limit():
    chunk = b"200\r\n" + b"z" * 0x200 + b"\r\n"
    raw = request_bytes("POST", "/small-body", {"Transfer-Encoding": "chunked"}) + chunk * 3 + b"0\r\n\r\n"
    expect_error_and_close(raw, 413, what="chunked body above the route limit")
    # Just under the limit is fine.
    with Conn(main.port) as c:
        c.send(request_bytes("POST", "/small-body", {"Transfer-Encoding": "chunked"})
               + chunk * 2 + b"0\r\n\r\n")
        r = c.read_response()
        eq((r.status, r.body), (200, b"got 1024"), "chunked body at the route limit")


def t_chunked_413_streaming():
    """The 413 comes while the client is still sending (not after the end)."""
    with Conn(main.port) as c:
        c.send(request_bytes("POST", "/small-body", {"Transfer-Encoding": "chunked"}))
        c.send(b"400\r\n" + b"z" * 0x400 + b"\r\n")
        c.send(b"1\r\nz\r\n")  # passes the limit; no final chunk
        _, r = c.read_final(timeout=2.0)
        eq(r.status, 413, "status while the body is still open")


# ---- paths ----------------------------------------------------------------------

def t_dot_segments_refused():
    for target in (b"/a/%2e%2e/secret", b"/files/..%2fetc", b"/a/%2E%2E/secret", b"/files/%2e/x",
                   b"/a/.%2e/secret"):
        expect_error_and_close(b"GET " + target + b" HTTP/1.1\r\nHost: t\r\n\r\n", 400,
                               what=target.decode())


def t_nul_in_path_refused():
    for target in (b"/hello%00", b"/files/a%00b", b"/user/1%00"):
        expect_error_and_close(b"GET " + target + b" HTTP/1.1\r\nHost: t\r\n\r\n", 400,
                               what=target.decode())


def t_bad_percent_encoding_refused():
    expect_error_and_close(b"GET /files/%zz HTTP/1.1\r\nHost: t\r\n\r\n", 400, what="%zz")
    expect_error_and_close(b"GET /files/abc% HTTP/1.1\r\nHost: t\r\n\r\n", 400, what="trailing %")


def t_encoded_slash_stays_in_path_param():
    with Conn(main.port) as c:
        r = get(c, "/files/a%2Fb/c%20d")
        eq(r.status, 200, "status")
        eq(r.body, b'{"param":"a/b/c d","path":"/files/a/b/c d"}', "decoded path")


# ---- timeouts (server `timeouts`) -----------------------------------------------

def t_header_timeout_408():
    with Conn(timeouts.port) as c:
        t0 = time.monotonic()
        c.send(b"GET /hello HTTP/1.1\r\nHost: t\r\n")  # never finished
        _, r = c.read_final(timeout=3.0)
        dt = time.monotonic() - t0
        eq(r.status, 408, "status")
        check(0.4 <= dt <= 1.5, f"408 after {dt:.2f}s, expected ~0.5s")
        check(r.closes, "408 without Connection: close")
        closed, _ = c.wait_closed(3)
        check(closed, "connection not closed after 408")


def t_header_timeout_trickle():
    """A slowloris sending one byte every 100 ms does not reset the clock."""
    head = b"GET /hello HTTP/1.1\r\nHost: t\r\nX-Slow: " + b"s" * 40
    with Conn(timeouts.port) as c:
        t0 = time.monotonic()
        got = None
        for b in head:
            try:
                c.send(bytes([b]))
            except OSError:
                break
            time.sleep(0.1)
            if time.monotonic() - t0 > 3:
                break
            try:
                _, got = c.read_final(timeout=0.001)
                break
            except TimeoutError:
                continue
            except H.Closed:
                break
        dt = time.monotonic() - t0
        if got is None:
            _, got = c.read_final(timeout=2.0)
        eq(got.status, 408, "status for a trickled head")
        check(dt <= 1.6, f"trickled head held the connection for {dt:.2f}s")


def t_header_timeout_on_second_request():
    with Conn(timeouts.port) as c:
        eq(get(c, "/hello").status, 200, "first request")
        time.sleep(0.1)  # within the 300 ms keep-alive
        t0 = time.monotonic()
        c.send(b"GET /hello HTTP/1.1\r\nHo")
        _, r = c.read_final(timeout=3.0)
        dt = time.monotonic() - t0
        eq(r.status, 408, "status for a stalled second head")
        check(0.4 <= dt <= 1.5, f"408 after {dt:.2f}s, expected ~0.5s")


def t_body_timeout_408():
    with Conn(timeouts.port) as c:
        t0 = time.monotonic()
        c.send(request_bytes("POST", "/echo", {"Content-Length": "10"}) + b"abc")
        _, r = c.read_final(timeout=3.0)
        dt = time.monotonic() - t0
        eq(r.status, 408, "status")
        check(0.4 <= dt <= 1.5, f"408 after {dt:.2f}s, expected ~0.5s")
        closed, _ = c.wait_closed(3)
        check(closed, "connection not closed after the body timeout")


def t_silent_connection_closed_after_header_timeout():
    with Conn(timeouts.port) as c:
        t0 = time.monotonic()
        closed, extra = c.wait_closed(3)
        dt = time.monotonic() - t0
        check(closed, "an idle new connection was not closed")
        eq(extra, b"", "an idle new connection got bytes")
        check(dt <= 1.5, f"closed after {dt:.2f}s")


def t_keep_alive_idle_timeout():
    with Conn(timeouts.port) as c:
        r = get(c, "/hello")
        eq(r.status, 200, "status")
        t0 = time.monotonic()
        closed, extra = c.wait_closed(3)
        dt = time.monotonic() - t0
        check(closed, "idle keep-alive connection not closed")
        eq(extra, b"", "the idle close sent bytes (expected a silent close)")
        check(0.2 <= dt <= 1.2, f"idle close after {dt:.2f}s, expected ~0.3s")


def t_keep_alive_timer_restarts_per_request():
    with Conn(timeouts.port) as c:
        for i in range(5):  # 5 x 150 ms > 300 ms keep-alive, yet each gap is shorter
            r = get(c, f"/user/{i}")
            eq(r.status, 200, f"request {i}")
            time.sleep(0.15)


# ---- connection limit (server `limited`) ----------------------------------------

def t_connection_limit():
    held = []
    try:
        for i in range(5):
            c = Conn(limited.port)
            held.append(c)
            r = get(c, "/hello")
            eq(r.status, 200, f"connection {i + 1} of 5")
        refused = 0
        for i in range(3):
            with Conn(limited.port) as c:
                try:
                    c.send(request_bytes("GET", "/hello"))
                    _, r = c.read_final(timeout=3)
                    eq(r.status, 503, f"connection {6 + i} status")
                    check(r.closes, "503 without Connection: close")
                    refused += 1
                except (H.Closed, ConnectionResetError, BrokenPipeError):
                    refused += 1
        eq(refused, 3, "connections above the limit refused")
        # The held ones still work.
        r = get(held[0], "/user/9")
        eq(r.status, 200, "a held connection after the refusals")
        # Freeing one makes room again.
        held.pop().close()
        deadline = time.monotonic() + 3
        while True:
            try:
                with Conn(limited.port) as c:
                    r = get(c, "/hello")
                    if r.status == 200:
                        break
            except (H.Closed, OSError):
                pass
            check(time.monotonic() < deadline, "no room after closing a connection")
            time.sleep(0.05)
    finally:
        for c in held:
            c.close()
    # Refusing must not disturb the others' timers (it once corrupted the
    # timer heap, and the worker crashed on the next close).
    time.sleep(0.1)
    check(limited.alive(), f"the worker died after refusing connections: {limited.stderr()[-2000:]}")
    eq(H.http(limited.port, "GET", "/hello").status, 200, "after the held connections closed")


# ---- the app's error handlers see the server's refusals ------------------------

def expect_json_error(raw, status, reason, what):
    """A refusal the app can route (a body over the limit, a refused path,
    405) comes from its error handler, and still closes when the body is
    left unread."""
    c = Conn(json_errors.port)
    c.send(raw)
    _, r = c.read_final(timeout=5)
    eq(r.status, status, f"status for {what}")
    eq(r.header("Content-Type", "").split(";")[0], "application/json", f"Content-Type for {what}")
    body = json.loads(r.body)
    eq(body["status"], status, f"status in the body for {what}")
    check(reason in body["error"], f"{what}: error {body['error']!r} lacks {reason!r}")
    return c, r  # the caller closes c


def t_error_handler_sees_413_by_content_length():
    c, r = expect_json_error(request_bytes("POST", "/small-body", {"Content-Length": "5000"}), 413,
                             "larger than the limit", "Content-Length over the route limit")
    with c:
        check(r.closes, "413 without Connection: close")
        closed, _ = c.wait_closed(3)
        check(closed, "connection not closed after the 413")


def t_error_handler_sees_413_with_expect_continue():
    raw = request_bytes("POST", "/small-body", {"Content-Length": "5000", "Expect": "100-continue"})
    c, _ = expect_json_error(raw, 413, "larger than the limit", "Expect: 100-continue over the limit")
    c.close()


def t_error_handler_sees_413_of_chunked_body():
    chunk = b"200\r\n" + b"z" * 0x200 + b"\r\n"
    raw = request_bytes("POST", "/small-body", {"Transfer-Encoding": "chunked"}) + chunk * 3
    c, r = expect_json_error(raw, 413, "larger than the limit", "a chunked body over the limit")
    with c:
        check(r.closes, "413 without Connection: close")


def t_error_handler_sees_refused_paths():
    for target, reason in ((b"/a/%2e%2e/secret", "dot segments"), (b"/files/%zz", "percent-encoding"),
                           (b"/hello%00", "NUL byte")):
        c, r = expect_json_error(b"GET " + target + b" HTTP/1.1\r\nHost: t\r\n\r\n", 400, reason,
                                 target.decode())
        with c:
            check(b"SECRET" not in r.body, f"{target!r} was routed")


def t_error_handler_sees_404_and_405():
    with Conn(json_errors.port) as c:
        r = get(c, "/no/such/page")
        eq((r.status, json.loads(r.body)["status"]), (404, 404), "404 from the handler")
        c.send(request_bytes("DELETE", "/hello"))
        r = c.read_final()[1]
        eq((r.status, json.loads(r.body)["status"]), (405, 405), "405 from the handler")
        check("GET" in r.header("Allow", ""), f"405 without Allow: {r.headers}")
        r = get(c, "/hello")
        eq((r.status, r.body), (200, b"Hello, World!"), "the connection goes on after 404 and 405")


def t_raw_parser_errors_stay_plain():
    """Errors from before the head could be parsed are the server's own."""
    cases = ((b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\nHost: t\r\n\r\n", 414),
             (b"GET / HTTP/1.1\r\nHost: t\r\nX-Big: " + b"b" * 9000 + b"\r\n\r\n", 431),
             (b"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400))
    for raw, status in cases:
        r = expect_error_and_close(raw, status, port=json_errors.port, what=f"raw {status}")
        eq(r.header("Content-Type", "").split(";")[0], "text/plain", f"Content-Type of the raw {status}")


# ---- the end --------------------------------------------------------------------

def t_server_survived():
    for s in (main, timeouts, limited, json_errors):
        check(s.alive(), f"{s.name} died: {s.stderr()[-2000:]}")
    r = H.http(main.port, "GET", "/hello")
    eq((r.status, r.body), (200, b"Hello, World!"), "GET /hello after all probes")
    r = H.http(timeouts.port, "GET", "/hello")
    eq(r.status, 200, "timeouts server after all probes")


def main_():
    global main, timeouts, limited, json_errors
    H.watchdog(110)
    app = H.app_path("testapp")
    main = H.Server(app, name="raw-main")
    timeouts = H.Server(app, name="raw-timeouts",
                        env={"CF_TEST_HEADER_TIMEOUT_MS": 500, "CF_TEST_BODY_TIMEOUT_MS": 500,
                             "CF_TEST_KEEPALIVE_MS": 300})
    limited = H.Server(app, name="raw-limited", env={"CF_TEST_MAX_CONNECTIONS": 5})
    json_errors = H.Server(app, name="raw-json-errors", env={"CF_TEST_JSON_ERRORS": 1})
    servers = [main, timeouts, limited, json_errors]
    failures, errors = [], []
    try:
        for s in servers:
            s.start()
        tests = H.collect(globals())
        survived = [t for t in tests if t[0] == "server_survived"]
        tests = [t for t in tests if t[0] != "server_survived"]
        tests += [(f"malformed: {n}", make_malformed_test(n, raw)) for n, raw in MALFORMED]
        failures = H.run_tests(tests + survived)
    finally:
        for s in servers:
            try:
                H.stop_and_check(s, expect_status=0)
            except AssertionError as e:
                print(f"FAIL {s.name} shutdown: {e}")
                errors.append(f"{s.name} shutdown")
    H.finish(failures, errors)


if __name__ == "__main__":
    main_()
