"""
test_cors_browser.py — CORS as a browser enforces it: headless Chromium
(chromium, chromium-driver, python3-selenium) on a page served by one
corsapp (tests/integration/apps/corsapp.c) calls fetch() on the API of another
on a different port, hence a different origin; a third page's origin is not
allowed. What the browser let the page read, and what it refused with a
TypeError, is the test:

  simple_get               allowed; the exposed X-Total is readable, X-Hidden not
  custom_header            X-Token: preflighted and allowed; X-Secret: refused
  put_and_delete           preflighted and allowed; PATCH (not routed): refused
  preflight_cached         a second identical PUT sends no preflight (Max-Age)
  credentials              a cookie set and sent back with credentials:
                           "include" on the credentials group; the same on a
                           route without credentials: refused
  before_hook_refuses      a preflight answered 401 by a before hook: refused
  disallowed_origin        from the other page: even a simple GET fails, and
                           the server still answered it (200 in its access log)

It fails (does not skip) when Chromium or its driver is missing: scripts/install-deps
installs them.
"""
import os
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import check, eq  # noqa: E402

page = other = api = None
driver = None

FETCH_JS = """
const done = arguments[arguments.length - 1];
fetch(arguments[0], arguments[1]).then(async r => done({
    ok: true, status: r.status, body: await r.text(),
    total: r.headers.get('X-Total'), hidden: r.headers.get('X-Hidden')
})).catch(e => done({ok: false, error: e.name + ': ' + e.message}));
"""


def fetch(path, init=None, on=None):
    """fetch(API + path, init) in the page at `on` (default: the allowed page)."""
    want = (on or page).url("/")
    if driver.current_url != want:
        driver.get(want)
    return driver.execute_async_script(FETCH_JS, api.url(path), init or {})


def allowed(res, what):
    check(res["ok"], f"{what}: the browser refused: {res.get('error')}")
    return res


def refused(res, what):
    check(not res["ok"], f"{what}: the browser allowed it: {res}")
    check(res["error"].startswith("TypeError"), f"{what}: {res['error']}")


def preflights():
    return int(H.http(api.port, "GET", "/api/stats").body.decode().split(":")[1].strip(" }"))


def t_simple_get():
    res = allowed(fetch("/api/data"), "GET")
    eq((res["status"], res["body"]), (200, "data"), "response")
    eq(res["total"], "3", "exposed header")
    eq(res["hidden"], None, "header not exposed")


def t_custom_header():
    res = allowed(fetch("/api/data", {"headers": {"X-Token": "t"}}), "X-Token")
    eq(res["body"], "data", "body")
    refused(fetch("/api/data", {"headers": {"X-Secret": "s"}}), "X-Secret")


def t_put_and_delete():
    eq(allowed(fetch("/api/data", {"method": "PUT", "body": "x"}), "PUT")["body"], "put", "PUT")
    eq(allowed(fetch("/api/data", {"method": "DELETE"}), "DELETE")["body"], "deleted", "DELETE")
    refused(fetch("/api/data", {"method": "PATCH"}), "PATCH")


def t_preflight_cached():
    init = {"method": "PUT", "body": "y", "headers": {"X-Token": "cache"}}
    allowed(fetch("/api/data", init), "first PUT")
    n = preflights()
    check(n >= 1, f"the server counted {n} preflights")
    allowed(fetch("/api/data", init), "second PUT")
    eq(preflights(), n, "preflights after the second identical PUT")


def t_credentials():
    res = allowed(fetch("/api/login", {"method": "POST", "credentials": "include"}), "login")
    eq(res["body"], "logged in", "login")
    eq(allowed(fetch("/api/me", {"credentials": "include"}), "me")["body"], "s3cret", "cookie sent")
    eq(allowed(fetch("/api/me"), "me without credentials")["body"], "nobody", "no cookie")
    refused(fetch("/api/data", {"credentials": "include"}), "credentials where not allowed")


def t_before_hook_refuses():
    refused(fetch("/api/strict", {"method": "PUT"}), "preflight answered 401")


def t_disallowed_origin():
    before = api.stdout().count('"GET /api/data?from=other')
    refused(fetch("/api/data?from=other", on=other), "GET from another origin")
    H.wait_until(lambda: api.stdout().count('"GET /api/data?from=other') > before, 5,
                 what="the server's access log line")
    check(' 200 ' in [l for l in api.stdout().splitlines() if "from=other" in l][-1],
          "the server answered 200; the browser kept it from the page")


def main():
    global page, other, api, driver
    H.watchdog(150)
    app = H.app_path("corsapp")
    page = H.Server(app, name="cors-page")
    other = H.Server(app, name="cors-other")
    failures, errors = [], []
    try:
        page.start()
        other.start()
        api = H.Server(app, name="cors-api", env={"CORS_ORIGINS": f"http://127.0.0.1:{page.port}"})
        api.start()
        driver = H.chromium()
        failures = H.run_tests(H.collect(globals()))
    except AssertionError as e:
        print(f"FAIL setup: {e}")
        errors.append("setup")
    finally:
        if driver is not None:
            driver.quit()
        for s in (api, page, other):
            try:
                if s is not None:
                    H.stop_and_check(s, expect_status=0)
            except AssertionError as e:
                print(f"FAIL shutdown: {e}")
                errors.append("shutdown")
    H.finish(failures, errors)


if __name__ == "__main__":
    main()
