"""
test_seeds.py — examples/seeds over real sockets, as a new user would try
it: every endpoint of issue 7 with a real HTTP client, the fetching
endpoints against a local upstream with 400 ms delays (the calls must
overlap), 200 concurrent /api/data on one worker in about 2 s, the
background task's log line, data that survives a restart, and a query
that fails (a rule the app does not know, whose message quotes the row)
answered with the app's plain 500 page, the message only in the log with
--debug. test_seeds_pg.py runs the database tests on PostgreSQL.
"""
import json
import os
import sqlite3
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
import upstream  # noqa: E402

import requests  # noqa: E402

SEEDS = os.path.join(os.environ.get("CF_BUILD_DIR", "build"), "examples", "seeds")
T = 10
tmp = tempfile.mkdtemp(prefix="cf-seeds-")
DB = f"sqlite:///{os.path.join(tmp, 'seeds.db')}"  # sqlite:/// + absolute path = 4 slashes
up = upstream.start()
URLS = f"{up.url('/delay?ms=400&id=a')},{up.url('/delay?ms=400&id=b')}"
srv = None


def start(urls=URLS, name="seeds", args=()):
    s = H.Server(SEEDS, args=args, env={"DATABASE_URL": DB, "UPSTREAM_URLS": urls}, name=name)
    return s.start()


def forbid_sqlite(word):
    """Inserting an item called `word` fails, with a message that quotes the
    row the way PostgreSQL's "Failing row contains (...)" does."""
    with sqlite3.connect(DB[len("sqlite:///"):]) as c:
        c.execute(f"CREATE TRIGGER IF NOT EXISTS cf_forbid BEFORE INSERT ON items "
                  f"WHEN NEW.name = '{word}' "
                  f"BEGIN SELECT RAISE(ABORT, 'Failing row contains ({word})'); END")


FORBID = forbid_sqlite  # test_seeds_pg.py puts PostgreSQL's in


def url(path):
    return srv.url(path)


def t_api_data_and_friends():
    t0 = time.monotonic()
    r = requests.get(url("/api/data"), timeout=T)
    H.eq(r.status_code, 200, "status")
    H.eq(r.json(), {"data": "some fetched data"}, "/api/data body")
    H.check(1.9 < time.monotonic() - t0 < 3.0, "/api/data takes about 2 s")
    r = requests.get(url("/data"), timeout=T)
    H.eq((r.status_code, r.text), (200, "Done!"), "/data")
    r = requests.get(url("/async"), timeout=T)
    H.eq((r.status_code, r.text), (200, "This is an async response"), "/async")


def t_many_waiting_on_one_worker():
    n = 200
    results = []

    def get():
        try:
            results.append(requests.get(url("/api/data"), timeout=T).status_code)
        except Exception as e:  # noqa: BLE001
            results.append(repr(e))

    threads = [threading.Thread(target=get) for _ in range(n)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    took = time.monotonic() - t0
    print(f"  {n} concurrent /api/data on one worker: {took:.2f} s")
    H.eq(results.count(200), n, f"all {n} answered 200 ({results[:3]})")
    H.check(took < 3.5, f"{n} x 2 s waits took {took:.2f} s: they did not overlap")


def t_concurrent_data_overlaps():
    t0 = time.monotonic()
    r = requests.get(url("/api/concurrent_data"), timeout=T)
    took = time.monotonic() - t0
    print(f"  /api/concurrent_data over two 400 ms upstreams: {took * 1000:.0f} ms")
    H.eq(r.status_code, 200, "status")
    H.eq([x["id"] for x in r.json()], ["a", "b"], "bodies in URL order")
    H.check(took < 0.7, f"two 400 ms calls took {took:.2f} s: not concurrent")


def t_urls_v2_and_async_request():
    r = requests.get(url("/async_get_urls_v2"), timeout=T)
    H.eq(r.status_code, 200, "status")
    H.check(r.headers["Content-Type"].startswith("text/html"), "HTML")
    first, second = URLS.split(",")
    H.eq(r.text, f"<h1>URLs:</h1><p>URL: {first} --- Status Code: 200</p>"
                 f"<p>URL: {second} --- Status Code: 200</p>", "v2 page")
    r = requests.get(url("/async-request"), timeout=T)
    H.eq(r.status_code, 200, "status")
    H.check(r.text.startswith("Fetched data: {"), r.text)
    H.eq(json.loads(r.text[len("Fetched data: "):])["id"], "a", "the first URL's body")


def t_upstream_failures():
    global srv
    bad = f"{up.url('/delay?ms=10&id=a')},{up.url('/status/503')},http://127.0.0.1:1/refused"
    other = start(urls=bad, name="seeds-bad")
    try:
        r = requests.get(other.url("/api/concurrent_data"), timeout=T)
        H.eq(r.status_code, 502, "an upstream 503 gives 502")
        H.check("/status/503" in r.json()["error"], f"error names the URL: {r.json()}")
        r = requests.get(other.url("/async_get_urls_v2"), timeout=T)
        H.check("Status Code: 503</p>" in r.text, "non-2xx statuses are listed")
        H.check("http://127.0.0.1:1/refused --- Error:" in r.text, "a refused call is listed")
    finally:
        H.stop_and_check(other)


def t_mocks_default_upstreams():
    other = H.Server(SEEDS, env={"DATABASE_URL": DB, "UPSTREAM_URLS": ""}, name="seeds-mock",
                     port_arg=False)
    port = H.free_port()
    other.env["PORT"] = str(port)
    other.args = ["--host", "127.0.0.1"]
    other.start()
    try:
        r = requests.get(other.url("/api/concurrent_data"), timeout=T)
        H.eq(r.status_code, 200, "mocks answer")
        H.eq([x["id"] for x in r.json()], [1, 1], "todo and post")
        H.check("title" in r.json()[0], "jsonplaceholder-like")
    finally:
        H.stop_and_check(other)


def t_hooks_errors_middleware():
    t0 = time.monotonic()
    r = requests.get(url("/hooked/whoami"), timeout=T)
    H.eq((r.status_code, r.json()), (200, {"user": "demo"}), "whoami")
    H.eq(r.headers.get("X-Request-Status"), "logged", "after hook header")
    # Two 100 ms sleeps of the loop's millisecond clock: each at least 97 real ms.
    H.check(time.monotonic() - t0 >= 0.194, "both hooks awaited 100 ms")
    r = requests.get(url("/boom"), timeout=T)
    H.eq((r.status_code, r.text), (500, "500 error"), "async 500 handler")
    r = requests.get(url("/timed"), timeout=T)
    H.eq(r.status_code, 200, "timed")
    st = r.headers.get("Server-Timing", "")
    H.check(st.startswith("app;dur=") and float(st.split("=")[1]) >= 47, f"Server-Timing {st!r} (a 50 ms sleep: at least 47 real ms)")


def t_db_endpoints():
    r = requests.get(url("/async-db"), timeout=T)
    H.eq(r.status_code, 200, "status")
    H.eq([row["name"] for row in r.json()["data"]], ["alpha", "beta", "gamma"], "my_table rows")
    r = requests.post(url("/items"), json={"name": "kettle"}, timeout=T)
    H.eq(r.status_code, 201, "created")
    item = r.json()
    H.eq(item["name"], "kettle", "item name")
    H.eq(requests.get(url(f"/items/{item['id']}"), timeout=T).json(), item, "get item")
    H.check(item in requests.get(url("/items"), timeout=T).json(), "listed")
    r = requests.put(url("/items"), json={}, timeout=T)
    H.eq(r.status_code, 405, "PUT /items")
    H.check("POST" in r.headers["Allow"] and "GET" in r.headers["Allow"], r.headers["Allow"])
    H.eq(requests.delete(url(f"/items/{item['id']}"), timeout=T).status_code, 204, "deleted")
    H.eq(requests.delete(url(f"/items/{item['id']}"), timeout=T).status_code, 404, "gone")
    H.eq(requests.get(url(f"/items/{item['id']}"), timeout=T).status_code, 404, "404 after")


def t_users():
    r = requests.post(url("/add-user"), json={"name": "Ada", "email": "ada@example.com"}, timeout=T)
    H.eq(r.status_code, 201, "created")
    body = r.json()
    H.eq(body["message"], "User created", "message")
    uid = body["user"]["id"]
    H.eq(body["user"], {"id": uid, "name": "Ada", "email": "ada@example.com"}, "user")
    r = requests.post(url("/add-user"), json={"name": "Ada2", "email": "ada@example.com"}, timeout=T)
    H.eq(r.status_code, 409, "duplicate email")
    r = requests.post(url("/add-user"), json={"name": "", "email": "x@example.com"}, timeout=T)
    H.eq(r.status_code, 400, "empty name")
    H.check("name" in r.json()["error"], r.json())
    r = requests.post(url("/add-user"), json={"name": "Bob"}, timeout=T)
    H.check(r.status_code == 400 and "email" in r.json()["error"], r.text)
    r = requests.post(url("/add-user"), data="not json", headers={"Content-Type": "application/json"},
                      timeout=T)
    H.eq(r.status_code, 400, "not JSON")
    H.eq(requests.get(url(f"/user/{uid}"), timeout=T).json(), body["user"], "GET /user/<id>")
    r = requests.get(url("/user/999999"), timeout=T)
    H.eq((r.status_code, r.json()), (404, {"error": "User not found"}), "missing user")
    users = requests.get(url("/users"), timeout=T).json()
    H.eq([u["id"] for u in users], sorted(u["id"] for u in users), "id order")
    H.check(body["user"] in users, "listed")


def t_failed_query_is_a_generic_500():
    secret = "kettle-of-user-42"
    FORBID(secret)
    r = requests.post(url("/items"), json={"name": secret}, timeout=T)
    H.eq((r.status_code, r.text), (500, "500 error"), "the app's 500 page, no database message")
    dbg = start(name="seeds-debug", args=["--debug"])
    try:
        r = requests.post(dbg.url("/items"), json={"name": secret}, timeout=T)
        H.eq((r.status_code, r.text), (500, "500 error"), "--debug: the app's page still answers")
        dbg.wait_stderr("Failing row contains")
        H.check(secret in dbg.stderr(), "--debug: the message is in the server's log")
    finally:
        H.stop_and_check(dbg)
    H.check(secret not in srv.stderr(), "not logged without --debug")


def t_start_task():
    t0 = time.monotonic()
    r = requests.get(url("/start-task"), timeout=T)
    H.eq((r.status_code, r.json()), (200, {"message": "Task started"}), "start-task")
    H.check(time.monotonic() - t0 < 0.5, "answered at once")
    H.check("Background task completed" not in srv.stderr(), "not done yet")
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline and "Background task completed" not in srv.stderr():
        time.sleep(0.1)
    took = time.monotonic() - t0
    H.check("Background task completed" in srv.stderr(), "the task's log line")
    H.check(4.8 < took < 7, f"the task took {took:.1f} s")


def t_data_survives_a_restart():
    global srv
    requests.post(url("/add-user"), json={"name": "Keep", "email": "keep@example.com"}, timeout=T)
    H.stop_and_check(srv, expect_status=0)
    srv = start()
    users = requests.get(url("/users"), timeout=T).json()
    H.check(any(u["email"] == "keep@example.com" for u in users), "user still there after restart")


if __name__ == "__main__":
    srv = start()
    try:
        failures = H.run_tests(H.collect(globals()))
    finally:
        if srv:
            H.stop_and_check(srv)
        up.stop()
    H.finish(failures)
