"""
test_compress.py — response compression (src/app/compress.c) over real
sockets, against tests/integration/apps/compressapp.c with one worker:

  negotiation   Accept-Encoding with q-values: the coding chosen has the
                best quality Werkzeug's Accept parser gives any of br and
                gzip (table and 300 random headers); x-gzip is gzip; a
                malformed q-value drops its element
  bodies        JSON, HTML, a streamed body, a large static file: gzip
                decoded with zlib and br with python3-brotli equal the
                identity body; curl --compressed (gzip and br) too;
                python3-requests decodes gzip
  events        SSE compressed: each event decodes when it arrives (flushed),
                before the next is sent; the stream ends as a whole one
  never         small bodies, images, HEAD, a 206, Cache-Control:
                no-transform, a body already encoded, a group switched off
                (and a route in it switched on again)
  vary, etags   Vary: Accept-Encoding on every compressible response; the
                ETag of each coding differs; If-None-Match with any of them
                is a 304 carrying it
  precompressed style.css.br / .gz beside style.css sent byte for byte
"""
import gzip
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import zlib

import brotli  # python3-brotli
from werkzeug.datastructures import Accept
from werkzeug.http import parse_accept_header

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import Conn, check, eq, request_bytes  # noqa: E402

APP = H.app_path("compressapp")
TMP = tempfile.mkdtemp(prefix="cf-compress-")
CSS = b"body { margin: 0; padding: 0; color: #333; }\n" * 200
BIG = b"".join(b"line %d: the quick brown fox jumps over the lazy dog\n" % i for i in range(40000))
srv = None


def get(path, ae=None, method="GET", headers=()):
    hdrs = list(headers)
    if ae is not None:
        hdrs.append(("Accept-Encoding", ae))
    return H.http(srv.port, method, path, headers=hdrs, timeout=10)


def decode(r):
    coding = r.header("Content-Encoding")
    if coding == "gzip":
        return gzip.decompress(r.body)
    if coding == "br":
        return brotli.decompress(r.body)
    check(coding is None, f"unexpected Content-Encoding {coding}")
    return r.body


def vary(r):
    return [v.strip().lower() for v in ",".join(r.header_all("Vary")).split(",") if v.strip()]


def curl(*args):
    p = subprocess.run(["curl", "-s", "--max-time", "20", *args], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=30)
    eq(p.returncode, 0, f"curl {args}: {p.stderr!r}")
    return p.stdout


# ---- negotiation -------------------------------------------------------------

TABLE = [
    (None, None), ("", None), ("gzip", "gzip"), ("br", "br"), ("gzip, br", "br"),
    ("br;q=0.5, gzip", "gzip"), ("br;q=0, gzip;q=0", None), ("*", "br"), ("*;q=0", None),
    ("identity", None), ("deflate", None), ("gzip;q=0.8, *;q=0.9", "br"), ("BR", "br"),
    ("GZip;Q=0.5", "gzip"), ("x-gzip", "gzip"), ("br;q=0, *", "gzip"), ("gzip;q=1.000", "gzip"),
    ("br;q=abc, gzip", "gzip"), ("br;q=1.5, gzip;q=0.1", "gzip"), ("gzip ; q=0.2 , br ; q=0.1", "gzip"),
    ("deflate, gzip;q=1.0, *;q=0.5", "gzip"), (" , ,br", "br"),
]


def t_negotiation_table():
    for ae, want in TABLE:
        r = get("/json", ae)
        eq(r.status, 200, f"{ae!r}: status")
        eq(r.header("Content-Encoding"), want, f"Accept-Encoding {ae!r}")
        eq(decode(r), get("/json").body, f"{ae!r}: decoded body")


def werkzeug_quality(header, coding):
    return parse_accept_header(header, Accept).quality(coding)


def t_negotiation_like_werkzeug():
    rnd = random.Random(1234)
    codings = ["br", "gzip", "deflate", "identity", "*", "zstd"]
    for _ in range(300):
        parts = []
        for c in rnd.sample(codings, rnd.randint(1, 4)):
            q = rnd.choice([None, "0", "1", "0.5", "0.25", "0.001", "0.999", "1.0"])
            parts.append(c if q is None else f"{c};q={q}")
        ae = ", ".join(parts)
        got = get("/json", ae).header("Content-Encoding")
        best = max(werkzeug_quality(ae, "br"), werkzeug_quality(ae, "gzip"))
        if best == 0:
            eq(got, None, f"{ae!r}: nothing acceptable")
        else:
            check(got in ("br", "gzip"), f"{ae!r}: compressed (got {got})")
            eq(werkzeug_quality(ae, got), best, f"{ae!r}: {got} has the best quality")


# ---- bodies ---------------------------------------------------------------------

def t_bodies_decode_to_identity():
    for path in ["/json?n=500", "/html", "/lines?n=200", "/static/big.txt", "/static/style.css?x"]:
        plain = get(path)
        eq(plain.status, 200, f"{path}: status")
        check(plain.header("Content-Encoding") is None, f"{path}: identity without Accept-Encoding")
        for coding in ["gzip", "br"]:
            r = get(path, coding)
            eq(r.header("Content-Encoding"), coding, f"{path}: {coding}")
            eq(decode(r), plain.body, f"{path}: {coding} decodes to the identity body")
            check(len(r.body) < len(plain.body) / 2, f"{path}: {coding} {len(r.body)} of {len(plain.body)} bytes")
    big = get("/static/big.txt", "gzip")
    eq(big.header("Transfer-Encoding"), "chunked", "a compressed file goes chunked")
    check(big.header("Content-Length") is None, "no identity Content-Length on it")
    eq(get("/static/big.txt").body, BIG, "identity file bytes")


def t_curl_compressed():
    for path in ["/json?n=300", "/html", "/static/big.txt", "/events?n=5"]:
        plain = curl(srv.url(path))
        eq(curl("--compressed", srv.url(path)), plain, f"curl --compressed {path}")
        eq(curl("--compressed", "-H", "Accept-Encoding: br", srv.url(path)), plain,
           f"curl --compressed, br only, {path}")
    head = curl("-sI", "-H", "Accept-Encoding: br", srv.url("/html")).decode().lower()
    check("content-encoding" not in head, f"HEAD is not compressed: {head}")
    check("vary: accept-encoding" in head, f"HEAD has Vary: {head}")


def t_requests_decodes_gzip():
    import requests
    r = requests.get(srv.url("/json?n=200"), headers={"Accept-Encoding": "gzip"}, timeout=10)
    eq(r.headers.get("Content-Encoding"), "gzip", "requests: gzip")
    eq(len(r.json()), 200, "requests: the JSON decoded")


def t_failed_stream_is_cut():
    # The producer fails: the compressed body must not end as a whole one.
    with Conn(srv.port, timeout=5) as c:
        c.send(request_bytes("GET", "/fail", {"Accept-Encoding": "gzip"}))
        head = c.read_response(5, head_request=True)
        eq(head.header("Content-Encoding"), "gzip", "compressed")
        try:
            while True:
                c._fill(time.monotonic() + 5)
        except H.Closed:
            pass
        check(not c.buf.endswith(b"0\r\n\r\n"), f"the chunked body is not ended properly: {c.buf!r}")


# ---- event streams -----------------------------------------------------------------

def read_events_as_they_come(coding, n, ms):
    """Decode the stream as it arrives; return the time each event decoded."""
    dec = zlib.decompressobj(16 + 15) if coding == "gzip" else brotli.Decompressor()
    with Conn(srv.port, timeout=10) as c:
        c.send(request_bytes("GET", f"/events?n={n}&ms={ms}", {"Accept-Encoding": coding}))
        head = c.read_response(10, head_request=True)
        eq(head.header("Content-Encoding"), coding, "the event stream is compressed")
        check("accept-encoding" in vary(head), "Vary on the event stream")
        t0 = time.monotonic()
        text, times, ended = b"", [], False
        while not ended:
            deadline = time.monotonic() + 10
            size = int(c._read_until(b"\r\n", deadline).split(b";")[0], 16)
            chunk = c._read_exact(size + 2, deadline)[:-2]
            if size == 0:
                ended = True
                break
            out = dec.decompress(chunk) if coding == "gzip" else dec.process(chunk)
            text += out
            while text.count(b"\n\n") > len(times):
                times.append(time.monotonic() - t0)
        if coding == "gzip":
            check(dec.eof, "gzip stream complete")
        else:
            check(dec.is_finished(), "brotli stream complete")
    want = b"".join(b"event: tick\ndata: event %d\n\n" % i for i in range(n))
    eq(text, want, "decoded events")
    return times


def t_events_flushed_one_by_one():
    r = get("/lines?n=100", "br, gzip")
    eq(r.header("Content-Encoding"), "gzip", "a stream prefers gzip (its encoder is a tenth of brotli's)")
    eq(get("/json?n=100", "br, gzip").header("Content-Encoding"), "br", "a whole body prefers brotli")
    for coding in ["gzip", "br"]:
        times = read_events_as_they_come(coding, 4, 300)
        eq(len(times), 4, f"{coding}: events")
        for i in range(1, 4):
            check(times[i] - times[i - 1] > 0.2,
                  f"{coding}: event {i} decoded {times[i] - times[i - 1]:.3f}s after the one before "
                  f"(each must arrive when sent): {times}")


# ---- what is never compressed -----------------------------------------------------

def t_never_compressed():
    cases = [("/small", "under the minimum size"), ("/png", "not a compressible type"),
             ("/notransform", "Cache-Control: no-transform"), ("/plain/json", "switched off for the group")]
    for path, why in cases:
        r = get(path, "gzip, br")
        eq(r.status, 200, f"{path}: status")
        eq(r.header("Content-Encoding"), None, f"{path}: {why}")
    check("accept-encoding" not in vary(get("/png", "br")), "no Vary on an image")
    check("accept-encoding" in vary(get("/small", "br")), "Vary on a small text")
    r = get("/encoded", "gzip, br")
    eq(r.header_all("Content-Encoding"), ["x-custom"], "the handler's own encoding, alone")
    eq(r.body, get("/encoded").body, "its body untouched")
    eq(get("/plain/on", "br").header("Content-Encoding"), "br", "the route switched on again")
    r = get("/html", "br", method="HEAD")
    eq((r.status, r.header("Content-Encoding"), r.body), (200, None, b""), "HEAD")
    eq(int(r.header("Content-Length")), len(get("/html").body), "HEAD's identity length")
    r = get("/static/big.txt", "gzip, br", headers=[("Range", "bytes=100-199")])
    eq((r.status, r.header("Content-Encoding")), (206, None), "a range")
    eq(r.body, BIG[100:200], "the range's bytes")


# ---- Vary and ETags ------------------------------------------------------------------------

def t_vary_and_etags():
    tags = {}
    for coding in [None, "gzip", "br"]:
        r = get("/etag", coding)
        check("accept-encoding" in vary(r), f"{coding}: Vary")
        tags[coding] = r.header("ETag")
    eq(tags[None], '"v1"', "identity ETag")
    eq(len(set(tags.values())), 3, f"a different ETag per coding: {tags}")
    for coding in [None, "gzip", "br"]:
        r = get("/static/style.css", coding)
        etag = r.header("ETag")
        r2 = get("/static/style.css", coding, headers=[("If-None-Match", etag)])
        eq((r2.status, r2.header("ETag")), (304, etag), f"{coding}: If-None-Match its own ETag")
    plain = get("/static/big.txt").header("ETag")
    for ae in ["gzip", "br", "br, gzip"]:
        r = get("/static/big.txt", ae)
        tag = r.header("ETag")
        check(plain != tag, f"{ae}: the compressed file's ETag differs: {plain} {tag}")
        r = get("/static/big.txt", ae, headers=[("If-None-Match", tag)])
        eq((r.status, r.header("ETag")), (304, tag), f"{ae}: 304 for the compressed file's ETag")


def t_precompressed_files():
    for coding, ext in [("br", ".br"), ("gzip", ".gz")]:
        r = get("/static/style.css", coding)
        eq(r.header("Content-Encoding"), coding, f"{coding}: the precompressed copy")
        with open(os.path.join(TMP, "style.css" + ext), "rb") as f:
            eq(r.body, f.read(), f"{coding}: the copy byte for byte")
        eq(r.header("Content-Type"), "text/css; charset=utf-8", f"{coding}: the original's type")
        check("accept-encoding" in vary(r), f"{coding}: Vary")
    r = get("/static/style.css")
    eq((r.header("Content-Encoding"), r.body), (None, CSS), "no Accept-Encoding: the original")
    r = get("/static/only-gz.css", "br, gzip")
    eq(r.header("Content-Encoding"), "gzip", "only a .gz copy: sent though br is preferred")
    eq(gzip.decompress(r.body), CSS, "its bytes")
    r = get("/static/style.css", "br", headers=[("Range", "bytes=0-9")])
    eq(r.status, 206, "a range of the copy")
    with open(os.path.join(TMP, "style.css.br"), "rb") as f:
        eq(r.body, f.read()[:10], "the copy's first bytes")


def main():
    global srv
    H.watchdog(120)
    with open(os.path.join(TMP, "big.txt"), "wb") as f:
        f.write(BIG)
    for name in ["style.css", "only-gz.css"]:
        with open(os.path.join(TMP, name), "wb") as f:
            f.write(CSS)
    with open(os.path.join(TMP, "style.css.br"), "wb") as f:
        f.write(brotli.compress(CSS))
    for name in ["style.css.gz", "only-gz.css.gz"]:
        with open(os.path.join(TMP, name), "wb") as f:
            f.write(gzip.compress(CSS, mtime=0))
    srv = H.Server(APP, args=["--workers", "1"], env={"STATIC_DIR": TMP}, name="compress")
    try:
        failures, errors = H.run_with_server(srv, globals(), check_alive=True)
    finally:
        shutil.rmtree(TMP, ignore_errors=True)
    H.finish(failures, errors)


if __name__ == "__main__":
    main()
