"""
test_upload_stream.py — request bodies streamed to a route over real
sockets (cf_route_set_stream_body + cf_body_read): a 20 MB chunked upload
from python3-requests (a generator, so it is chunked), the same with
Content-Length, curl's Expect: 100-continue, a chunked body past the
route's limit (413), malformed chunking (400), a response sent before the
body is read (Connection: close, and the connection really closes), and a
keep-alive request after a streamed one. The worker's memory stays flat:
its RSS after a 200 MB upload grows by far less than the upload.
"""
import hashlib
import os
import subprocess
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import check, eq  # noqa: E402

import requests  # noqa: E402

srv = None
T = 30


def pieces(n, size):
    block = bytes(range(256)) * (size // 256)
    for _ in range(n):
        yield block


def t_chunked_upload():
    r = requests.post(srv.url("/upload"), data=pieces(80, 256 * 1024), timeout=T)
    eq(r.status_code, 200, "status")
    j = r.json()
    eq(j["bytes"], 80 * 256 * 1024, "bytes")
    eq(j["sum"], 80 * 1024 * sum(range(256)), "checksum")
    check(j["largest"] <= 16384, f"reads of at most the handler's buffer, got {j['largest']}")


def t_content_length_upload():
    body = os.urandom(3 * 1000 * 1000)
    r = requests.post(srv.url("/upload"), data=body, timeout=T)
    eq(r.status_code, 200, "status")
    eq(r.json()["bytes"], len(body), "bytes")
    eq(r.json()["sum"], sum(body), "checksum")


def t_expect_continue_with_curl():
    data = b"x" * 100000
    out = subprocess.run(["curl", "-sS", "-v", "--max-time", "20", "-H", "Expect: 100-continue",
                          "--data-binary", "@-", srv.url("/upload")], input=data,
                         capture_output=True, timeout=30)
    eq(out.returncode, 0, f"curl: {out.stderr[-300:]}")
    check(b"100 Continue" in out.stderr, "the server answered 100 Continue")
    check(b'"bytes":100000' in out.stdout.replace(b" ", b""), f"body {out.stdout[:200]}")


def t_over_the_limit():
    # 64 MiB limit: 70 MiB chunked fails mid-way with 413
    r = requests.post(srv.url("/upload"), data=pieces(70, 1024 * 1024), timeout=T)
    eq(r.status_code, 413, "status")


def t_malformed_chunks():
    c = H.Conn(srv.port)
    c.send(b"POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"5\r\nhello\r\nZZ\r\n")
    resp = c.read_response()
    eq(resp.status, 400, "status")
    check(resp.closes and c.wait_closed()[0], "the connection is closed after a framing error")


def t_answer_before_reading():
    c = H.Conn(srv.port)
    c.send(b"POST /upload/early HTTP/1.1\r\nHost: a\r\nContent-Length: 1000000\r\n\r\n" + b"y" * 1000)
    resp = c.read_response()
    eq(resp.status, 200, "status")
    check(resp.closes, "Connection: close")
    check(c.wait_closed()[0], "the rest of the body is not parsed as a request")


def t_keep_alive_after_stream():
    c = H.Conn(srv.port)
    c.send(b"POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"3\r\nabc\r\n0\r\n\r\nGET /hello HTTP/1.1\r\nHost: a\r\n\r\n")
    first = c.read_response()
    eq(first.status, 200, "upload status")
    check(b'"bytes":3' in first.body.replace(b" ", b""), f"upload body {first.body}")
    second = c.read_response()
    eq(second.status, 200, "pipelined request after a streamed body")
    eq(second.body, b"Hello, World!", "its body")


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def t_memory_stays_flat():
    pid = int(requests.get(srv.url("/pid"), timeout=T).text.strip())  # the one worker
    requests.post(srv.url("/upload"), data=pieces(4, 1024 * 1024), timeout=T)  # warm up
    before = rss_kib(pid)
    r = requests.post(srv.url("/upload"), data=pieces(60, 1024 * 1024), timeout=T)
    eq(r.status_code, 200, "status")
    grown = rss_kib(pid) - before
    print(f"     worker RSS grew {grown} KiB over a 60 MiB upload")
    check(grown < 8 * 1024, f"RSS grew {grown} KiB")


def main():
    global srv
    H.watchdog(200)
    srv = H.Server(H.app_path("testapp"), name="upload_stream")
    failures, errors = H.run_with_server(srv, globals(), check_alive=True)
    H.finish(failures, errors)


if __name__ == "__main__":
    main()
