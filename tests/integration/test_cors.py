"""
test_cors.py — CORS headers over real sockets (tests/integration/apps/corsapp.c),
read with python3-requests and raw sockets, and the origin decisions compared
with Flask-CORS (python3-flask-cors) configured the same way:

  preflight_allowed        204, Allow-Origin echoed, Allow-Methods (the URL's),
                           Allow-Headers, Max-Age 600, Vary: Origin, and the
                           wrapper's X-Wrapped on the automatic answer
  preflight_refused        a header or a method not allowed, a disallowed
                           origin: still 204, no Access-Control-* header; an
                           unknown URL: 404 without a preflight answer
  before_hook_refuses      /api/strict's before hook answers its preflight 401
  simple_requests          allowed origin: Allow-Origin + Expose-Headers;
                           disallowed: the normal body, no CORS header; no
                           Origin: none; Vary: Origin on all; 404 pages too
  credentials              the credentials group echoes the origin with
                           Allow-Credentials even when asked by requests'
                           Session with its cookie; "*" stays "*" without
  same_as_flask_cors       a table of requests: Allow-Origin and
                           Allow-Credentials as Flask-CORS gives them
"""
import os
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import check, eq  # noqa: E402

import requests  # noqa: E402

PAGE, OTHER, EVIL = "http://page.test", "http://other.test", "http://evil.test"
srv = None
T = 10


def url(path):
    return srv.url(path)


def acao(r):
    return r.headers.get("Access-Control-Allow-Origin")


def cors_headers(r):
    return {k: v for k, v in r.headers.items() if k.lower().startswith("access-control-")}


def preflight(path, method, headers=None, origin=PAGE):
    h = {"Origin": origin, "Access-Control-Request-Method": method}
    if headers:
        h["Access-Control-Request-Headers"] = headers
    return requests.options(url(path), headers=h, timeout=T)


def t_preflight_allowed():
    r = preflight("/api/data", "PUT", "content-type,x-token")
    eq(r.status_code, 204, "status")
    eq(acao(r), PAGE, "Allow-Origin")
    eq(r.headers.get("Access-Control-Allow-Methods"), "GET, HEAD, PUT, DELETE, OPTIONS", "Allow-Methods")
    eq(r.headers.get("Access-Control-Allow-Headers"), "Content-Type, X-Token", "Allow-Headers")
    eq(r.headers.get("Access-Control-Max-Age"), "600", "Max-Age")
    eq(r.headers.get("Vary"), "Origin", "Vary")
    eq(r.headers.get("X-Wrapped"), "1", "the app-wide wrapper saw the automatic answer")
    check("Access-Control-Allow-Credentials" not in r.headers, "no credentials here")
    eq(r.content, b"", "body")
    # The same on a raw socket: one header of each, exactly.
    with H.Conn(srv.port) as c:
        c.send(H.request_bytes("OPTIONS", "/api/data", [("Origin", OTHER),
                                                        ("Access-Control-Request-Method", "DELETE")]))
        raw = c.read_response()
    eq(raw.status, 204, "raw status")
    eq(raw.header_all("Access-Control-Allow-Origin"), [OTHER], "raw Allow-Origin")
    eq(raw.header_all("Vary"), ["Origin"], "raw Vary")
    check(raw.header("Access-Control-Allow-Headers") is None, "no headers asked, none allowed")


def t_preflight_refused():
    for what, r in [("header", preflight("/api/data", "PUT", "x-secret")),
                    ("method not routed", preflight("/api/data", "PATCH")),
                    ("origin", preflight("/api/data", "PUT", origin=EVIL))]:
        eq(cors_headers(r), {}, f"{what}: CORS headers")
        eq(r.status_code, 204, f"{what}: status")
        eq(r.headers.get("Vary"), "Origin", f"{what}: Vary")
    # Not found: a 404 page like any (the browser fails a preflight that is
    # not 2xx), with no preflight answer.
    r = preflight("/api/nothing", "GET")
    eq(r.status_code, 404, "no such URL: status")
    check("Access-Control-Allow-Methods" not in r.headers, "no such URL: Allow-Methods")


def t_before_hook_refuses():
    r = preflight("/api/strict", "PUT")
    eq(r.status_code, 401, "status")
    # The error page still names the origin: the page may read the 401.
    eq(acao(r), PAGE, "Allow-Origin on the refusal")
    check("Access-Control-Allow-Methods" not in r.headers, "no preflight answer")


def vary(r):
    return [v.strip() for v in r.headers.get("Vary", "").split(",") if v.strip()]


def t_simple_requests():
    r = requests.get(url("/api/data"), headers={"Origin": PAGE}, timeout=T)
    eq((r.status_code, r.text), (200, "data"), "response")
    eq(acao(r), PAGE, "Allow-Origin")
    eq(r.headers.get("Access-Control-Expose-Headers"), "X-Total", "Expose-Headers")
    check("Access-Control-Max-Age" not in r.headers, "Max-Age is for preflights")
    r = requests.get(url("/api/data"), headers={"Origin": EVIL}, timeout=T)
    eq((r.status_code, r.text), (200, "data"), "disallowed origin: the normal response")
    eq(cors_headers(r), {}, "disallowed origin: CORS headers")
    # (Accept-Encoding is in Vary too: the text could be compressed)
    eq(vary(r), ["Origin", "Accept-Encoding"], "Vary")
    r = requests.get(url("/api/data"), timeout=T)
    eq(cors_headers(r), {}, "no Origin: CORS headers")
    eq(vary(r), ["Origin", "Accept-Encoding"], "no Origin: Vary")
    r = requests.get(url("/api/missing"), headers={"Origin": PAGE}, timeout=T)
    eq(r.status_code, 404, "404")
    eq(acao(r), PAGE, "404: Allow-Origin")
    eq(r.headers.get("X-Wrapped"), "1", "404: the wrapper saw it")


def t_credentials():
    s = requests.Session()
    r = s.post(url("/api/login"), headers={"Origin": PAGE}, timeout=T)
    eq(acao(r), PAGE, "login: Allow-Origin")
    eq(r.headers.get("Access-Control-Allow-Credentials"), "true", "login: Allow-Credentials")
    r = s.get(url("/api/me"), headers={"Origin": PAGE}, timeout=T)
    eq(r.text, "s3cret", "the cookie came back")
    eq(r.headers.get("Access-Control-Allow-Credentials"), "true", "me: Allow-Credentials")
    r = requests.get(url("/pub/any"), headers={"Origin": EVIL}, timeout=T)
    eq(acao(r), "*", "any origin, no credentials")
    r = preflight("/api/login", "POST", "content-type")
    eq((r.status_code, acao(r)), (204, PAGE), "credentialed preflight")
    eq(r.headers.get("Access-Control-Allow-Credentials"), "true", "preflight Allow-Credentials")


def flask_reference():
    try:
        import flask
        import flask_cors
    except ImportError:
        raise AssertionError("python3-flask and python3-flask-cors are needed (scripts/install-deps)") from None
    app = flask.Flask("reference")
    flask_cors.CORS(app, resources={
        r"/api/login": {"origins": [PAGE, OTHER], "supports_credentials": True},
        r"/api/me": {"origins": [PAGE, OTHER], "supports_credentials": True},
        r"/pub/*": {"origins": "*", "send_wildcard": True},
        r"/*": {"origins": [PAGE, OTHER], "allow_headers": ["Content-Type", "X-Token"],
                "expose_headers": ["X-Total"], "max_age": 600},
    })
    app.add_url_rule("/api/data", "data", lambda: "data", methods=["GET", "PUT", "DELETE"])
    app.add_url_rule("/api/login", "login", lambda: "in", methods=["POST"])
    app.add_url_rule("/api/me", "me", lambda: "me")
    app.add_url_rule("/pub/any", "any", lambda: "public")
    return app.test_client()


def t_same_as_flask_cors():
    ref = flask_reference()
    cases = []
    # Not compared: requests without Origin, to which Flask-CORS (always_send)
    # names an allowed origin too; the protocol does not ask for it.
    for origin in (PAGE, OTHER, EVIL, "http://page.test:80", "null"):
        for method, path in (("GET", "/api/data"), ("PUT", "/api/data"), ("POST", "/api/login"),
                             ("GET", "/api/me"), ("GET", "/pub/any")):
            cases.append((method, path, {"Origin": origin}))
            cases.append(("OPTIONS", path, {"Origin": origin, "Access-Control-Request-Method": method}))
    diffs = []
    for method, path, headers in cases:
        ours = requests.request(method, url(path), headers=headers, timeout=T).headers
        theirs = ref.open(path, method=method, headers=headers).headers
        for name in ("Access-Control-Allow-Origin", "Access-Control-Allow-Credentials"):
            if ours.get(name) != theirs.get(name):
                diffs.append(f"{method} {path} {headers}: {name} ours {ours.get(name)!r}, "
                             f"Flask-CORS {theirs.get(name)!r}")
    check(not diffs, "differences from Flask-CORS:\n  " + "\n  ".join(diffs))
    print(f"     {len(cases)} requests, same origin decisions as Flask-CORS")


def main():
    global srv
    H.watchdog(100)
    srv = H.Server(H.app_path("corsapp"), name="cors", env={"CORS_ORIGINS": f"{PAGE},{OTHER}"})
    failures, errors = H.run_with_server(srv, globals(), check_alive=True)
    H.finish(failures, errors)


if __name__ == "__main__":
    main()
