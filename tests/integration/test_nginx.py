"""
test_nginx.py — Carafe on a Unix socket (--unix) behind a real nginx, with
the configuration docs/deployment.md shows (tests/integration/nginx.conf,
its placeholders filled in with a temporary directory and a free port).

  GET, a POST body (echoed), a 404 from Carafe, a 3 MB response, all through
  nginx; Host, X-Forwarded-For, X-Forwarded-Proto and nginx's X-Request-Id
  arrive at the handler, and Carafe returns that request id; the access log
  shows the requests came over the Unix socket; keep-alive connections to
  the upstream are reused; nginx and Carafe are stopped at the end and the
  socket file is removed. docs/deployment.md shows this config verbatim.

nginx must be installed (scripts/install-deps installs the Debian package).
"""
import os
import re
import shutil
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import check, eq  # noqa: E402

APP = H.app_path("testapp")
CONF = os.path.join(H.HERE, "nginx.conf")


def nginx_conf(rundir, listen, sock):
    with open(CONF) as f:
        text = f.read()
    for k, v in (("@RUNDIR@", rundir), ("@LISTEN@", f"127.0.0.1:{listen}"), ("@SOCKET@", sock)):
        check(k in text, f"{k} missing from {CONF}")
        text = text.replace(k, v)
    return text


def main():
    import requests  # python3-requests

    nginx_exe = H.find_nginx()
    if not nginx_exe:
        print("FAIL nginx is not installed: run scripts/install-deps (it installs the Debian "
              "package nginx), or apt-get install nginx-light")
        return ["nginx missing"]
    if not os.path.exists(APP):
        print(f"FAIL {APP} is not built")
        return ["testapp missing"]

    tmp = tempfile.mkdtemp(prefix="cf-nginx-")
    os.chmod(tmp, 0o755)  # nginx's workers (www-data/nobody when started as root) reach the socket
    sock = os.path.join(tmp, "carafe.sock")
    srv = H.Server(APP, args=["--unix", sock, "--workers", "2"], name="behind-nginx",
                   port_arg=False, ready=r"serving on unix:" + re.escape(sock))
    port = H.free_port()
    nginx = H.Nginx(nginx_exe, tmp, port, nginx_conf(tmp, port, sock))
    failures = []
    try:
        srv.start()
        check(os.path.exists(sock), "no socket file")
        nginx.start()
        base = f"http://127.0.0.1:{nginx.port}"
        s = requests.Session()

        def t_config_matches_docs():
            doc = os.path.join(H.SOURCE_DIR, "docs", "deployment.md")
            with open(doc) as f:
                m = re.search(r"<!-- nginx:begin -->\n```nginx\n(.*?)```\n<!-- nginx:end -->",
                              f.read(), re.S)
            check(m, f"no nginx block between <!-- nginx:begin/end --> in {doc}")
            with open(CONF) as f:
                check(m.group(1) == f.read(), f"the nginx config in {doc} differs from {CONF}")

        def t_get():
            r = s.get(base + "/hello", timeout=5)
            eq((r.status_code, r.text), (200, "Hello, World!"), "GET /hello through nginx")
            # and straight on the socket, for comparison
            with H.Conn(None, unix=sock) as c:
                c.send(H.request_bytes("GET", "/hello"))
                eq(c.read_response().body, b"Hello, World!", "GET /hello on the socket")

        def t_post_body():
            body = os.urandom(200_000)
            r = s.post(base + "/echo", data=body, headers={"Content-Type": "application/x-test"},
                       timeout=5)
            eq(r.status_code, 200, "POST /echo status")
            check(r.content == body, f"echoed body differs ({len(r.content)} bytes back)")
            eq(r.headers.get("Content-Type"), "application/x-test", "content type")
            r = s.post(base + "/json", json={"a": [1, 2]}, timeout=5)
            eq((r.status_code, r.json()), (200, {"a": [1, 2]}), "POST /json")

        def t_not_found():
            r = s.get(base + "/no/such/page", timeout=5)
            eq(r.status_code, 404, "status")
            check("The requested URL was not found on the server." in r.text,
                  f"404 body not Carafe's: {r.text!r}")

        def t_big_response():
            n = 3_000_000
            r = s.get(base + f"/big?n={n}", timeout=10)
            eq(r.status_code, 200, "status")
            check(r.content == H.big_pattern(n), f"3 MB body differs ({len(r.content)} bytes)")

        def t_forwarded_headers():
            r = s.get(base + "/headers", headers={"Host": "app.example.test"}, timeout=5)
            eq(r.status_code, 200, "status")
            hdrs = {k.lower(): v for k, v in r.json()}
            eq(hdrs.get("host"), "app.example.test", "Host seen by the handler")
            eq(hdrs.get("x-forwarded-for"), "127.0.0.1", "X-Forwarded-For")
            eq(hdrs.get("x-forwarded-proto"), "http", "X-Forwarded-Proto")
            rid = hdrs.get("x-request-id", "")
            check(re.fullmatch(r"[0-9a-f]{32}", rid), f"nginx's $request_id not passed: {rid!r}")
            eq(r.headers.get("X-Request-Id"), rid, "Carafe returns the proxy's request id")
            # a client's X-Forwarded-For is extended, not replaced
            r = s.get(base + "/headers", headers={"X-Forwarded-For": "203.0.113.9"}, timeout=5)
            hdrs = {k.lower(): v for k, v in r.json()}
            eq(hdrs.get("x-forwarded-for"), "203.0.113.9, 127.0.0.1", "X-Forwarded-For chain")

        def t_sse_passes_at_once():
            # With the documented config (proxy buffering on) each event
            # passes nginx as it comes. (cf_sse's X-Accel-Buffering: no
            # turns nginx's buffering off for the response as well; this
            # config does not need it.)
            t0 = time.monotonic()
            seen = []
            with s.get(base + "/ticks?n=4&ms=300", stream=True, timeout=10) as r:
                eq(r.headers.get("Content-Type"), "text/event-stream", "Content-Type")
                for line in r.iter_lines():
                    if line:
                        seen.append((time.monotonic() - t0, line))
            eq([x for _, x in seen], [f"data: tick {i}".encode() for i in range(1, 5)], "events")
            print(f"     events through nginx at {[round(t * 1000) for t, _ in seen]} ms")
            check(seen[0][0] < 0.6, f"the first event arrived after {seen[0][0]:.2f}s: buffered")

        def t_websocket_through_nginx():
            import asyncio
            websockets = H.websockets_client()

            async def go():
                async with websockets.connect(f"ws://127.0.0.1:{nginx.port}/ws") as ws:
                    out = []
                    for msg in ["through nginx", b"\x00binary"]:
                        await ws.send(msg)
                        out.append(await ws.recv())
                    return out
            eq(asyncio.run(asyncio.wait_for(go(), 10)), ["through nginx", b"\x00binary"],
               "echo through nginx")

        def t_access_log_and_keepalive():
            # A query of their own tells these lines from the earlier tests'
            # (a worker flushes its log when its loop comes round, so the
            # file's order is not the requests' order).
            for _ in range(50):
                eq(s.get(base + "/hello?from=keepalive", timeout=5).status_code, 200, "GET /hello")
            mine = '"GET /hello?from=keepalive HTTP/1.1" 200'
            H.wait_until(lambda: srv.stdout().count(mine) >= 50, 3, what="access log lines")
            lines = [ln for ln in srv.stdout().splitlines() if mine in ln]
            eq(len(lines), 50, "access log lines")
            check(all(ln.startswith("unix - - [") for ln in lines),
                  f"access log lines not from the Unix socket: {lines[:3]}")
            # Every request has nginx's 32-hex id in the log's last field.
            bad = [ln for ln in lines if not re.search(r" [0-9a-f]{32}$", ln)]
            check(not bad, f"log lines without nginx's request id: {bad[:3]}")
            # nginx keeps its upstream connections open (keepalive 64): after
            # 50 requests on one client connection, Carafe still holds one.
            held = upstream_connections(srv)
            print(f"     {held} upstream connection(s) held open after 50 requests")
            check(1 <= held <= 4, f"{held} upstream connections open: nginx did not keep them alive")

        def t_server_errors_pass_through():
            r = s.get(base + "/boom", timeout=5)
            eq(r.status_code, 500, "/boom through nginx")
            r = s.post(base + "/small-body", data=b"x" * 2000, timeout=5)
            eq(r.status_code, 413, "Carafe's per-route body limit through nginx")

        tests = [(n[2:], f) for n, f in locals().items() if n.startswith("t_") and callable(f)]
        failures += H.run_tests(tests)
    finally:
        rc_nginx = nginx.stop()
        if rc_nginx not in (0, None):
            print(f"FAIL nginx exited with {rc_nginx}:\n{nginx.errors()}")
            failures.append("nginx exit")
        if failures:
            print(nginx.errors())
        try:
            H.stop_and_check(srv, expect_status=0)
        except AssertionError as e:
            print(f"FAIL stopping Carafe: {e}")
            failures.append("carafe stop")
        if os.path.exists(sock):
            print("FAIL the socket file is left behind after the server stopped")
            failures.append("socket file")
        shutil.rmtree(tmp, ignore_errors=True)
    return failures


def upstream_connections(srv):
    """Connections Carafe's workers hold open now (sockets in /proc, minus
    the shared listening socket). Without upstream keep-alive nginx closes
    each connection after its request and none stay open."""
    sockets = set()
    for pid in srv.worker_pids():
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                t = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if t.startswith("socket:"):
                sockets.add(t)
    return max(0, len(sockets) - 1)


if __name__ == "__main__":
    H.watchdog(90)
    H.finish(main())
