"""
test_fetch.py — the outgoing HTTP client (cf_fetch_*) over real sockets:
fetchapp (tests/integration/apps/fetchapp.c) calls a local upstream
(upstream.py, in a thread of this script, 127.0.0.1 only) and reports what
happened as JSON.

Covers: calls overlap (three 300 ms calls in one request take ~300 ms, not
900); gather returns the first error in argument order; await_any returns
the fastest; total and connect timeouts; refused port; unknown host and a
1.5 s lookup that does not hold up the worker (a preloaded resolver,
shim/slow_dns.c); reset mid-body; slow bodies within and past the timeout;
max_body with and without Content-Length; response headers capped; bodies much larger than an arena
block; redirects only when asked, and a redirect loop; JSON, form and raw
bodies, PUT/PATCH/DELETE/HEAD, headers and query encoding as the upstream
sees them; gzip decoding; raise_for_status; cf_fetch_all with a cap; TLS
failure and success with a CA file; HTTP/2 to a real nginx (negotiated,
three concurrent calls on one connection); invalid arguments; a client disconnect,
an await timeout and a child ending without awaiting each cancel the
pending call (the upstream sees its connection closed); a threaded handler;
200 concurrent requests each making a call; connection reuse (the upstream
sees far fewer connections than calls); examples/fetch (concurrent against
sequential calls) and examples/bench's /fanout. Every server must exit
cleanly and, in a sanitizer build, report nothing.
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from urllib.parse import quote

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
import upstream as U  # noqa: E402
from harness import Conn, check, eq, request_bytes  # noqa: E402

EINVAL, ETIMEDOUT, ECANCELED = -22, -110, -125
EDNS, ECONNREFUSED, ETLS, ETOOBIG, EHTTPSTATUS, ENETWORK = -1100, -1101, -1102, -1103, -1104, -1105

srv = None   # fetchapp
up = None    # plain HTTP upstream
tls = None   # HTTPS upstream (None without openssl)
tlsdir = None


def post(path, obj, timeout=15.0):
    r = H.http(srv.port, "POST", path, headers={"Content-Type": "application/json"},
               body=json.dumps(obj), timeout=timeout)
    eq(r.status, 200, f"POST {path} status ({r.body[:300]!r})")
    return json.loads(r.body)


def fetch(**spec):
    return post("/fetch", spec)


def get_json(path, timeout=10.0):
    r = H.http(srv.port, "GET", path, timeout=timeout)
    return r.status, json.loads(r.body)


def up_stats():
    return up.stats.snapshot()


def wait_for(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout}s")
        time.sleep(0.02)


# --------------------------------------------------------------------------
# Concurrency
# --------------------------------------------------------------------------

def t_three_calls_overlap():
    t0 = time.monotonic()
    r = post("/many", {"calls": [{"path": f"/delay?ms=300&id={i}"} for i in range(3)]})
    wall = (time.monotonic() - t0) * 1000
    eq(r["rc"], 0, "gather rc")
    eq([x["json"]["id"] for x in r["results"]], ["0", "1", "2"], "results in order")
    print(f"     three 300 ms calls: {r['ms']:.0f} ms in the handler, {wall:.0f} ms end to end")
    check(r["ms"] < 500, f"calls did not overlap: {r['ms']:.0f} ms")
    check(wall < 600, f"request took {wall:.0f} ms")


def t_gather_returns_first_error():
    port = H.free_port()
    r = post("/many", {"calls": [{"path": "/delay?ms=200"},
                                 {"url": f"http://127.0.0.1:{port}/nothing"},
                                 {"path": "/status/500"}]})
    eq(r["rc"], ECONNREFUSED, "gather rc")
    check(f"127.0.0.1:{port}" in r["errmsg"], f"cf_errmsg names the URL: {r['errmsg']!r}")
    eq([x["error"] for x in r["results"]], [0, ECONNREFUSED, 0], "each result")
    eq([x["status"] for x in r["results"]], [200, 0, 500], "statuses")


def t_await_any_returns_fastest():
    r = post("/many", {"mode": "any", "calls": [{"path": "/delay?ms=700"},
                                                {"path": "/delay?ms=50"},
                                                {"path": "/delay?ms=400"}]})
    eq(r["index"], 1, "await_any index")
    check(r["ms"] < 300, f"await_any took {r['ms']:.0f} ms")
    eq([x["status"] for x in r["results"]], [200, 200, 200], "the others kept running")


def t_gather_timeout_cancels_the_rest():
    before = up_stats()
    r = post("/many", {"timeout_ms": 200, "calls": [{"path": "/delay?ms=10"},
                                                    {"path": "/hold?ms=3000"}]})
    eq(r["rc"], ETIMEDOUT, "gather with a timeout")
    eq([x["error"] for x in r["results"]], [0, ECANCELED], "finished one kept, other cancelled")
    wait_for(lambda: up_stats()["hold_closed"] > before["hold_closed"], 2,
             "the upstream seeing the cancelled call's connection close")


def t_fetch_all_with_cap():
    base = up.url("")
    urls = [f"{base}/delay?ms=200&id={i}" for i in range(6)]
    r = post("/fetch_all", {"urls": urls, "concurrency": 2})
    eq(r["rc"], 0, "fetch_all rc")
    eq([x["json"]["id"] for x in r["results"]], [str(i) for i in range(6)], "out[] in URL order")
    print(f"     6 x 200 ms, 2 at a time: {r['ms']:.0f} ms")
    check(550 <= r["ms"] < 1100, f"cap 2 should take ~600 ms, took {r['ms']:.0f}")
    r = post("/fetch_all", {"urls": urls, "concurrency": 0})
    eq(r["rc"], 0, "fetch_all rc (no cap)")
    check(r["ms"] < 450, f"no cap should take ~200 ms, took {r['ms']:.0f}")
    r = post("/fetch_all", {"urls": [f"{base}/delay?ms=10", f"{base}/status/502",
                                     f"{base}/status/404"], "concurrency": 2})
    eq(r["rc"], EHTTPSTATUS, "a non-2xx fails fetch_all")
    check("502" in r["errmsg"] and "/status/502" in r["errmsg"],
          f"errmsg names the first failure: {r['errmsg']!r}")
    r = post("/fetch_all", {"urls": [], "concurrency": 3})
    eq(r["rc"], 0, "fetch_all of nothing")


# --------------------------------------------------------------------------
# Errors and limits
# --------------------------------------------------------------------------

def t_total_timeout():
    r = fetch(path="/delay?ms=2000", timeout_ms=300)
    eq(r["error"], ETIMEDOUT, f"error ({r['errmsg']})")
    check("/delay?ms=2000" in r["errmsg"] and "timed out" in r["errmsg"], r["errmsg"])
    check(250 <= r["ms"] < 1000, f"timeout fired after {r['ms']:.0f} ms")


def t_connect_timeout():
    """A listener whose accept queue is full drops further SYNs, so a
    connect to it hangs (loopback only, no routing tricks)."""
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(0)
    addr = ls.getsockname()
    fillers = []
    try:
        for _ in range(4):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(addr)
            fillers.append(s)
        time.sleep(0.1)
        probe = socket.socket()
        probe.settimeout(0.3)
        try:
            probe.connect(addr)
            print("     skip: this kernel completes connects past a full backlog")
            return
        except (socket.timeout, OSError):
            pass
        finally:
            probe.close()
        r = fetch(url=f"http://127.0.0.1:{addr[1]}/", connect_timeout_ms=300, timeout_ms=5000)
        eq(r["error"], ETIMEDOUT, f"error ({r['errmsg']})")
        check(250 <= r["ms"] < 1500, f"connect timeout fired after {r['ms']:.0f} ms")
        print(f"     {r['errmsg']}")
    finally:
        for s in fillers:
            s.close()
        ls.close()


def t_refused():
    port = H.free_port()
    r = fetch(url=f"http://127.0.0.1:{port}/x")
    eq(r["error"], ECONNREFUSED, "error")
    eq(r["errname"], "connection refused", "cf_strerror")
    check(f"http://127.0.0.1:{port}/x" in r["errmsg"], r["errmsg"])


def t_unknown_host():
    r = fetch(url="http://fail.cf-test/path")  # the shim's resolver says it does not exist
    eq(r["error"], EDNS, f"error ({r['errmsg']})")
    check("fail.cf-test" in r["errmsg"], r["errmsg"])


def t_slow_dns_does_not_block():
    """A host name whose lookup takes 1.5 s (the shim's resolver): libcurl
    resolves on a thread of its own, the worker answers others meanwhile."""
    out = {}

    def call():
        out["r"] = fetch(url=f"http://slow.cf-test:{up.port}/delay?ms=1")

    th = threading.Thread(target=call)
    t0 = time.monotonic()
    th.start()
    time.sleep(0.1)
    lat = []
    while th.is_alive() and len(lat) < 2000:
        t1 = time.monotonic()
        st, _ = get_json("/stats")
        lat.append(time.monotonic() - t1)
        eq(st, 200, "/stats during the lookup")
    th.join()
    took = time.monotonic() - t0
    eq((out["r"]["error"], out["r"]["status"]), (0, 200), f"call after the slow lookup ({out['r']['errmsg']})")
    print(f"     call with a 1.5 s lookup took {took * 1000:.0f} ms; meanwhile {len(lat)} requests, "
          f"worst {max(lat) * 1000:.1f} ms")
    check(took > 1.3, f"the lookup took only {took:.2f}s: shim not in use?")
    H.check_served_meanwhile(lat, "the lookup")


def t_reset_mid_body():
    r = fetch(path="/reset?after=5000")
    eq(r["error"], ENETWORK, f"error ({r['errmsg']})")
    eq(r["status"], 200, "the status had arrived")


def t_slow_body_within_timeout():
    r = fetch(path="/slow?chunks=5&ms=100", timeout_ms=3000)
    eq(r["error"], 0, r["errmsg"])
    eq(r["body"], "".join(f"chunk {i}\n" for i in range(5)), "body")
    r = fetch(path="/slow?chunks=20&ms=100", timeout_ms=500)
    eq(r["error"], ETIMEDOUT, "a body still trickling at the total timeout")


def t_max_body():
    r = fetch(path="/big?n=200000", max_body=100000)
    eq(r["error"], ETOOBIG, f"with Content-Length ({r['errmsg']})")
    check("max_body" in r["errmsg"], r["errmsg"])
    r = fetch(path="/bigchunked?n=200000", max_body=100000)
    eq(r["error"], ETOOBIG, f"chunked ({r['errmsg']})")
    r = fetch(path="/big?n=100000", max_body=100000, pattern=True)
    eq((r["error"], r["len"], r["pattern_ok"]), (0, 100000, True), "exactly max_body")


def t_response_headers_capped():
    r = fetch(path="/manyheaders?n=100")
    eq((r["error"], r["status"], len(r["headers"]) >= 100), (0, 200, True), "100 headers")
    r = fetch(path="/manyheaders?n=20000")  # about 600 KB of headers
    eq(r["error"], ETOOBIG, f"endless headers ({r['errmsg']})")
    check("response headers" in r["errmsg"], r["errmsg"])


def t_large_bodies():
    for path in ("/big?n=3000000", "/bigchunked?n=3000001"):
        r = fetch(path=path, pattern=True)
        n = int(path.split("=")[1])
        eq((r["error"], r["status"], r["len"], r["pattern_ok"]), (0, 200, n, True), path)


def t_redirects_only_when_asked():
    r = fetch(path="/redirect?to=/echo/there")
    eq(r["status"], 302, "not followed by default")
    eq(dict((k.lower(), v) for k, v in r["headers"])["location"], "/echo/there", "Location")
    r = fetch(path="/redirect?to=/echo/there&code=307", follow=True)
    eq(r["status"], 200, "followed")
    eq(r["json"]["path"], "/echo/there", "landed")
    check(r["url"].endswith("/echo/there"), f"cf_fetch_url after redirects: {r['url']}")
    eq(r["ctype"], "application/json", "headers of the last response")
    r = fetch(path="/loop", follow=True)
    eq(r["error"], ENETWORK, "a redirect loop")
    check("redirect" in r["errmsg"].lower(), r["errmsg"])


def t_raise_for_status():
    r = fetch(path="/status/503", **{"raise": True})
    eq(r["error"], 0, "a 503 is a response, not a transfer error")
    eq(r["await_rc"], 0, "await result")
    eq(r["raise"], EHTTPSTATUS, "raise_for_status")
    check("503" in r["raise_msg"] and "/status/503" in r["raise_msg"], r["raise_msg"])
    eq(r["req_errmsg"], r["raise_msg"], "cf_errmsg(rq) too")
    r = fetch(path="/status/204", **{"raise": True})
    eq(r["raise"], 0, "2xx")
    port = H.free_port()
    r = fetch(url=f"http://127.0.0.1:{port}/", **{"raise": True})
    eq(r["raise"], ECONNREFUSED, "the transfer error")


# --------------------------------------------------------------------------
# What the upstream receives
# --------------------------------------------------------------------------

def t_post_json():
    doc = {"name": "Zoë", "n": [1, 2.5, None, True], "nested": {"k": "v\"\n"}}
    r = fetch(method="POST", path="/echo", json=doc)
    eq(r["error"], 0, r["errmsg"])
    e = r["json"]
    eq(e["method"], "POST", "method")
    eq(e["json"], doc, "JSON body intact")
    eq(e["headers"]["content-type"], "application/json", "Content-Type")
    check("expect" not in e["headers"], "no Expect: 100-continue")


def t_post_big_json():
    doc = {"blob": "x" * 300000, "list": list(range(5000))}
    r = fetch(method="POST", path="/echo", json=doc)
    eq(r["error"], 0, r["errmsg"])
    eq(r["json"]["json"], doc, "a 300 KB JSON body intact (and a bigger echo back)")
    r2 = fetch(method="PUT", path="/echo", json={"small": True})
    eq(r2["json"]["json"], {"small": True}, "PUT with JSON")


def t_form_body():
    form = ["name", "A & B = C", "emoji", "ünï ✓", "plus", "1+1", "empty", ""]
    r = fetch(method="POST", path="/echo", form=form)
    e = r["json"]
    eq(e["headers"]["content-type"], "application/x-www-form-urlencoded", "Content-Type")
    eq(e["form"], {"name": ["A & B = C"], "emoji": ["ünï ✓"], "plus": ["1+1"], "empty": [""]},
       "form fields intact")


def t_methods_and_raw_body():
    r = fetch(method="PUT", path="/echo", body="raw text ✓",
              headers=["Content-Type: text/plain; charset=utf-8"])
    e = r["json"]
    eq((e["method"], e["body"].encode("latin-1").decode()), ("PUT", "raw text ✓"), "PUT raw")
    eq(e["headers"]["content-type"], "text/plain; charset=utf-8", "own Content-Type")
    r = fetch(method="patch", path="/echo", json=[1, 2])
    eq((r["json"]["method"], r["json"]["json"]), ("PATCH", [1, 2]), "PATCH (method upper-cased)")
    r = fetch(method="DELETE", path="/echo/item/7")
    eq((r["json"]["method"], r["json"]["path"], r["json"]["body"]), ("DELETE", "/echo/item/7", ""),
       "DELETE")
    r = fetch(method="POST", path="/echo")
    eq((r["json"]["method"], r["json"]["headers"].get("content-length")), ("POST", "0"),
       "POST without a body")
    r = fetch(method="HEAD", path="/echo")
    eq((r["error"], r["status"], r["len"]), (0, 200, 0), "HEAD")
    r = fetch(method="OPTIONS", path="/echo")
    eq(r["json"]["method"], "OPTIONS", "any method token")


def t_headers_and_query():
    r = fetch(path="/echo?fixed=1#frag", query=["q", "a b&c=d/é?", "q", "second", "empty", ""],
              headers=["X-Trace: abc 123", "Accept: application/json", "User-Agent: mine/2"])
    e = r["json"]
    eq(e["args"], {"fixed": ["1"], "q": ["a b&c=d/é?", "second"], "empty": [""]},
       "query encoded and appended")
    check("frag" not in e["query"] and "#" not in e["path"], f"fragment sent: {e}")
    eq(e["headers"]["x-trace"], "abc 123", "custom header")
    eq(e["headers"]["accept"], "application/json", "replaced default header")
    eq(e["headers"]["user-agent"], "mine/2", "own User-Agent")
    r = fetch(path="/echo")
    check(r["json"]["headers"]["user-agent"].startswith("carafe/"), "default User-Agent")
    hdr = dict((k.lower(), v) for k, v in r["headers"])
    eq(hdr["content-type"], "application/json", "response headers")
    eq(r["ctype"], "application/json", "cf_fetch_header is case-insensitive")


def t_gzip_decoded():
    r = fetch(path="/gzip")
    eq(r["error"], 0, r["errmsg"])
    eq(r["json"]["compressed"], True, "decoded body")
    eq(dict((k.lower(), v) for k, v in r["headers"]).get("content-encoding"), "gzip", "was gzip")


def t_invalid_arguments():
    eq(fetch(method="BAD METHOD", path="/echo")["error"], EINVAL, "method with a space")
    r = fetch(path="/echo", headers=["X-A: 1\r\nX-Injected: 2"])
    eq(r["error"], EINVAL, "header with CRLF")
    eq(fetch(path="/echo", headers=["no colon"])["error"], EINVAL, "header without a colon")
    eq(fetch(url="ftp://127.0.0.1/x")["error"], EINVAL, "protocol other than http(s)")
    eq(fetch(url="file:///etc/passwd")["error"], EINVAL, "file://")
    eq(fetch(url="not a url")["error"], EINVAL, "white space in the URL")
    eq(fetch(url="")["error"], EINVAL, "empty URL")
    eq(fetch(path="/echo", query=["odd"])["error"], EINVAL, "odd query list")
    r = fetch(url="http://user:secret@127.0.0.1:1/x")
    check("secret" not in r["errmsg"], f"credentials in the message: {r['errmsg']}")


def t_tls():
    if tls is None:
        print("     skip: no openssl to make a certificate")
        return
    r = fetch(url=tls.url("/echo"))
    eq(r["error"], ETLS, f"self-signed certificate ({r['errmsg']})")
    r = fetch(url=tls.url("/echo"), ca_file=os.path.join(tlsdir, "cert.pem"))
    eq((r["error"], r["status"]), (0, 200), f"with the CA file ({r['errmsg']})")
    eq(r["json"]["method"], "GET", "over TLS")
    # A TLS transfer cancelled by an await timeout: the connection is torn
    # down from the handler's coroutine (a small stack).
    before = tls.stats.snapshot()
    st, r = get_json("/await_timeout?ms=300&path=" + quote("/hold?ms=3000", safe="/")
                     + "&base=" + quote(tls.url(""), safe="") + "&ca="
                     + quote(os.path.join(tlsdir, "cert.pem"), safe=""))
    eq((r["rc"], r["error"]), (ETIMEDOUT, ECANCELED), f"TLS call cancelled ({r['errmsg']})")
    wait_for(lambda: tls.stats.snapshot()["hold_closed"] > before["hold_closed"], 2,
             "the TLS upstream seeing the close")


H2_CONF = """
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    server {{
        listen 127.0.0.1:{port} ssl http2;
        ssl_certificate {dir}/cert.pem;
        ssl_certificate_key {dir}/key.pem;
        location /h2 {{
            default_type application/json;
            return 200 '{{"proto": "$server_protocol", "conn": $connection}}';
        }}
    }}
}}
"""


def t_http2_multiplexed():
    """HTTPS to a server that speaks HTTP/2 (a real nginx): libcurl
    negotiates h2 by ALPN, and three concurrent calls share one connection."""
    exe = H.find_nginx()
    if tls is None or exe is None:
        print("     skip: needs openssl and nginx (scripts/install-deps)")
        return
    port = H.free_port()
    nginx = H.Nginx(exe, tlsdir, port, H2_CONF.format(dir=tlsdir, port=port)).start()
    try:
        spec = {"url": f"https://127.0.0.1:{port}/h2", "ca_file": os.path.join(tlsdir, "cert.pem")}
        r = post("/many", {"calls": [spec] * 3, "mode": "all"})
        eq(r["rc"], 0, f"three calls over HTTP/2 ({r['errmsg']})")
        answers = [x["json"] for x in r["results"]]
        eq({a["proto"] for a in answers}, {"HTTP/2.0"}, "protocol nginx saw")
        eq(len({a["conn"] for a in answers}), 1, f"one connection for the three: {answers}")
    finally:
        nginx.stop(graceful=False)  # the call's connection is still cached


# --------------------------------------------------------------------------
# Cancellation
# --------------------------------------------------------------------------

def t_client_disconnect_cancels_call():
    before_up = up_stats()
    _, before = get_json("/stats")
    c = Conn(srv.port)
    c.send(request_bytes("GET", "/slowfetch?path=" + quote("/hold?ms=5000", safe="/")))
    wait_for(lambda: up_stats()["hold_started"] > before_up["hold_started"], 3,
             "the call reaching the upstream")
    t0 = time.monotonic()
    c.close()
    wait_for(lambda: up_stats()["hold_closed"] > before_up["hold_closed"], 3,
             "the upstream seeing its connection closed")
    dt = time.monotonic() - t0
    _, s = get_json("/stats")
    eq(s["slow_teardown"], before["slow_teardown"] + 1, "teardown ran")
    eq(s["slow_cancelled"], before["slow_cancelled"] + 1, "the call ended CF_ECANCELED")
    eq(up_stats()["hold_completed"], before_up["hold_completed"], "no call completed")
    print(f"     upstream saw the close {dt * 1000:.0f} ms after the client left")


def t_many_disconnects():
    before_up = up_stats()
    _, before = get_json("/stats")
    conns = []
    try:
        for _ in range(40):
            c = Conn(srv.port)
            c.send(request_bytes("GET", "/slowfetch?path=" + quote("/hold?ms=5000", safe="/")))
            conns.append(c)
        wait_for(lambda: up_stats()["hold_started"] >= before_up["hold_started"] + 40, 5,
                 "40 calls reaching the upstream")
    finally:
        for c in conns:
            c.close()
    wait_for(lambda: get_json("/stats")[1]["slow_teardown"] >= before["slow_teardown"] + 40, 5,
             "40 teardowns")
    _, s = get_json("/stats")
    eq(s["slow_cancelled"] - before["slow_cancelled"], 40, "all 40 calls cancelled")
    wait_for(lambda: up_stats()["hold_closed"] >= before_up["hold_closed"] + 40, 5,
             "the upstream seeing 40 closes")


def t_await_timeout_cancels_call():
    before = up_stats()
    st, r = get_json("/await_timeout?ms=200&path=" + quote("/hold?ms=3000", safe="/"))
    eq((r["rc"], r["error"], r["done"]), (ETIMEDOUT, ECANCELED, True), "await timeout")
    check(150 <= r["ms"] < 1000, f"await returned after {r['ms']:.0f} ms")
    wait_for(lambda: up_stats()["hold_closed"] > before["hold_closed"], 2,
             "the upstream seeing the close")


def t_orphaned_call_cancelled():
    before = up_stats()
    st, r = get_json("/orphan?path=" + quote("/hold?ms=3000", safe="/"))
    eq(r["error"], ECANCELED, "a call whose task ended is cancelled")
    eq(up_stats()["hold_started"], before["hold_started"] + 1, "the call had reached the upstream")
    wait_for(lambda: up_stats()["hold_closed"] > before["hold_closed"], 2,
             "the upstream seeing the close")


# --------------------------------------------------------------------------
# Load, reuse, threaded handlers
# --------------------------------------------------------------------------

def t_threaded_handler_call():
    r = H.http(srv.port, "GET", "/threaded?path=" + quote("/delay?ms=20&id=t", safe="/"))
    eq(r.status, 200, "threaded handler")
    eq(json.loads(r.body)["id"], "t", "body")


def t_200_concurrent_requests():
    n = 200
    results = [None] * n
    path = "/proxy?path=" + quote("/delay?ms=100", safe="/")

    def one(i):
        try:
            results[i] = H.http(srv.port, "GET", path, timeout=20).status
        except Exception as e:  # noqa: BLE001
            results[i] = repr(e)

    t0 = time.monotonic()
    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    dt = time.monotonic() - t0
    bad = [r for r in results if r != 200]
    eq(bad, [], f"{len(bad)} of {n} failed")
    print(f"     {n} concurrent requests, one 100 ms call each: {dt:.2f} s")


def t_connection_reuse():
    up.stats.reset()
    path = "/proxy?path=" + quote("/delay?ms=1", safe="/")
    with Conn(srv.port) as c:
        for _ in range(30):
            c.send(request_bytes("GET", path))
            eq(c.read_final()[1].status, 200, "proxied")
    s = up_stats()
    eq(s["requests"], 30, "upstream requests")
    print(f"     30 sequential calls used {s['connections']} upstream connection(s)")
    check(s["connections"] <= 2, f"connections not reused: {s['connections']}")
    # Concurrent requests on separate client connections share the pool too.
    up.stats.reset()
    errors = []

    def worker():
        for _ in range(10):
            try:
                eq(H.http(srv.port, "GET", path).status, 200, "proxied")
            except Exception as e:  # noqa: BLE001
                errors.append(repr(e))

    threads = [threading.Thread(target=worker) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    eq(errors, [], "errors")
    s = up_stats()
    print(f"     50 calls from 5 clients used {s['connections']} upstream connection(s)")
    check(s["connections"] < 25, f"connections not reused: {s['connections']}")


def t_example_comics():
    """examples/fetch against the upstream's stand-in for xkcd's API (200 ms
    a call): the concurrent page costs one call, the sequential one all."""
    os.environ["XKCD_DELAY_MS"] = "200"
    ex = H.Server(H.example_path("fetch"), name="fetch-example",
                  env={"XKCD_URL": up.url("/xkcd")})
    try:
        ex.start()
        t0 = time.monotonic()
        r = H.http(ex.port, "GET", "/comics?n=5")
        dt = time.monotonic() - t0
        eq(r.status, 200, f"/comics ({r.body[:200]!r})")
        eq(r.body.count(b"<li>"), 5, "five comics")
        check(b"&lt;" in r.body and b"<p>#" in r.body, "titles escaped")
        check(dt < 0.45, f"5 x 200 ms concurrently took {dt * 1000:.0f} ms")
        t0 = time.monotonic()
        r = H.http(ex.port, "GET", "/comics/sequential?n=3")
        dts = time.monotonic() - t0
        eq(r.status, 200, "/comics/sequential")
        check(dts >= 0.6, f"3 x 200 ms one after another took only {dts * 1000:.0f} ms")
        r = H.http(ex.port, "GET", "/comics/capped?n=6&at_once=3")
        eq(r.body.count(b"<li>"), 6, "capped")
        r = H.http(ex.port, "GET", "/api/comics?n=2")
        comics = json.loads(r.body)["comics"]
        eq([sorted(c) for c in comics], [["img", "num", "title"]] * 2, "JSON")
        print(f"     5 comics concurrently {dt * 1000:.0f} ms; 3 one after another {dts * 1000:.0f} ms")
    finally:
        os.environ.pop("XKCD_DELAY_MS", None)
        H.stop_and_check(ex, expect_status=0)


def t_example_upstream_down():
    ex = H.Server(H.example_path("fetch"), name="fetch-example-down",
                  env={"XKCD_URL": f"http://127.0.0.1:{H.free_port()}"})
    try:
        ex.start()
        r = H.http(ex.port, "GET", "/comics?n=2")
        eq(r.status, 502, "upstream down")
        check(b"could not connect" in r.body, r.body)
    finally:
        H.stop_and_check(ex, expect_status=0)


def t_bench_fanout():
    """examples/bench's /fanout per ../shared/bench's contract."""
    b = H.Server(H.example_path("bench"), name="bench-fanout", env={"UPSTREAM": up.url("")})
    try:
        b.start()
        r = H.http(b.port, "GET", "/fanout?n=3&ms=10")
        eq(r.status, 200, f"/fanout ({r.body[:200]!r})")
        eq(r.header("Content-Type").split(";")[0], "application/json", "Content-Type")
        eq([x["ok"] for x in json.loads(r.body)], [True] * 3, "three upstream bodies")
        r = H.http(b.port, "GET", "/fanout")
        eq([x["ms"] for x in json.loads(r.body)], [50] * 3, "defaults n=3, ms=50")
        t0 = time.monotonic()
        r = H.http(b.port, "GET", "/fanout?n=3&ms=100")
        dt = time.monotonic() - t0
        check(dt < 0.25, f"three 100 ms calls took {dt * 1000:.0f} ms (one after another: 300)")
        r = H.http(b.port, "GET", "/fanout?n=5&ms=0")
        eq(len(json.loads(r.body)), 5, "n=5")
        eq(H.http(b.port, "GET", "/fanout?n=x").status, 400, "bad n")
    finally:
        H.stop_and_check(b, expect_status=0)
    b = H.Server(H.example_path("bench"), name="bench-fanout-down",
                 env={"UPSTREAM": f"http://127.0.0.1:{H.free_port()}"})
    try:
        b.start()
        r = H.http(b.port, "GET", "/fanout")
        eq(r.status, 502, "upstream down")
        check(b"/delay?ms=50" in r.body, r.body)
    finally:
        H.stop_and_check(b, expect_status=0)


def t_server_still_serves():
    r = fetch(path="/delay?ms=5&id=last")
    eq((r["error"], r["json"]["id"]), (0, "last"), "after everything")


# --------------------------------------------------------------------------

def make_tls():
    global tls, tlsdir
    if not shutil.which("openssl"):
        return
    tlsdir = tempfile.mkdtemp(prefix="cf-fetch-tls-")
    cert, key = os.path.join(tlsdir, "cert.pem"), os.path.join(tlsdir, "key.pem")
    p = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                        "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                        "-keyout", key, "-out", cert], capture_output=True, timeout=60)
    if p.returncode != 0:
        print(f"openssl failed, TLS test skipped: {p.stderr.decode()[-300:]}")
        return
    tls = U.start(tls=(cert, key))


def main():
    global srv, up
    H.watchdog(240)
    up = U.start()
    try:
        make_tls()
        # A resolver with known answers for a few test names (shim/slow_dns.c).
        env = {"UPSTREAM": up.url(""),
               "LD_PRELOAD": os.path.join(H.BUILD_DIR, "tests", "apps", "slow_dns.so"),
               "ASAN_OPTIONS": "detect_leaks=1:verify_asan_link_order=0"}
        srv = H.Server(H.app_path("fetchapp"), name="fetch", env=env)
        failures, errors = H.run_with_server(srv, globals())
    finally:
        up.stop()
        if tls:
            tls.stop()
        if tlsdir:
            shutil.rmtree(tlsdir, ignore_errors=True)
    H.finish(failures, errors)


if __name__ == "__main__":
    main()
