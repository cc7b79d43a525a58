"""
upstream.py — a local HTTP/1.1 server for the HTTP client's tests (the
"external API" a Carafe handler calls). Standard library only: a
ThreadingHTTPServer with keep-alive, bound to 127.0.0.1, run in a thread of
the test process (start()) or on its own (python3 upstream.py [PORT]).

  GET  /delay?ms=M[&id=X]       sleeps M ms, then {"ok": true, "ms": M, "id": X}
  *    /status/<code>           that status, body {"status": code}
  *    /echo[...]               the request back as JSON: method, path, query
                                (raw), args {name: [values]}, headers {lower-case
                                name: value}, body (latin-1 text), json (parsed
                                or null), form (parsed urlencoded body or null)
  GET  /big?n=BYTES             n bytes of the harness pattern, Content-Length
  GET  /bigchunked?n=BYTES      the same, chunked (no length up front)
  GET  /slow?chunks=N&ms=M      N chunks "chunk i\\n", one every M ms (chunked)
  GET  /reset?after=N           announces 100000 bytes, sends N, then resets
                                the connection (RST)
  GET  /redirect?to=PATH[&code=302]   a redirect to PATH
  GET  /loop                    redirects to itself, forever
  GET  /gzip                    a gzip-encoded JSON body when the client
                                accepts gzip
  GET  /hold?ms=M               answers after M ms unless the client closes
                                the connection first (counted: hold_closed)
  GET  /xkcd/<n>/info.0.json   a stand-in for xkcd.com's JSON API (for
                                examples/fetch): {"num", "title", "img",
                                "alt"} after XKCD_DELAY_MS (default 300) ms
  GET  /stats                   counters: requests, connections (distinct
                                client ports), hold_started, hold_closed,
                                hold_completed; /stats/reset zeroes them

start(tls=(certfile, keyfile)) serves HTTPS instead.
"""
import gzip
import json
import os
import re
import select
import socket
import ssl
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

_pattern_cache = {}


def pattern(n):
    """byte i = (i * 31 + (i >> 10)) & 0xff, as harness.big_pattern."""
    p = _pattern_cache.get(n)
    if p is None:
        # Built from 1 KiB blocks: within a block only i * 31 varies.
        base = bytes((i * 31) & 0xFF for i in range(1024))
        blocks = []
        for b in range((n + 1023) // 1024):
            add = (b * 1024 * 31 + b) & 0xFF  # (i*31 + (i >> 10)) with i = b*1024 + j
            blocks.append(bytes((x + add) & 0xFF for x in base) if add else base)
        p = b"".join(blocks)[:n]
        _pattern_cache[n] = p
    return p


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        with getattr(self, "lock", threading.Lock()):
            self.requests = 0
            self.peers = set()
            self.hold_started = 0
            self.hold_closed = 0
            self.hold_completed = 0

    def snapshot(self):
        with self.lock:
            return {"requests": self.requests, "connections": len(self.peers),
                    "hold_started": self.hold_started, "hold_closed": self.hold_closed,
                    "hold_completed": self.hold_completed}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "upstream/1"

    def log_message(self, fmt, *args):  # quiet
        pass

    # -- helpers --------------------------------------------------------

    def send_body(self, status, body, ctype="application/json", headers=()):
        if isinstance(body, (dict, list)):
            body = json.dumps(body, separators=(",", ":")).encode()
        elif isinstance(body, str):
            body = body.encode()
        if status in (204, 304):
            body = b""
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD" and status not in (204, 304):
            self.wfile.write(body)

    def start_chunked(self, ctype="application/octet-stream"):
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def client_closed(self):
        """True when the client closed (or reset) its side."""
        conn = self.connection
        try:
            r, _, _ = select.select([conn], [], [], 0)
            if not r:
                return False
            if not isinstance(conn, ssl.SSLSocket):
                return conn.recv(1, socket.MSG_PEEK) == b""
            # TLS cannot peek: read (nothing else is expected meanwhile).
            conn.setblocking(False)
            try:
                return conn.recv(1) == b""
            except ssl.SSLWantReadError:
                return False
            finally:
                conn.setblocking(True)
        except (OSError, ValueError):
            return True

    # -- dispatch -------------------------------------------------------

    def handle_any(self):
        st = self.server.stats
        with st.lock:
            st.requests += 1
            st.peers.add(self.client_address)
        u = urlsplit(self.path)
        q = parse_qs(u.query, keep_blank_values=True)
        arg = lambda k, d=None: q.get(k, [d])[0]  # noqa: E731
        path = u.path
        body = self.read_body()

        if path == "/delay":
            ms = int(arg("ms", "50"))
            time.sleep(ms / 1000)
            return self.send_body(200, {"ok": True, "ms": ms, "id": arg("id")})
        if path.startswith("/status/"):
            code = int(path[len("/status/"):])
            return self.send_body(code, {"status": code})
        if path.startswith("/echo"):
            ctype = self.headers.get("Content-Type", "")
            parsed_json = parsed_form = None
            if ctype.startswith("application/json"):
                try:
                    parsed_json = json.loads(body)
                except ValueError:
                    parsed_json = "INVALID"
            if ctype.startswith("application/x-www-form-urlencoded"):
                parsed_form = parse_qs(body.decode("latin-1"), keep_blank_values=True)
            return self.send_body(200, {
                "method": self.command, "path": path, "query": u.query,
                "args": q, "headers": {k.lower(): v for k, v in self.headers.items()},
                "body": body.decode("latin-1"), "json": parsed_json, "form": parsed_form})
        if path == "/big":
            return self.send_body(200, pattern(int(arg("n", "1048576"))),
                                  "application/octet-stream")
        if path == "/manyheaders":  # n headers of about 30 bytes each
            self.send_response(200)
            for i in range(int(arg("n", "100"))):
                self.send_header(f"X-Filler-{i}", "0123456789abcdef")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")
            return
        if path == "/bigchunked":
            data = pattern(int(arg("n", "1048576")))
            self.start_chunked()
            for i in range(0, len(data), 65536):
                self.chunk(data[i:i + 65536])
            self.chunk(b"")
            return
        if path == "/slow":
            chunks, ms = int(arg("chunks", "5")), int(arg("ms", "100"))
            self.start_chunked("text/plain")
            for i in range(chunks):
                self.chunk(b"chunk %d\n" % i)
                time.sleep(ms / 1000)
            self.chunk(b"")
            return
        if path == "/reset":
            after = int(arg("after", "1000"))
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", "100000")
            self.end_headers()
            self.wfile.write(b"x" * after)
            self.wfile.flush()
            time.sleep(0.05)
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            self.rfile.close()
            self.wfile.close()
            self.connection.close()  # the last reference: RST
            return
        if path == "/redirect":
            code = int(arg("code", "302"))
            return self.send_body(code, {"redirect": arg("to", "/echo")},
                                  headers=[("Location", arg("to", "/echo"))])
        if path == "/loop":
            return self.send_body(302, {}, headers=[("Location", "/loop")])
        if path == "/gzip":
            data = json.dumps({"compressed": True, "pad": "z" * 2000}).encode()
            if "gzip" in self.headers.get("Accept-Encoding", ""):
                return self.send_body(200, gzip.compress(data), headers=[("Content-Encoding", "gzip")])
            return self.send_body(200, data)
        if path == "/hold":
            ms = int(arg("ms", "5000"))
            with st.lock:
                st.hold_started += 1
            deadline = time.monotonic() + ms / 1000
            while time.monotonic() < deadline:
                if self.client_closed():
                    with st.lock:
                        st.hold_closed += 1
                    self.close_connection = True
                    return
                time.sleep(0.01)
            with st.lock:
                st.hold_completed += 1
            return self.send_body(200, {"held": ms})
        m = re.fullmatch(r"/xkcd/(\d+)/info\.0\.json", path)
        if m:
            n = int(m.group(1))
            time.sleep(int(os.environ.get("XKCD_DELAY_MS", "300")) / 1000)
            return self.send_body(200, {"num": n, "title": f"Comic <{n}> & co",
                                        "img": f"https://imgs.xkcd.com/comics/stand_in_{n}.png",
                                        "alt": f"alt text {n}"})
        if path == "/stats":
            return self.send_body(200, st.snapshot())
        if path == "/stats/reset":
            st.reset()
            return self.send_body(200, {"reset": True})
        return self.send_body(404, {"error": "no such path", "path": path})

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = handle_any


class Upstream(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # 200 concurrent connects must not overflow

    def __init__(self, port=0, tls=None):
        super().__init__(("127.0.0.1", port), Handler)
        self.stats = Stats()
        self.scheme = "http"
        if tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*tls)
            self.socket = ctx.wrap_socket(self.socket, server_side=True)
            self.scheme = "https"
        self.thread = None

    @property
    def port(self):
        return self.server_address[1]

    def url(self, path="/"):
        return f"{self.scheme}://127.0.0.1:{self.port}{path}"

    def handle_error(self, request, client_address):
        pass  # resets and refused handshakes are part of the tests

    def start(self):
        self.thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()
        return self

    def stop(self):
        self.shutdown()
        self.server_close()
        if self.thread:
            self.thread.join(5)


def start(port=0, tls=None):
    return Upstream(port, tls).start()


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else int(os.environ.get("PORT", "0"))
    srv = Upstream(port)
    print(f"upstream on {srv.url('')}", flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        srv.server_close()
