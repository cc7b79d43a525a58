"""
test_requests.py — the app through python3-requests, a real and ordinary
client: JSON, forms, cookies in a Session, redirects, 404/405/OPTIONS, a
failing handler, query decoding, unicode paths, a 1 MiB body, and 50
concurrent sleeping requests overlapping on one worker.
"""
import http.client
import json
import os
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import check, eq  # noqa: E402

import requests  # noqa: E402

srv = None
T = 10  # per-request timeout, seconds


def url(path):
    return srv.url(path)


def t_hello():
    r = requests.get(url("/hello"), timeout=T)
    eq(r.status_code, 200, "status")
    eq(r.text, "Hello, World!", "body")
    check(r.headers["Content-Type"].startswith("text/plain"), f"Content-Type {r.headers['Content-Type']}")


def t_json_round_trip():
    doc = {"name": "Zoë", "n": 42, "pi": 3.5, "ok": True, "none": None,
           "list": [1, "two", {"three": [3]}], "nested": {"a": {"b": "c"}}}
    r = requests.post(url("/json"), json=doc, timeout=T)
    eq(r.status_code, 200, "status")
    check(r.headers["Content-Type"].startswith("application/json"), "JSON Content-Type")
    eq(r.json(), doc, "echoed document")


def t_json_invalid_is_400_with_message():
    r = requests.post(url("/json"), data=b'{"a": 1,,}',
                      headers={"Content-Type": "application/json"}, timeout=T)
    eq(r.status_code, 400, "status")
    err = r.json()["error"]
    check("invalid JSON" in err and "line 1" in err, f"error message {err!r}")


def t_json_wrong_content_type_is_400():
    r = requests.post(url("/json"), data=b'{"a": 1}', headers={"Content-Type": "text/plain"}, timeout=T)
    eq(r.status_code, 400, "status")
    check("Content-Type" in r.json()["error"], f"error {r.json()['error']!r}")


def t_form():
    fields = {"name": "Ada Lovelace", "lang": "C&Python", "sym": "a+b=c%", "empty": "", "ü": "ö"}
    r = requests.post(url("/form"), data=fields, timeout=T)
    eq(r.status_code, 200, "status")
    eq(r.json(), fields, "form fields")


def t_cookies_in_session():
    with requests.Session() as s:
        r = s.get(url("/cookie/set"), params={"name": "session", "value": "abc123"}, timeout=T)
        eq(r.status_code, 200, "set status")
        sc = r.headers.get("Set-Cookie", "")
        check(sc.startswith("session=abc123") and "HttpOnly" in sc, f"Set-Cookie {sc!r}")
        s.get(url("/cookie/set"), params={"name": "theme", "value": "dark"}, timeout=T)
        eq(s.get(url("/cookie/get"), params={"name": "session"}, timeout=T).json(),
           {"name": "session", "value": "abc123"}, "session cookie read back")
        eq(s.get(url("/cookie/get"), params={"name": "theme"}, timeout=T).json(),
           {"name": "theme", "value": "dark"}, "second cookie read back")
    r = requests.get(url("/cookie/get"), params={"name": "session"}, timeout=T)
    eq(r.json(), {"name": "session", "value": None}, "no cookie without the session")


def t_redirect_followed():
    r = requests.get(url("/redirect"), timeout=T)
    eq(r.status_code, 200, "final status")
    eq(r.text, "Hello, World!", "final body")
    eq([h.status_code for h in r.history], [302], "redirect chain")
    eq(r.history[0].headers["Location"], "/hello", "Location")
    r = requests.get(url("/redirect"), params={"to": "/user/77"}, timeout=T)
    eq(r.json(), {"id": 77}, "redirect to ?to=")
    r = requests.get(url("/redirect"), allow_redirects=False, timeout=T)
    eq(r.status_code, 302, "unfollowed status")


def t_404():
    r = requests.get(url("/no/such/page"), timeout=T)
    eq(r.status_code, 404, "status")
    check("404" in r.text, f"body {r.text!r}")
    eq(requests.get(url("/user/abc"), timeout=T).status_code, 404, "int converter mismatch")


def t_405_with_allow():
    r = requests.post(url("/hello"), data=b"x", timeout=T)
    eq(r.status_code, 405, "status")
    allow = {m.strip() for m in r.headers.get("Allow", "").split(",")}
    check({"GET", "HEAD", "OPTIONS"} <= allow and "POST" not in allow, f"Allow {allow}")
    r = requests.delete(url("/user/1"), timeout=T)
    eq(r.status_code, 405, "DELETE on a GET route")


def t_options_with_allow():
    r = requests.options(url("/json"), timeout=T)
    eq(r.status_code, 200, "status")
    allow = {m.strip() for m in r.headers.get("Allow", "").split(",")}
    check({"POST", "OPTIONS"} <= allow and "GET" not in allow, f"Allow {allow}")


def t_boom_500_then_fine():
    r = requests.get(url("/boom"), timeout=T)
    eq(r.status_code, 500, "status")
    check("handler returned" not in r.text, "error details leaked without --debug")
    with requests.Session() as s:  # same connection after a 500
        eq(s.get(url("/boom"), timeout=T).status_code, 500, "500 again")
        r = s.get(url("/hello"), timeout=T)
        eq((r.status_code, r.text), (200, "Hello, World!"), "request after a 500")


def t_query_args_percent_decoded():
    r = requests.get(url("/args"), params={"q": "a b&c=d", "plus": "1+1", "u": "日本", "e": ""}, timeout=T)
    eq(r.json(), {"q": "a b&c=d", "plus": "1+1", "u": "日本", "e": ""}, "args")
    r = requests.get(url("/args?x=%41%42+c&x=second&flag"), timeout=T)
    eq(r.json(), {"x": "AB c", "flag": ""}, "raw query (first value wins)")


# Query strings and form bodies whose decoding Werkzeug defines: malformed
# escapes kept literally, '+' as a space, repeated and empty fields.
FIELD_CASES = ["url=%ZZ", "a=%", "a=%4", "a=%41%", "a=x%2", "a=%zz%41", "%ZZ=1",
               "a=%u0041", "tag=a&tag=b&tag=c", "k=&k=2", "a=1+2&b=%2B", "a=b=c",
               "=x", "k", "&&a=1&", "a=1&=&b", "+=+", "a;b=c", "x=%E6%97%A5%e6%9c%ac",
               "t=a&u=b&t=c"]


def werkzeug_fields(raw):
    from werkzeug.datastructures import MultiDict
    from werkzeug.test import EnvironBuilder
    from werkzeug.wrappers import Request
    req = Request(EnvironBuilder(query_string=raw).get_environ())
    md = req.args
    assert isinstance(md, MultiDict)
    items = [list(kv) for kv in md.items(multi=True)]
    return {"items": items, "lists": {k: md.getlist(k) for k, _ in items}}


def grouped(fields):
    """Our fields come in wire order; a MultiDict lists a name's values
    together, at the name's first place."""
    first = {}
    for i, (k, _) in enumerate(fields["items"]):
        first.setdefault(k, i)
    return {"items": sorted(fields["items"], key=lambda kv: first[kv[0]]), "lists": fields["lists"]}


def t_fields_decoded_as_werkzeug_does():
    for raw in FIELD_CASES:
        want = werkzeug_fields(raw)
        # http.client sends the target as written (requests would re-quote it).
        c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=T)
        c.request("GET", "/fields?" + raw)
        r = c.getresponse()
        eq((r.status, grouped(json.loads(r.read()))), (200, want), f"query {raw!r}")
        c.close()
        r = requests.post(url("/fields"), data=raw.encode(), timeout=T,
                          headers={"Content-Type": "application/x-www-form-urlencoded"})
        eq((r.status_code, grouped(r.json())), (200, want), f"form body {raw!r}")


def t_unicode_in_path():
    r = requests.get(url("/files/café/日本語.txt"), timeout=T)
    eq(r.status_code, 200, "status")
    eq(r.json(), {"param": "café/日本語.txt", "path": "/files/café/日本語.txt"}, "decoded path")


def t_headers_seen():
    r = requests.get(url("/headers"), headers={"X-Custom": "value  with  spaces", "X-Empty": ""}, timeout=T)
    got = {k.lower(): v for k, v in r.json()}
    eq(got.get("x-custom"), "value  with  spaces", "X-Custom")
    eq(got.get("x-empty"), "", "X-Empty")
    check(got.get("host", "").startswith("127.0.0.1"), f"Host {got.get('host')!r}")


def t_big_response_intact():
    r = requests.get(url("/big"), timeout=T)
    eq(r.status_code, 200, "status")
    eq(len(r.content), 1 << 20, "length")
    check(r.content == H.big_pattern(1 << 20), "1 MiB body differs from the pattern")
    r = requests.get(url("/big"), params={"n": 3 * 1024 * 1024 + 7}, timeout=T, stream=True)
    n = 0
    for chunk in r.iter_content(65536):
        n += len(chunk)
        time.sleep(0.0005)  # a slowish reader: the server must queue, not drop
    eq(n, 3 * 1024 * 1024 + 7, "3 MiB read slowly")


def t_big_upload_echo():
    body = os.urandom(900 * 1024)
    r = requests.post(url("/echo"), data=body, headers={"Content-Type": "application/x-raw"}, timeout=T)
    eq(r.status_code, 200, "status")
    check(r.content == body, "900 KiB upload echoed differently")
    r = requests.post(url("/echo"), data=b"x" * (2 * 1024 * 1024), timeout=T)
    eq(r.status_code, 413, "2 MiB upload over the 1 MiB default")


def t_chunked_upload_generator():
    # No empty part: Debian's urllib3 sends it as the last chunk, ending the body.
    parts = [b"alpha-", b"beta-" * 1000, b"gamma"]
    r = requests.post(url("/echo"), data=(p for p in parts), headers={"Content-Type": "text/x"}, timeout=T)
    eq(r.status_code, 200, "status")
    eq(r.content, b"".join(parts), "chunked upload echoed")


def t_concurrent_sleepers_overlap():
    n, ms = 50, 300
    results = [None] * n

    def one(i):
        try:
            r = requests.get(url(f"/sleep?ms={ms}"), timeout=T)
            results[i] = (r.status_code, r.text)
        except Exception as e:  # reported below
            results[i] = e

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(T)
    dt = time.monotonic() - t0
    bad = [r for r in results if r != (200, f"slept {ms}")]
    check(not bad, f"{len(bad)} failed: {bad[:3]}")
    print(f"     {n} x /sleep?ms={ms} in {dt:.3f}s")
    check(dt < 1.5, f"{n} concurrent sleeps of {ms} ms took {dt:.2f}s (they do not overlap)")


def t_user_int_converter():
    eq(requests.get(url("/user/12345"), timeout=T).json(), {"id": 12345}, "id")


def main():
    global srv
    H.watchdog(110)
    srv = H.Server(H.app_path("testapp"), name="requests")
    failures, errors = H.run_with_server(srv, globals(), check_alive=True)
    H.finish(failures, errors)


if __name__ == "__main__":
    main()
