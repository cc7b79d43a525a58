"""
test_flaskr.py — Flask's tutorial tests (tests/test_auth.py, test_blog.py,
test_db.py, test_factory.py of Flask's examples/tutorial), ported to run over
HTTP with python3-requests against build/examples/flaskr.

As in the tutorial's conftest, every test gets a new database: a temporary
SQLite file created by `flaskr --init-db`, then filled with the tutorial's
test data (two users whose password hashes Werkzeug made — scrypt by
Werkzeug 3 where the Python on PATH has it, pbkdf2:sha256 otherwise — and
one post from 2018-01-01), and a server started on it. What the tutorial
reads through Flask's `session` and `g` is read here from the session cookie,
unsigned by a real Flask (the same SECRET_KEY) and from the page.

Beyond the tutorial: escaping of a <script> title, a session cookie minted by
Flask logs the user in, tampered and foreign-key cookies are anonymous,
another user's post is 403 to edit and delete, the flash messages show once.
"""
import json
import os
import sqlite3
import subprocess
import sys
import tempfile

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import check, eq  # noqa: E402

import requests  # noqa: E402

SECRET = "tutorial-secret"
FLASKR = H.example_path("flaskr")
srv = None
db_path = None
client = None  # a requests.Session: the tutorial's client, with its cookie jar

# ---- Flask as the reference ----------------------------------------------

FLASK_HELPER = r"""
import json, sys
from flask import Flask
app = Flask("ref")
app.secret_key = sys.argv[1]
s = app.session_interface.get_signing_serializer(app)
op = sys.argv[2]
if op == "loads":
    try:
        print(json.dumps(s.loads(sys.argv[3])))
    except Exception as e:
        print(json.dumps({"__error__": type(e).__name__}))
elif op == "dumps":
    print(s.dumps(json.loads(sys.argv[3])))
elif op == "hash":
    from werkzeug.security import generate_password_hash
    print(generate_password_hash(sys.argv[3], *sys.argv[4:]))
"""


def flask_python():
    """The newest Python with Flask: the one on PATH (Flask 3), else Debian's."""
    for py in ("python3", "/usr/bin/python3"):
        try:
            r = subprocess.run([py, "-c", "import flask, werkzeug"], capture_output=True, timeout=30)
        except OSError:
            continue
        if r.returncode == 0:
            return py
    raise AssertionError("no Python with Flask: install python3-flask (scripts/install-deps --test)")


PY = None


def flask(op, *args):
    r = subprocess.run([PY, "-c", FLASK_HELPER, SECRET, op, *args], capture_output=True,
                       text=True, timeout=60)
    check(r.returncode == 0, f"Flask helper {op}: {r.stderr}")
    return r.stdout.strip()


def session_of(response_or_client):
    """The session Flask reads from the client's cookie ({} if none)."""
    cookie = client.cookies.get("session")
    return json.loads(flask("loads", cookie)) if cookie else {}


# ---- the tutorial's fixtures ------------------------------------------------

HASHES = {}


def data_sql():
    return [
        ("INSERT INTO user (username, password) VALUES (?, ?), (?, ?)",
         ("test", HASHES["test"], "other", HASHES["other"])),
        ("INSERT INTO post (title, body, author_id, created) VALUES (?, ?, ?, ?)",
         ("test title", "test\nbody", 1, "2018-01-01 00:00:00")),
    ]


def fresh_app():
    """conftest's app + client fixtures: a new database, a server, a client."""
    global srv, db_path, client
    stop_app()
    fd, db_path = tempfile.mkstemp(prefix="cf-flaskr-", suffix=".sqlite")
    os.close(fd)
    env = dict(os.environ, DATABASE_URL=f"sqlite:///{db_path}", SECRET_KEY=SECRET)
    r = subprocess.run([FLASKR, "--init-db"], capture_output=True, text=True, env=env, timeout=30,
                       cwd=tempfile.gettempdir())
    eq((r.returncode, r.stdout), (0, "Initialized the database.\n"), f"--init-db ({r.stderr})")
    with sqlite3.connect(db_path) as db:
        for sql, params in data_sql():
            db.execute(sql, params)
    # started from another directory: it finds its templates by itself
    srv = H.Server(FLASKR, env={"DATABASE_URL": f"sqlite:///{db_path}", "SECRET_KEY": SECRET})
    old = os.getcwd()
    os.chdir(tempfile.gettempdir())
    try:
        srv.start()
    finally:
        os.chdir(old)
    client = requests.Session()


def stop_app():
    global srv
    if srv is not None:
        H.stop_and_check(srv, expect_status=0)
        srv = None
    if db_path and os.path.exists(db_path):
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(db_path + suffix):
                os.unlink(db_path + suffix)


def get(path, **kw):
    return client.get(srv.url(path), allow_redirects=False, timeout=10, **kw)


def post(path, data=None, **kw):
    return client.post(srv.url(path), data=data, allow_redirects=False, timeout=10, **kw)


def login(username="test", password="test"):
    return post("/auth/login", {"username": username, "password": password})


def logout():
    return get("/auth/logout")


def query(sql, *params):
    with sqlite3.connect(db_path) as db:
        return db.execute(sql, params).fetchall()


# ---- test_factory.py --------------------------------------------------------

def t_hello():
    fresh_app()
    eq(get("/hello").content, b"Hello, World!", "/hello")


# ---- test_db.py ---------------------------------------------------------------

def t_init_db_command():
    fresh_app()
    eq(len(query("SELECT * FROM post")), 1, "posts before")
    stop_app()  # the tables are dropped and created again
    env = dict(os.environ, DATABASE_URL=f"sqlite:///{db_path}")
    with sqlite3.connect(db_path) as db:
        db.execute("CREATE TABLE IF NOT EXISTS user (id INTEGER)")
    r = subprocess.run([FLASKR, "--init-db"], capture_output=True, text=True, env=env, timeout=30)
    check("Initialized" in r.stdout, f"output: {r.stdout!r} {r.stderr!r}")
    eq(query("SELECT name FROM sqlite_master WHERE type = 'table' AND name IN ('user', 'post')"
             " ORDER BY name"), [("post",), ("user",)], "tables")
    eq(query("SELECT COUNT(*) FROM post"), [(0,)], "posts after")


# ---- test_auth.py -------------------------------------------------------------

def t_register():
    fresh_app()
    eq(get("/auth/register").status_code, 200, "register page")
    r = post("/auth/register", {"username": "a", "password": "a"})
    eq((r.status_code, r.headers.get("Location")), (302, "/auth/login"), "redirect")
    rows = query("SELECT username, password FROM user WHERE username = 'a'")
    eq(len(rows), 1, "the user is in the database")
    check(rows[0][1].startswith("scrypt:32768:8:1$"), f"hash {rows[0][1]!r}")


def t_register_validate_input():
    fresh_app()
    for username, password, message in (("", "", b"Username is required."),
                                        ("a", "", b"Password is required."),
                                        ("test", "test", b"already registered")):
        r = post("/auth/register", {"username": username, "password": password})
        check(message in r.content, f"{message!r} not in the page for {username!r}/{password!r}")
    check(b"User test is already registered." in
          post("/auth/register", {"username": "test", "password": "x"}).content, "the whole text")


def t_login():
    fresh_app()
    eq(get("/auth/login").status_code, 200, "login page")
    r = login()
    eq((r.status_code, r.headers.get("Location")), (302, "/"), "redirect")
    page = get("/").text
    eq(session_of(client).get("user_id"), 1, "session['user_id'] (read by Flask)")
    check('<span class="user">test</span>' in page, "g.user['username'] shown")


def t_login_validate_input():
    fresh_app()
    for username, password, message in (("a", "test", b"Incorrect username."),
                                        ("test", "a", b"Incorrect password.")):
        check(message in login(username, password).content, f"{message!r}")


def t_logout():
    fresh_app()
    login()
    check("user_id" in session_of(client), "logged in")
    r = logout()
    eq((r.status_code, r.headers.get("Location")), (302, "/"), "redirect")
    check("user_id" not in session_of(client), "user_id left the session")


# ---- test_blog.py -------------------------------------------------------------

def t_index():
    fresh_app()
    r = get("/")
    check(b"Log In" in r.content and b"Register" in r.content, "anonymous nav")
    login()
    body = get("/").content
    for part in (b"test title", b"by test on 2018-01-01", b"test\nbody", b'href="/1/update"'):
        check(part in body, f"{part!r} in the index")


def t_login_required():
    fresh_app()
    for path in ("/create", "/1/update", "/1/delete"):
        r = post(path)
        eq((r.status_code, r.headers.get("Location")), (302, "/auth/login"), path)


def t_author_required():
    fresh_app()
    query("UPDATE post SET author_id = 2 WHERE id = 1")
    login()
    eq(post("/1/update").status_code, 403, "update another's post")
    eq(post("/1/delete").status_code, 403, "delete another's post")
    check(b'href="/1/update"' not in get("/").content, "no edit link")


def t_exists_required():
    fresh_app()
    login()
    for path in ("/2/update", "/2/delete"):
        eq(post(path).status_code, 404, path)


def t_create():
    fresh_app()
    login()
    eq(get("/create").status_code, 200, "create page")
    post("/create", {"title": "created", "body": ""})
    eq(query("SELECT COUNT(id) FROM post"), [(2,)], "posts")


def t_update():
    fresh_app()
    login()
    eq(get("/1/update").status_code, 200, "update page")
    post("/1/update", {"title": "updated", "body": ""})
    eq(query("SELECT title FROM post WHERE id = 1"), [("updated",)], "title")


def t_create_update_validate():
    fresh_app()
    login()
    for path in ("/create", "/1/update"):
        check(b"Title is required." in post(path, {"title": "", "body": ""}).content, path)


def t_delete():
    fresh_app()
    login()
    r = post("/1/delete")
    eq((r.status_code, r.headers.get("Location")), (302, "/"), "redirect")
    eq(query("SELECT * FROM post WHERE id = 1"), [], "the post is gone")


# ---- beyond the tutorial ----------------------------------------------------

def t_title_escaped():
    fresh_app()
    login()
    post("/create", {"title": "<script>alert('x')</script>", "body": "a & b"})
    body = get("/").text
    check("<script>alert" not in body, "the title's script tag went out unescaped")
    check("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in body, "escaped as Jinja does")
    check("a &amp; b" in body, "body escaped")


def t_flash_shows_once():
    fresh_app()
    r = login("nobody", "x")
    check(b"Incorrect username." in r.content, "flashed on the page")
    check(b"Incorrect username." not in get("/auth/login").content, "gone on the next page")


def t_cookie_minted_by_flask():
    fresh_app()
    client.cookies.set("session", flask("dumps", json.dumps({"user_id": 2})))
    body = get("/").text
    check('<span class="user">other</span>' in body, "Flask's cookie logs in user 2")
    check('href="/1/update"' not in body, "user 2 is not the author")


def t_bad_cookies_are_anonymous():
    fresh_app()
    good = flask("dumps", json.dumps({"user_id": 1}))
    payload, ts, sig = good.rsplit(".", 2)
    forged = payload[:-2] + ("AA" if payload[-2:] != "AA" else "BB")
    wrong_key = subprocess.run([PY, "-c", FLASK_HELPER, "another-key", "dumps", '{"user_id": 1}'],
                               capture_output=True, text=True, timeout=60).stdout.strip()
    for what, cookie in (("tampered", f"{forged}.{ts}.{sig}"), ("signed with another key", wrong_key),
                         ("garbage", "not-a-cookie"), ("empty", "")):
        client.cookies.clear()
        client.cookies.set("session", cookie)
        r = get("/")
        eq(r.status_code, 200, what)
        check(b"Log In" in r.content, f"{what}: anonymous")


def main():
    global PY
    H.watchdog(240)
    PY = flask_python()
    print(f"reference: {PY} ({flask('hash', 'x')[:6]}... hashes)", flush=True)
    HASHES["test"] = flask("hash", "test")
    HASHES["other"] = flask("hash", "other", "pbkdf2:sha256")
    failures = []
    try:
        failures = H.run_tests(H.collect(globals()))
    finally:
        try:
            stop_app()
        except AssertionError as e:
            print(f"FAIL shutdown: {e}")
            failures.append("shutdown")
    H.finish(failures)


if __name__ == "__main__":
    main()
