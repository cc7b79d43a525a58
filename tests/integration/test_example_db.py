"""
test_example_db.py — examples/db over real sockets, on a SQLite file and on
a private PostgreSQL server (pg.py; that part is skipped with a message
when PostgreSQL is not installed): users created with ids the database
fills in, read, listed, renamed, deleted; a transfer in one transaction,
refused (409) with nothing moved when the sender has too few credits;
failures answered in the app's words, never the database's (which can
quote a row): a taken email is 409 "the email is already taken", a CHECK
violation 400, and a query that fails for the server's own reasons (its
table renamed away) a plain 500 page, with the database's message only
with --debug.
"""
import os
import shutil
import sqlite3
import sys
import tempfile

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import check, eq  # noqa: E402
from pg import SKIP, Postgres  # noqa: E402

import requests  # noqa: E402

T = 10
EXAMPLE = H.example_path("db")
pgs = Postgres()
srv = None
sql = None  # runs SQL beside the app, on the backend under test


def start(url, args=()):
    return H.Server(EXAMPLE, args=["--workers", "1", *args], env={"DATABASE_URL": url},
                    name="example-db").start()


def t_crud_and_transfer():
    ada = requests.post(srv.url("/users"), json={"name": "Ada", "email": "ada@example.com",
                                                 "credits": 10}, timeout=T)
    eq(ada.status_code, 201, f"create: {ada.text}")
    ada = ada.json()
    eq((ada["name"], ada["credits"]), ("Ada", 10), "created row")
    check(isinstance(ada["id"], int) and ada["id"] > 0, f"an id filled in: {ada}")
    bob = requests.post(srv.url("/users"), json={"name": "Bob", "email": "bob@example.com"},
                        timeout=T).json()
    check(bob["id"] != ada["id"], "another id")
    eq(requests.get(srv.url(f"/users/{ada['id']}"), timeout=T).json(), ada, "read")
    r = requests.post(srv.url("/transfer"), json={"from": ada["id"], "to": bob["id"], "amount": 4},
                      timeout=T)
    eq(r.status_code, 200, f"transfer: {r.text}")
    r = requests.post(srv.url("/transfer"), json={"from": ada["id"], "to": bob["id"], "amount": 40},
                      timeout=T)
    eq(r.status_code, 409, "too few credits")
    credits = {u["name"]: u["credits"] for u in requests.get(srv.url("/users"), timeout=T).json()}
    eq(credits, {"Ada": 6, "Bob": 4}, "moved once, nothing moved by the refused one")
    r = requests.patch(srv.url(f"/users/{bob['id']}"), json={"name": "Robert"}, timeout=T)
    eq(r.json()["name"], "Robert", "renamed")
    eq(requests.delete(srv.url(f"/users/{bob['id']}"), timeout=T).status_code, 204, "deleted")
    eq(requests.get(srv.url(f"/users/{bob['id']}"), timeout=T).status_code, 404, "gone")


def t_errors_in_the_apps_words():
    r = requests.post(srv.url("/users"), json={"name": "Eve", "email": "ada@example.com"},
                      timeout=T)
    eq((r.status_code, r.json()), (409, {"error": "the email is already taken"}), "taken email")
    r = requests.post(srv.url("/users"), json={"name": "Neg", "email": "neg@example.com",
                                               "credits": -5}, timeout=T)
    eq(r.status_code, 400, "CHECK (credits >= 0)")
    check("neg@example.com" not in r.text and "-5" not in r.text, f"no row quoted: {r.text}")


def t_server_failure_is_a_plain_500():
    dbg = start(srv.env["DATABASE_URL"], args=["--debug"])
    try:
        sql("ALTER TABLE users RENAME TO users_gone")
        try:
            r = requests.get(srv.url("/users"), timeout=T)
            eq((r.status_code, r.text), (500, "500 Internal Server Error\n"), "a plain 500")
            r = requests.get(dbg.url("/users"), timeout=T)
            eq(r.status_code, 500, "--debug: 500")
            check("users" in r.text and len(r.text) > len("500 Internal Server Error\n"),
                  f"--debug shows the database's message: {r.text!r}")
        finally:
            sql("ALTER TABLE users_gone RENAME TO users")
        eq(requests.get(srv.url("/users"), timeout=T).status_code, 200, "back")
    finally:
        H.stop_and_check(dbg)


def run_suite(name, url):
    global srv
    print(f"== {name}")
    srv = start(url)
    try:
        return [f"{name}/{n}" for n in H.run_tests(H.collect(globals()))]
    finally:
        H.stop_and_check(srv)
        srv = None


def main():
    global sql
    H.watchdog(120)
    tmp = tempfile.mkdtemp(prefix="cf-exdb-")
    failures = []
    try:
        path = os.path.join(tmp, "example.db")

        def sqlite_sql(stmt):
            with sqlite3.connect(path) as c:
                c.execute(stmt)
        sql = sqlite_sql
        failures += run_suite("sqlite", f"sqlite:///{path}")
        if not pgs.available():
            print(SKIP)
        else:
            pgs.start()
            sql = pgs.psql
            failures += run_suite("postgresql", pgs.url())
    finally:
        pgs.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    H.finish(failures)


if __name__ == "__main__":
    main()
