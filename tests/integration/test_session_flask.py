"""
test_session_flask.py — sessions, flashes, CSRF and password hashes of a
Carafe app over real sockets (tests/integration/apps/sessionapp.c) against
the real Flask, itsdangerous and Werkzeug (session_ref.py, run with the
newest Flask on this machine: python3 on PATH when it has Flask 3, else
/usr/bin/python3 with Debian's, or $CF_FLASK_PYTHON; no Flask at all is a
failure):

  flask_cookie_read       a cookie a real Flask request set (strings,
                          unicode, nested dicts/lists, tuple, bytes, Markup,
                          UUID, a dict keyed by a tag, flashes, permanent)
                          reads in Carafe as the same tagged JSON Flask
                          writes; its flashes come out as Flask shows them
  carafe_cookie_read      a cookie Carafe set (unicode, nested values,
                          numbers, a big value that is zlib-compressed)
                          loads in Flask equal; its payload is byte for byte
                          Flask's for the same data; flashes made by Carafe
                          are Flask's get_flashed_messages
  fallback_key            a cookie signed with a SECRET_KEY_FALLBACKS key is
                          read; re-saved, it is signed with the current key
  bad_cookies             tampered, wrong key, expired, from the future,
                          garbage: an empty session, 200, no Set-Cookie
  cookie_attributes       Set-Cookie attributes equal Flask's for the same
                          config (set, permanent, delete; default and custom
                          Domain/Path/Secure/HttpOnly/SameSite/lifetime),
                          Expires compared as present and about right
  unchanged_and_vary      no Set-Cookie when nothing changed, none and no
                          Vary for a request that never used the session,
                          a permanent session refreshed on every response
  csrf                    the middleware's 400 and pass over HTTP
  passwords               Werkzeug's hashes (scrypt default, pbkdf2:sha256,
                          pbkdf2:sha256:1000, ...) verified by Carafe, and
                          Carafe's by Werkzeug's check_password_hash
  hash_does_not_block     while a slow /hash runs, /ping still answers fast
"""
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from email.utils import parsedate_to_datetime

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import check, eq  # noqa: E402

import requests  # noqa: E402

KEY, OLD = "current-key", "old-key"
CFG = {"SECRET_KEY": KEY}
T = 20
srv = None
REF_PY = None
REF_VERSIONS = {}
REF = os.path.join(os.path.dirname(os.path.abspath(__file__)), "session_ref.py")


# --------------------------------------------------------------------------
# The reference: Flask in a subprocess
# --------------------------------------------------------------------------

def flask_major(py):
    try:
        out = subprocess.run([py, "-c", "from importlib.metadata import version; import flask; "
                                        "print(version('flask'))"],
                             capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    return int(out.stdout.strip().split(".")[0])


def find_reference_python():
    forced = os.environ.get("CF_FLASK_PYTHON")  # to try another Flask on purpose
    if forced:
        if not flask_major(forced):
            raise AssertionError(f"CF_FLASK_PYTHON={forced} has no Flask")
        return forced
    candidates = []
    for c in (shutil.which("python3"), sys.executable, "/usr/bin/python3"):
        if c and c not in candidates:
            candidates.append(c)
    found = [(c, flask_major(c)) for c in candidates]
    for c, major in found:
        if major and major >= 3:
            return c
    for c, major in found:
        if major:
            return c
    raise AssertionError(f"no python3 with Flask among {candidates}: install python3-flask "
                         "python3-itsdangerous python3-werkzeug (scripts/install-deps --test)")


def ref(*ops):
    p = subprocess.run([REF_PY, REF], input=json.dumps(list(ops)), capture_output=True,
                       text=True, timeout=120)
    if p.returncode != 0:
        raise AssertionError(f"session_ref.py failed:\n{p.stderr[-3000:]}")
    return json.loads(p.stdout)


def flask3():
    return int(REF_VERSIONS["flask"].split(".")[0]) >= 3


# --------------------------------------------------------------------------
# Carafe over HTTP (cookies passed by hand: no jar, so nothing is implicit)
# --------------------------------------------------------------------------

def get(path, cookie=None, server=None, name="session"):
    headers = {"Cookie": f"{name}={cookie}"} if cookie else {}
    return requests.get((server or srv).url(path), headers=headers, timeout=T,
                        allow_redirects=False)


def post_json(path, data, cookie=None):
    headers = {"Cookie": f"session={cookie}"} if cookie else {}
    return requests.post(srv.url(path), json=data, headers=headers, timeout=T)


def set_cookies(r):
    """The Set-Cookie headers as sent (requests folds them into one)."""
    return [v for k, v in r.raw.headers.items() if k.lower() == "set-cookie"]


def cookie_of(r, name="session"):
    for h in set_cookies(r):
        if h.startswith(name + "="):
            return h.split(";", 1)[0][len(name) + 1:]
    return None


def carafe_tagged(cookie):
    r = get("/session", cookie)
    eq(r.status_code, 200, "/session status")
    return r.json()


# --------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------

def t_flask_cookie_read():
    minted, = ref({"op": "mint", "cfg": CFG})
    check(minted, "Flask set no session cookie")
    theirs, = ref({"op": "loads", "cfg": CFG, "cookie": minted})
    check(theirs["ok"], f"Flask cannot read its own cookie: {theirs}")
    ours = carafe_tagged(minted)
    eq(ours, json.loads(theirs["tagged"]), "the session Carafe read (tagged JSON)")
    eq(get("/get?k=user", minted).json(), {"value": "ann"}, "a string")
    eq(get("/get?k=html", minted).json(), {"value": "<b>bold</b>"}, "Markup as a string")
    eq(ours["tup"], {" t": [1, "two"]}, "the tuple kept tagged")
    eq(ours["tagkey"], {" di": {" t__": "not a tuple"}}, "a dict keyed by a tag, escaped")
    flashes = get("/flashes", minted)
    eq(flashes.json(), {"plain": ["hello", "bad thing"],
                        "cats": [["message", "hello"], ["error", "bad thing"]]}, "Flask's flashes")
    # Popped: the next cookie holds the rest of the session, which Flask reads.
    rest = cookie_of(flashes)
    check(rest, "no Set-Cookie after popping the flashes")
    after, = ref({"op": "loads", "cfg": CFG, "cookie": rest})
    check(after["ok"] and "_flashes" not in json.loads(after["tagged"]),
          f"flashes still in Flask's view: {after}")
    eq(json.loads(after["tagged"])["raw"], ours["raw"], "bytes survive a Carafe save")
    eq(json.loads(after["tagged"])["_permanent"], True, "still permanent")


def t_carafe_cookie_read_by_flask():
    data = {"user": "zoë", "emoji": "\U0001F600 ✓", "nested": {"list": [1, 2.5, None, True, "x"],
            "dict": {"b": 1, "a": {"deep": [[], {}]}}}, "n": -42, "f": 0.1, "big": 10 ** 15,
            "ctl": "tab\tquote\"slash\\ del\x7f"}
    r = post_json("/set", data)
    eq(r.status_code, 200, "POST /set")
    c = cookie_of(r)
    check(c, "no Set-Cookie")
    theirs, = ref({"op": "loads", "cfg": CFG, "cookie": c})
    check(theirs["ok"], f"Flask refused Carafe's cookie: {theirs}")
    eq(json.loads(theirs["tagged"]), data, "what Flask loads")
    flask_made, = ref({"op": "dumps", "cfg": CFG, "data": data})
    eq(c.rsplit(".", 2)[0], flask_made.rsplit(".", 2)[0], "the payload, byte for byte")

    small = {"id": "7f3a9c"}  # compressing this would make it longer
    c = cookie_of(post_json("/set", small))
    check(c and not c.startswith("."), f"a small session should not be compressed: {c}")
    eq(c.rsplit(".", 2)[0], ref({"op": "dumps", "cfg": CFG, "data": small})[0].rsplit(".", 2)[0],
       "a plain payload, byte for byte")

    big = {"big": "abcdefgh" * 200, "more": ["repeat"] * 50}
    c = cookie_of(post_json("/set", big))
    check(c and c.startswith("."), f"a compressible session should be zlib'd: {c[:20]}...")
    theirs, = ref({"op": "loads", "cfg": CFG, "cookie": c})
    check(theirs["ok"], f"Flask refused the compressed cookie: {theirs}")
    eq(json.loads(theirs["tagged"]), big, "what Flask loads (compressed)")
    print(f"     compressed cookie: {len(c)} bytes for {len(json.dumps(big))} bytes of JSON")

    c = cookie_of(get("/flash?m=one"))
    c = cookie_of(get("/flash?m=two%20%C3%A9&c=warning", c))
    theirs, = ref({"op": "flashes", "cfg": CFG, "cookie": c})
    eq(theirs, [["message", "one"], ["warning", "two é"]], "Flask's get_flashed_messages")


def t_fallback_key():
    old_cookie, = ref({"op": "dumps", "cfg": {"SECRET_KEY": OLD}, "data": {"who": "old"}})
    eq(get("/get?k=who", old_cookie).json(), {"value": "old"}, "read with a fallback key")
    c = cookie_of(get("/set?k=who&v=new", old_cookie))
    check(c, "no Set-Cookie after a change")
    cur, old = ref({"op": "loads", "cfg": CFG, "cookie": c},
                   {"op": "loads", "cfg": {"SECRET_KEY": OLD}, "cookie": c})
    check(cur["ok"] and json.loads(cur["tagged"]) == {"who": "new"}, f"current key: {cur}")
    check(not old["ok"], "re-saved with the old key")


def t_bad_cookies():
    now = int(time.time())
    good, wrong, expired, future = ref(
        {"op": "dumps", "cfg": CFG, "data": {"a": "1"}},
        {"op": "dumps", "cfg": {"SECRET_KEY": "someone-else"}, "data": {"a": "1"}},
        {"op": "dumps", "cfg": CFG, "data": {"a": "1"}, "ts": now - 2678400 - 60},
        {"op": "dumps", "cfg": CFG, "data": {"a": "1"}, "ts": now + 3600})
    eq(carafe_tagged(good), {"a": "1"}, "the good cookie")
    payload, ts, sig = good.split(".")
    flip = lambda s, i: s[:i] + ("A" if s[i] != "A" else "B") + s[i + 1:]  # noqa: E731
    cases = {
        "wrong key": wrong, "expired": expired, "from the future": future,
        "tampered payload": flip(payload, 3) + "." + ts + "." + sig,
        "tampered timestamp": payload + "." + flip(ts, 1) + "." + sig,
        "tampered signature": payload + "." + ts + "." + flip(sig, 5),
        "no signature": payload + "." + ts, "garbage": "not-a-cookie",
        "only dots": "...", "bad base64": "!!!." + ts + "." + sig,
        "huge": "A" * 3000 + "." + ts + "." + sig,
    }
    for what, c in cases.items():
        r = get("/session", c)
        eq(r.status_code, 200, f"{what}: status")
        eq(r.json(), {}, f"{what}: session")
        eq(set_cookies(r), [], f"{what}: Set-Cookie")
    # Flask agrees on which of them it accepts.
    res = ref(*[{"op": "loads", "cfg": CFG, "cookie": c} for c in cases.values()])
    accepted = [w for w, x in zip(cases, res) if x["ok"]]
    eq(accepted, [], "cookies Flask accepts but Carafe refused")


def attrs(header):
    """(name=value, {attribute: value}) of a Set-Cookie header."""
    parts = [p.strip() for p in header.split(";")]
    out = {}
    for p in parts[1:]:
        k, _, v = p.partition("=")
        out[k.lower()] = v
    return parts[0], out


def compare_set_cookie(ours, theirs, what):
    eq(len(ours), 1, f"{what}: our Set-Cookie count ({ours})")
    eq(len(theirs), 1, f"{what}: Flask's Set-Cookie count ({theirs})")
    (o_nv, o), (t_nv, t) = attrs(ours[0]), attrs(theirs[0])
    eq(o_nv.split("=")[0], t_nv.split("=")[0], f"{what}: cookie name")
    eq(o_nv.endswith("="), t_nv.endswith("="), f"{what}: empty value (deletion)")
    eq(sorted(o), sorted(t), f"{what}: attribute names ({ours[0]} / {theirs[0]})")
    for k in o:
        if k == "expires":
            if o[k] != t[k]:  # made a moment apart: compare as times
                d = abs((parsedate_to_datetime(o[k]) - parsedate_to_datetime(t[k])).total_seconds())
                check(d <= 5, f"{what}: Expires {o[k]} vs Flask's {t[k]}")
        elif flask3() or k not in ("domain",):
            eq(o[k], t[k], f"{what}: {k}")


def t_cookie_attributes():
    custom = {"SECRET_KEY": KEY, "SESSION_COOKIE_DOMAIN": "example.test",
              "SESSION_COOKIE_PATH": "/app", "SESSION_COOKIE_SECURE": True,
              "SESSION_COOKIE_HTTPONLY": False, "SESSION_COOKIE_SAMESITE": "Strict",
              "PERMANENT_SESSION_LIFETIME": 600, "SESSION_COOKIE_NAME": "sid"}
    env = {k: ("true" if v is True else "false" if v is False else v) for k, v in custom.items()}
    other = H.Server(H.app_path("sessionapp"), name="session-attrs", env=env)
    try:
        other.start()
        for cfg, server, name in ((CFG, srv, "session"), (custom, other, "sid")):
            label = "custom" if server is other else "default"
            r = get("/set?k=x&v=1", server=server)
            theirs, = ref({"op": "setcookie", "cfg": cfg, "path": "/set"})
            compare_set_cookie(set_cookies(r), theirs["set_cookie"], f"{label} set")
            c = cookie_of(r, name)
            r = get("/permanent?on=1", c, server=server, name=name)
            theirs, = ref({"op": "setcookie", "cfg": cfg, "path": "/perm"})
            compare_set_cookie(set_cookies(r), theirs["set_cookie"], f"{label} permanent")
            exp = attrs(set_cookies(r)[0])[1]["expires"]
            life = cfg.get("PERMANENT_SESSION_LIFETIME", 2678400)
            delta = parsedate_to_datetime(exp).timestamp() - (time.time() + life)
            check(abs(delta) < 5, f"{label}: Expires {exp} is not now + {life} s")
            r = get("/clear", c, server=server, name=name)
            theirs, = ref({"op": "setcookie", "cfg": cfg, "path": "/clear",
                           "cookie": ref({"op": "dumps", "cfg": cfg, "data": {"x": "1"}})[0]})
            compare_set_cookie(set_cookies(r), theirs["set_cookie"], f"{label} delete")
            eq(len(set_cookies(r)), 1, f"{label}: the deletion")
            _, a = attrs(set_cookies(r)[0])
            eq((a.get("expires"), a.get("max-age")), ("Thu, 01 Jan 1970 00:00:00 GMT", "0"),
               f"{label}: deletion attributes")
            check("Cookie" in (r.headers.get("Vary") or ""), f"{label}: Vary on deletion")
        print("     " + set_cookies(get("/permanent", server=other))[0])
    finally:
        H.stop_and_check(other)


def t_unchanged_and_vary():
    c = cookie_of(get("/set?k=a&v=1"))
    r = get("/noop", c)
    eq(set_cookies(r), [], "/noop: Set-Cookie")
    check("Cookie" not in (r.headers.get("Vary") or ""), f"/noop: Vary {r.headers.get('Vary')}")
    r = get("/get?k=a", c)
    eq(set_cookies(r), [], "read only: Set-Cookie")
    check("Cookie" in (r.headers.get("Vary") or ""), "read: Vary: Cookie")
    r = get("/set?k=a&v=1", c)
    eq(set_cookies(r), [], "the same value again: Set-Cookie")
    r = get("/clear")
    eq(set_cookies(r), [], "clearing without a cookie: Set-Cookie")
    p = cookie_of(get("/permanent?on=1", c))
    r = get("/noop", p)
    check(cookie_of(r), "a permanent session is refreshed on every response")
    r = get("/nosuchpage", p)
    eq(r.status_code, 404, "404")
    check(cookie_of(r), "refreshed on an error page too")


def t_csrf():
    r = requests.post(srv.url("/form"), data={"a": "1"}, timeout=T)
    eq(r.status_code, 400, "no token")
    check("The CSRF token is missing." in r.text, r.text)
    r = get("/token")
    token, c = r.text, cookie_of(r)
    r = requests.post(srv.url("/form"), data={"csrf_token": token},
                      headers={"Cookie": f"session={c}"}, timeout=T)
    eq((r.status_code, r.text), (200, "posted"), "form token")
    r = requests.post(srv.url("/form"), headers={"Cookie": f"session={c}", "X-CSRFToken": token},
                      timeout=T)
    eq((r.status_code, r.text), (200, "posted"), "header token")
    r = requests.post(srv.url("/form"), data={"csrf_token": token[:-1] + "0"},
                      headers={"Cookie": f"session={c}"}, timeout=T)
    eq(r.status_code, 400, "wrong token")
    check("The CSRF tokens do not match." in r.text, r.text)


def t_passwords():
    pw, wrong = "pässwörd ✓", "passwörd ✓"
    methods = ["pbkdf2:sha256:1000", "pbkdf2:sha512:2000", "pbkdf2:sha1:500", "pbkdf2:sha256"]
    if flask3():
        methods += ["scrypt", "scrypt:16384:8:1", "scrypt:2048:4:2", "pbkdf2"]
    hashes = ref(*[{"op": "hash", "method": m, "password": pw} for m in methods])
    for m, h in zip(methods, hashes):
        check(isinstance(h, str), f"Werkzeug could not hash {m}: {h}")
        eq(post_json("/verify", {"hash": h, "password": pw}).json(), {"ok": True}, f"{m}: {h}")
        eq(post_json("/verify", {"hash": h, "password": wrong}).json(), {"ok": False}, f"{m} wrong")
    ours = {}
    for m in ["scrypt", "scrypt:16384:8:1", "pbkdf2:sha256:1000", "pbkdf2:sha512:2000",
              "pbkdf2:sha256", "pbkdf2"]:
        h = post_json("/hash", {"password": pw, "method": m}).json()["hash"]
        check(h, f"Carafe could not hash {m}")
        ours[m] = h
    check(re.fullmatch(r"scrypt:32768:8:1\$[A-Za-z0-9]{16}\$[0-9a-f]{128}", ours["scrypt"]),
          ours["scrypt"])
    check(ours["pbkdf2"].startswith("pbkdf2:sha256:1000000$"), ours["pbkdf2"])
    check(ours["pbkdf2:sha256"].startswith("pbkdf2:sha256:1000000$"), ours["pbkdf2:sha256"])
    res = ref(*[{"op": "check", "hash": h, "password": p} for h in ours.values() for p in (pw, wrong)])
    hows = set()
    for i, (m, h) in enumerate(ours.items()):
        eq(res[2 * i]["ok"], True, f"Werkzeug on Carafe's {m}: {res[2 * i]}")
        eq(res[2 * i + 1]["ok"], False, f"Werkzeug on Carafe's {m}, wrong password")
        hows.add(res[2 * i]["how"])
    print(f"     {len(methods)} Werkzeug {REF_VERSIONS['werkzeug']} hashes verified by Carafe; "
          f"Carafe's checked by {', '.join(sorted(hows))}")
    for bad in ["", "x", "scrypt$a$b", "pbkdf2:nope:1$s$00", "scrypt:3:8:1$s$00", "$$$"]:
        eq(post_json("/verify", {"hash": bad, "password": pw}).json(), {"ok": False}, repr(bad))
    eq(post_json("/hash", {"password": pw, "method": "md5"}).json(), {"hash": None}, "unknown")


def t_hash_does_not_block():
    out = {}

    def slow():
        t0 = time.monotonic()
        r = post_json("/hash", {"password": "x", "method": "pbkdf2:sha256:3000000"})
        out["slow"] = (r.status_code, r.json().get("hash"), time.monotonic() - t0)

    th = threading.Thread(target=slow)
    th.start()
    time.sleep(0.1)
    lat = []
    while th.is_alive() and len(lat) < 300:
        t0 = time.monotonic()
        r = requests.get(srv.url("/ping"), timeout=T)
        lat.append(time.monotonic() - t0)
        eq(r.text, "pong", "/ping")
    th.join()
    status, h, took = out["slow"]
    eq(status, 200, "/hash")
    check(h and h.startswith("pbkdf2:sha256:3000000$"), f"slow hash: {h}")
    print(f"     the hash took {took * 1000:.0f} ms; meanwhile {len(lat)} pings, "
          f"median {sorted(lat)[len(lat) // 2] * 1000:.1f} ms")
    check(took > 0.3, f"the hash took only {took:.2f}s: too fast to show anything")
    H.check_served_meanwhile(lat, "a password hash")


def main():
    global srv, REF_PY, REF_VERSIONS
    H.watchdog(240)
    REF_PY = find_reference_python()
    REF_VERSIONS = ref({"op": "versions"})[0]
    print(f"reference: {REF_PY}: Flask {REF_VERSIONS['flask']}, Werkzeug "
          f"{REF_VERSIONS['werkzeug']}, itsdangerous {REF_VERSIONS['itsdangerous']}"
          + ("" if flask3() else " (no Werkzeug scrypt: Carafe's scrypt hashes are checked by "
                                 "recomputing them with hashlib.scrypt)"), flush=True)
    srv = H.Server(H.app_path("sessionapp"), name="session",
                   env={"SECRET_KEY": KEY, "SECRET_KEY_FALLBACKS": f"unused,{OLD}"})
    failures, errors = H.run_with_server(srv, globals(), check_alive=True)
    H.finish(failures, errors)


if __name__ == "__main__":
    main()
