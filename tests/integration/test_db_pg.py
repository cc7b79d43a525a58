"""
test_db_pg.py — the database layer over real sockets, against a real
PostgreSQL server this script starts itself (and, for the parts that apply
to both backends, against a SQLite file):

  - a private server (pg.py), stopped and removed at the end; without the
    PostgreSQL binaries the PostgreSQL part is skipped with a message;
  - CRUD, NULLs, unicode, 1 MiB values, types (bool, json, numeric, bytea),
    error codes (unique, foreign key, NOT NULL, CHECK, syntax, unknown
    table/column, parameter count, statement timeout);
  - pipelining: three statements a request starts together run on one
    connection (one backend pid);
  - the loop is never blocked: while one request runs a 1 s statement
    (pg_sleep(1); on SQLite a recursive CTE on the pool) other requests on
    the same worker, database ones included, are answered in milliseconds;
  - pool exhaustion waits: pool size 2, 10 concurrent requests each holding
    a connection for 200 ms all succeed (in about 5 x 200 ms);
  - cancellation: a client that disconnects while its request sleeps inside
    a transaction (in the handler, or in the server via pg_sleep) leaves no
    row behind, and the worker goes on;
  - a "BEGIN" sent as a plain query leaves no connection in a transaction;
  - a handler that crashes (abort) inside a transaction: crash recovery
    gives its connection back rolled back, so a request waiting for that
    connection (PostgreSQL, pool of 1) or that write lock (SQLite) goes on;
  - server restart mid-run (pg_ctl restart): the next request succeeds on a
    fresh connection; with the server stopped, requests fail fast with 503
    (CF_EDBCONN) and succeed again once it is back;
  - a statement whose client left (or whose await timed out) is stopped on
    the server by a cancel request, which never hits another statement;
  - SIGTERM waits for a request whose client left while its statement runs;
  - host names in the URL are looked up off the loop (a 1.5 s lookup does
    not delay other requests), with fallback across a name's addresses and
    a clear error for a name that does not exist;
  - no sanitizer findings in the app's output (ASan builds).
"""
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import Conn, check, eq, request_bytes  # noqa: E402
from pg import SKIP, Postgres  # noqa: E402


def get(srv, path, timeout=10.0):
    r = H.http(srv.port, "GET", path, timeout=timeout)
    try:
        body = json.loads(r.body) if r.body else None
    except ValueError:
        body = r.body
    return r.status, body


def post_json(srv, path, obj):
    body = json.dumps(obj).encode()
    r = H.http(srv.port, "POST", path, headers={"Content-Type": "application/json"}, body=body)
    return r.status, json.loads(r.body)


# --------------------------------------------------------------------------
# Tests shared by both backends (srv is the running dbapp)
# --------------------------------------------------------------------------

srv = None
backend = None
pgs = Postgres()


def start_app(url, pool=None):
    env = {"DATABASE_URL": url}
    if pool:
        env["CF_DB_POOL_SIZE"] = str(pool)
    return H.Server(H.app_path("dbapp"), args=["--workers", "1"], env=env, name="dbapp").start()


def t_crud():
    st, b = post_json(srv, "/items", {"name": "Ada", "email": "ada@example.com"})
    eq(st, 201, "create")
    iid = b["id"]
    st, b = get(srv, f"/items/{iid}")
    eq((st, b), (200, {"id": iid, "name": "Ada", "email": "ada@example.com"}), "read")
    st, b = post_json(srv, "/items", {"name": "Nul"})
    st, b = get(srv, f"/items/{b['id']}")
    eq(b["email"], None, "NULL as null")
    st, b = post_json(srv, "/items", {"name": "Eve", "email": "ada@example.com"})
    eq(st, 409, "duplicate email")
    eq(b["code"], -1202, "CF_EUNIQUE")
    st, b = get(srv, "/items/999999")
    eq(st, 404, "missing row")


def t_types_unicode_big():
    st, b = get(srv, "/types")
    eq(st, 200, "/types")
    check(b["getters"], "typed getters")
    row = b["row"]
    eq(row["i"], -9007199254740993, "int64")
    eq(row["r"], 2.5, "real")
    eq(row["t"], "Zo\u00eb \u65e5\u672c\u8a9e \U0001f389", "unicode")
    eq(row["b"], "AAEC+v94", "blob as base64")
    eq(row["n"], None, "NULL")
    if backend == "postgresql":
        eq((row["yes"], row["j"], row["num"]), (True, {"a": [1, 2]}, 1.25), "bool, jsonb, numeric")
    st, b = get(srv, "/big")
    eq((st, b), (200, {"len": 1048576, "same": True}), "1 MiB text")


def t_error_codes():
    want = {"unique": -1202, "fk": -1203, "notnull": -1204, "check": -1205, "syntax": -1201,
            "table": -1201, "column": -1201, "params": -22}
    if backend == "postgresql":
        want["timeout"] = -110
        want["copy"] = -1206  # refused (pipeline mode), its connection dropped
    for what, code in want.items():
        st, b = get(srv, f"/err/{what}")
        eq(st, 200, f"/err/{what}")
        eq(b["code"], code, f"/err/{what} code ({b.get('error')})")
        check(b.get("error"), f"/err/{what} has a message")
    if backend == "postgresql":
        st, b = get(srv, "/err/timeout")
        eq(b["rollback"], 0, "rollback after a timeout")


def t_pipeline():
    st, b = get(srv, "/pipeline")
    eq(st, 200, "/pipeline")
    eq(b["values"], [10, 20, 30], "pipelined results in order")
    if backend == "postgresql":
        eq(len(set(b["pids"])), 1, f"one connection for the request's statements: {b['pids']}")


def t_begin_by_hand_does_not_leak():
    """A "BEGIN" sent with cf_db_query must not leave a pooled connection
    (or a pool thread's SQLite connection) inside a transaction."""
    for _ in range(3):
        st, b = get(srv, "/manualbegin")
        if backend == "sqlite":
            eq((st, b["code"]), (400, -22), f"BEGIN as a query on SQLite: {b}")
        else:
            eq(st, 200, "BEGIN as a query on PostgreSQL")
    st, b = post_json(srv, "/items", {"name": "after-manual-begin"})
    eq(st, 201, "a write after a BEGIN sent by hand")
    if backend == "postgresql":
        # The ROLLBACK of a connection given back runs while the response
        # goes out; on a loaded machine its backend may not have read it yet
        # when we look. What must not happen is a session that stays so.
        deadline = time.monotonic() + 5
        while True:
            st, b = get(srv, "/idleintxn")
            if st != 200 or b.get("count") == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        eq((st, b), (200, {"count": 0}), "sessions left idle in a transaction")


def t_crash_in_transaction():
    """A handler that crashes inside a transaction: the worker's crash
    recovery gives its connection back, rolled back, so a request waiting
    for it (PostgreSQL, pool of 1) or for the write lock (SQLite) goes on."""
    global srv
    url = srv.env["DATABASE_URL"]
    H.stop_and_check(srv)
    srv = start_app(url, pool=1)
    try:
        c = Conn(srv.port)
        c.send(request_bytes("GET", "/crashtxn?name=crashed&ms=400"))
        time.sleep(0.15)  # in its transaction now, holding the connection / write lock
        t0 = time.monotonic()
        if backend == "postgresql":
            st, b = get(srv, "/count?name=crashed", timeout=15)
            eq((st, b), (200, {"count": 0}), "a request waiting for the crashed one's connection")
        else:
            st, b = post_json(srv, "/items", {"name": "after-crash"})
            eq(st, 201, f"a writer waiting for the crashed one's lock: {b}")
        dt = time.monotonic() - t0
        print(f"     the waiting request went on {dt * 1000:.0f} ms later (the crash came at ~250 ms)")
        check(dt < 3, f"the waiting request took {dt:.1f}s")
        c.close()
        deadline = time.monotonic() + 5
        while "crash" not in srv.stderr():
            check(time.monotonic() < deadline, "the crash was not logged")
            time.sleep(0.02)
        eq(get(srv, "/count?name=crashed")[1]["count"], 0, "the crashed transaction's row")
    finally:
        H.stop_and_check(srv)
        srv = start_app(url, pool=4)


def timed_get(path, out, key):
    t0 = time.monotonic()
    try:
        out[key] = (get(srv, path, timeout=20)[0], time.monotonic() - t0)
    except Exception as e:  # noqa: BLE001 - reported by the caller
        out[key] = (repr(e), time.monotonic() - t0)


def t_loop_not_blocked():
    out = {}
    slow = "/dbsleep?ms=1000" if backend == "postgresql" else "/dbsleep?n=5000000"
    th = threading.Thread(target=timed_get, args=(slow, out, "slow"))
    th.start()
    time.sleep(0.15)  # the slow statement is running now
    lat = []
    while th.is_alive() and len(lat) < 200:
        t0 = time.monotonic()
        st, _ = get(srv, "/items/1")
        lat.append((time.monotonic() - t0, st))
        t0 = time.monotonic()
        st2, _ = get(srv, "/health")
        lat.append((time.monotonic() - t0, st2))
    th.join()
    eq(out["slow"][0], 200, "slow statement")
    slow_s = out["slow"][1]
    worst = max(x for x, _ in lat)
    print(f"     slow statement {slow_s * 1000:.0f} ms; meanwhile {len(lat)} requests, "
          f"worst {worst * 1000:.1f} ms")
    check(slow_s > 0.5, f"the slow statement took only {slow_s:.2f}s")
    check(all(s in (200, 404) for _, s in lat), f"statuses: {set(s for _, s in lat)}")
    H.check_served_meanwhile([x for x, _ in lat], "the slow statement")


def stats():
    return get(srv, "/stats")[1]


def wait_cancelled(before, timeout=5):
    deadline = time.monotonic() + timeout
    while stats()["cancelled"] <= before:
        check(time.monotonic() < deadline, "teardown never saw the cancellation")
        time.sleep(0.02)


def cancel_case(name, db):
    before = stats()["cancelled"]
    c = Conn(srv.port)
    ms = 1500
    c.send(request_bytes("GET", f"/txnsleep?name={name}&ms={ms}&db={db}"))
    time.sleep(0.4)  # inside the transaction, row inserted, sleeping
    c.close()
    wait_cancelled(before, timeout=5)
    # A statement in the server (db=1) still runs to its end on PostgreSQL,
    # then the request's connection rolls back before anyone reuses it.
    time.sleep(ms / 1000 + 0.3 if db else 0.1)
    st, b = get(srv, f"/count?name={name}")
    eq((st, b), (200, {"count": 0}), f"row of the cancelled transaction ({name})")
    st, b = get(srv, "/txnsleep?name=kept-" + name + "&ms=10")
    eq(st, 200, "a transaction after the cancelled one")
    eq(get(srv, f"/count?name=kept-{name}")[1]["count"], 1, "committed row")


def t_cancel_in_transaction():
    cancel_case("cancel-handler", 0)
    cancel_case("cancel-server", 1)


# --------------------------------------------------------------------------
# PostgreSQL only
# --------------------------------------------------------------------------

def t_pool_exhaustion_waits():
    global srv
    H.stop_and_check(srv)
    srv = start_app(pgs.url(), pool=2)
    out = {}
    ths = [threading.Thread(target=timed_get, args=("/hold?ms=200", out, i)) for i in range(10)]
    t0 = time.monotonic()
    for t in ths:
        t.start()
    for t in ths:
        t.join()
    total = time.monotonic() - t0
    statuses = [out[i][0] for i in range(10)]
    print(f"     10 requests holding one of 2 connections for 200 ms: {total * 1000:.0f} ms total")
    eq(statuses, [200] * 10, "every request succeeded")
    check(total >= 0.9, f"done in {total:.2f}s: they cannot all have held a connection")
    check(total < 4.0, f"done in {total:.2f}s")


def t_server_restart():
    st, _ = get(srv, "/count?name=r")  # the pool has connections now
    eq(st, 200, "before the restart")
    pgs.ctl("restart")
    t0 = time.monotonic()
    st, b = get(srv, "/count?name=r")
    eq(st, 200, f"first request after the restart: {b}")
    print(f"     first query after pg_ctl restart answered in {(time.monotonic() - t0) * 1000:.0f} ms")
    out = {}
    ths = [threading.Thread(target=timed_get, args=("/count?name=r", out, i)) for i in range(6)]
    for t in ths:
        t.start()
    for t in ths:
        t.join()
    eq([out[i][0] for i in range(6)], [200] * 6, "concurrent requests after the restart")
    pgs.ctl("stop")
    try:
        t0 = time.monotonic()
        st, b = get(srv, "/count?name=r")
        eq(st, 503, f"server down: {b}")
        eq(b["code"], -1206, "CF_EDBCONN")
        check(time.monotonic() - t0 < 2, "failed fast")
        print(f"     with the server down: 503 \"{b['error'][:70]}...\"")
    finally:
        pgs.ctl("start")
    st, b = get(srv, "/count?name=r")
    eq(st, 200, f"after the server came back: {b}")


def t_cancel_stops_server_statement():
    """A statement cancelled while the server runs it is stopped there (a
    cancel request), and the cancel never hits another statement: the
    request's next one, and other requests' on the same connection."""
    global srv
    H.stop_and_check(srv)
    srv = start_app(pgs.url(), pool=1)
    # The client goes away during a 5 s statement: the only connection is
    # free again at once, not after 5 s.
    c = Conn(srv.port)
    c.send(request_bytes("GET", "/dbsleep?ms=5000"))
    time.sleep(0.3)
    c.close()
    t0 = time.monotonic()
    st, b = get(srv, "/count?name=after-cancel")
    took = time.monotonic() - t0
    eq(st, 200, f"the next request on the pool's one connection: {b}")
    print(f"     next request served {took * 1000:.0f} ms after the client left a 5 s statement")
    check(took < 1.5, f"waited {took:.2f}s: the statement was not stopped")
    eq(get(srv, "/sleeping")[1]["count"], 0, "pg_sleep still running on the server")
    # An await timeout: the request goes on with another statement on the
    # same connection, which the cancel must not hit.
    for _ in range(5):
        st, b = get(srv, "/dbtimeout?ms=3000&t=150")
        eq((st, b.get("rc"), b.get("after")), (200, -110, 42), f"after an await timeout: {b}")
        check(b["ms"] < 1500, f"the second statement waited {b['ms']:.0f} ms")
    # Races: clients leaving at every moment of short statements while
    # others queue for the one connection; none of theirs is cancelled.
    out = {}
    def leaver(i):
        cc = Conn(srv.port)
        cc.send(request_bytes("GET", "/dbsleep?ms=60"))
        time.sleep(0.01 * (i % 8))
        cc.close()
    ths = []
    for i in range(24):
        ths.append(threading.Thread(target=leaver, args=(i,)))
        ths.append(threading.Thread(target=timed_get, args=(f"/count?name=r{i}", out, i)))
    for t in ths:
        t.start()
    for t in ths:
        t.join()
    bad = {k: v for k, v in out.items() if v[0] != 200}
    eq(bad, {}, "requests sharing the connection with cancelled statements")


def t_stop_waits_for_a_statement_whose_client_left():
    """A request can outlive its connection: its client left while it ran a
    statement inside a transaction (which runs to its end). SIGTERM waits for
    it before the worker exits; leaving earlier abandoned the request's and
    the connection's memory (LeakSanitizer reported it)."""
    global srv
    H.stop_and_check(srv)
    srv = start_app(pgs.url(), pool=2)
    c = Conn(srv.port)
    c.send(request_bytes("GET", "/txnsleep?name=orphan&ms=1200&db=1"))
    time.sleep(0.4)  # in the server's pg_sleep, inside the transaction
    c.close()
    time.sleep(0.1)  # the worker has seen the client go
    t0 = time.monotonic()
    srv.signal(signal.SIGTERM)
    rc = srv.wait(10)
    took = time.monotonic() - t0
    eq(rc, 0, "exit status")
    print(f"     exited {took * 1000:.0f} ms after SIGTERM (the statement had ~700 ms left)")
    check(took > 0.4, f"exited after {took:.2f}s, before the statement ended")
    H.stop_and_check(srv)  # and no sanitizer findings
    srv = start_app(pgs.url(), pool=4)
    eq(get(srv, "/count?name=orphan"), (200, {"count": 0}), "its transaction rolled back")


def t_host_names():
    """Host names in DATABASE_URL are looked up on the thread pool, never on
    the loop: with a resolver that takes 1.5 s (the slow_dns.so shim), the
    worker answers other requests meanwhile. A name with two addresses, the
    first refusing, still connects (libpq's fallback kept); a name that does
    not exist fails fast with a message naming it; "localhost" works."""
    global srv
    H.stop_and_check(srv)
    shim = os.path.join(H.BUILD_DIR, "tests", "apps", "slow_dns.so")
    env = {"LD_PRELOAD": shim, "ASAN_OPTIONS": "detect_leaks=1:verify_asan_link_order=0",
           "CF_DB_POOL_SIZE": "1"}

    def start(host):
        env["DATABASE_URL"] = f"postgresql://postgres@{host}:{pgs.port}/postgres"
        return H.Server(H.app_path("dbapp"), args=["--workers", "1"], env=env,
                        name="dbapp-" + host).start()

    srv = start("slow.cf-test")
    out = {}
    th = threading.Thread(target=timed_get, args=("/count?name=dns", out, "db"))
    th.start()
    time.sleep(0.1)  # its connection is being looked up now
    lat = []
    while th.is_alive() and len(lat) < 5000:
        t0 = time.monotonic()
        st, _ = get(srv, "/health")
        lat.append((time.monotonic() - t0, st))
    th.join()
    eq(out["db"][0], 200, "query through a slowly resolved host name")
    worst = max(x for x, _ in lat)
    print(f"     first query {out['db'][1] * 1000:.0f} ms (1.5 s lookup); meanwhile "
          f"{len(lat)} requests, worst {worst * 1000:.1f} ms")
    check(out["db"][1] > 1.3, f"the lookup took only {out['db'][1]:.2f}s: shim not in use?")
    check(all(s == 200 for _, s in lat), f"statuses: {set(s for _, s in lat)}")
    H.check_served_meanwhile([x for x, _ in lat], "the lookup")
    H.stop_and_check(srv)

    # The connect timeout covers the lookup: the request fails when it
    # expires, the lookup left behind ends on its own (no leak under ASan).
    env["DBAPP_NO_SCHEMA"] = "1"
    env["CF_DB_CONNECT_TIMEOUT"] = "300"
    srv = start("slow.cf-test")
    t0 = time.monotonic()
    st, b = get(srv, "/count?name=dns")
    took = time.monotonic() - t0
    eq((st, b["code"]), (503, -1206), f"connect timeout during the lookup: {b}")
    check("timed out" in b["error"], f"the message says it timed out: {b['error']}")
    check(0.25 < took < 1.2, f"failed after {took:.2f}s, not at the 300 ms timeout")
    time.sleep(1.5)  # the abandoned lookup ends while the worker runs
    eq(get(srv, "/health")[0], 200, "the worker after the abandoned lookup")
    H.stop_and_check(srv)
    del env["CF_DB_CONNECT_TIMEOUT"]
    del env["DBAPP_NO_SCHEMA"]

    srv = start("dual.cf-test")
    st, b = get(srv, "/count?name=dns")
    eq(st, 200, f"second address after the first refused: {b}")
    H.stop_and_check(srv)

    env["DBAPP_NO_SCHEMA"] = "1"  # its start-up script could not connect either
    srv = start("fail.cf-test")
    t0 = time.monotonic()
    st, b = get(srv, "/count?name=dns")
    eq(st, 503, f"unknown host: {b}")
    eq(b["code"], -1206, "CF_EDBCONN")
    check("fail.cf-test" in b["error"], f"the message names the host: {b['error']}")
    check(time.monotonic() - t0 < 2, "failed fast")
    H.stop_and_check(srv)

    del env["DBAPP_NO_SCHEMA"]
    srv = start("localhost")
    st, b = get(srv, "/count?name=dns")
    eq(st, 200, f"localhost: {b}")


def main():
    global srv, backend
    H.watchdog(240)
    failures = []
    common = [t_crud, t_types_unicode_big, t_error_codes, t_pipeline, t_loop_not_blocked,
              t_cancel_in_transaction, t_begin_by_hand_does_not_leak, t_crash_in_transaction]
    tmp = tempfile.mkdtemp(prefix="cf-dbit-")
    try:
        # SQLite: the same behaviours over sockets.
        backend = "sqlite"
        srv = start_app(f"sqlite:///{tmp}/it.db")
        print("== sqlite")
        failures += ["sqlite/" + n for n in H.run_tests([(f.__name__[2:], f) for f in common])]
        H.stop_and_check(srv)
        srv = None

        if not pgs.available():
            print(SKIP)
        else:
            print(f"== postgresql ({pgs.bin})")
            pgs.start()
            backend = "postgresql"
            srv = start_app(pgs.url(), pool=4)
            tests = common + [t_pool_exhaustion_waits, t_server_restart,
                              t_cancel_stops_server_statement,
                              t_stop_waits_for_a_statement_whose_client_left, t_host_names]
            failures += ["pg/" + n for n in H.run_tests([(f.__name__[2:], f) for f in tests])]
            H.stop_and_check(srv)
            srv = None
    finally:
        if srv is not None:
            try:
                H.stop_and_check(srv)
            except AssertionError as e:
                print(e)
                failures.append("sanitizer")
        pgs.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    H.finish(failures)


if __name__ == "__main__":
    main()
