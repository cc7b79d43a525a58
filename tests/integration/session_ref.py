"""
session_ref.py — the Flask / itsdangerous / Werkzeug side of
test_session_flask.py, run in a subprocess with whichever python3 has the
newest Flask (the test's own interpreter may have only Debian's). Reads a
JSON list of operations on stdin, writes a JSON list of results:

  versions                        {"flask", "werkzeug", "itsdangerous"}
  mint    cfg                     the session cookie a real Flask request
                                  sets (values of every tagged type, two
                                  flashes, permanent)
  dumps   cfg data [ts]           get_signing_serializer(app).dumps(data),
                                  signed at Unix time ts if given
  loads   cfg cookie              {"ok", "tagged": the session as Flask's
                                  TaggedJSONSerializer writes it} with the
                                  max age Flask's open_session uses
  flashes cfg cookie              get_flashed_messages(with_categories=True)
                                  in a Flask request carrying the cookie
  setcookie cfg path [cookie]     the Set-Cookie headers of a Flask request:
                                  /set (session["x"] = "1"), /perm (also
                                  permanent), /clear
  hash    method password         generate_password_hash (or an error)
  check   hash password           check_password_hash; with a Werkzeug
                                  before 2.3 (no scrypt) a scrypt hash is
                                  recomputed with hashlib.scrypt instead
"""
import hashlib
import hmac
import json
import sys
from importlib.metadata import version

import flask
import itsdangerous.timed
from flask import Flask, flash, get_flashed_messages, session
from flask.json.tag import TaggedJSONSerializer
from markupsafe import Markup
from werkzeug.security import check_password_hash, generate_password_hash


def make_app(cfg):
    app = Flask("ref")
    app.config.update(cfg)

    @app.route("/mint")
    def mint():
        import uuid
        session["user"] = "ann"
        session["uni"] = "h\u00e9llo \u2713 \U0001F600"
        session["nested"] = {"a": [1, 2.5, None, True], "b": {"c": "d"}}
        session["tup"] = (1, "two")
        session["raw"] = b"\x00\xffbytes"
        session["html"] = Markup("<b>bold</b>")
        session["id"] = uuid.UUID("12345678-1234-5678-1234-567812345678")
        session["tagkey"] = {" t": "not a tuple"}
        flash("hello")
        flash("bad thing", "error")
        session.permanent = True
        return "minted"

    @app.route("/set")
    def set_():
        session["x"] = "1"
        return "set"

    @app.route("/perm")
    def perm():
        session.permanent = True
        session["x"] = "1"
        return "perm"

    @app.route("/clear")
    def clear():
        session.clear()
        return "clear"

    @app.route("/flashes")
    def flashes():
        return json.dumps(get_flashed_messages(with_categories=True))

    return app


def cookie_value(resp, name="session"):
    for h in resp.headers.getlist("Set-Cookie"):
        if h.startswith(name + "="):
            return h.split(";", 1)[0][len(name) + 1:]
    return None


def client_with_cookie(app, value):
    """A test client that sends the session cookie (Werkzeug 2.3 changed
    set_cookie's arguments; a Cookie header of one's own is not sent)."""
    c = app.test_client()
    if value:
        name = app.config["SESSION_COOKIE_NAME"]
        if tuple(int(x) for x in version("werkzeug").split(".")[:2]) >= (2, 3):
            c.set_cookie(name, value, domain="localhost")
        else:
            c.set_cookie("localhost", name, value)
    return c


def serializer(app):
    return app.session_interface.get_signing_serializer(app)


def run(op):
    kind = op["op"]
    cfg = op.get("cfg", {})
    if kind == "versions":
        return {k: version(k) for k in ("flask", "werkzeug", "itsdangerous")}
    if kind == "mint":
        return cookie_value(make_app(cfg).test_client().get("/mint"))
    if kind == "dumps":
        app = make_app(cfg)
        orig = itsdangerous.timed.TimestampSigner.get_timestamp
        if "ts" in op:
            itsdangerous.timed.TimestampSigner.get_timestamp = lambda self: op["ts"]
        try:
            with app.app_context():
                return serializer(app).dumps(op["data"])
        finally:
            itsdangerous.timed.TimestampSigner.get_timestamp = orig
    if kind == "loads":
        app = make_app(cfg)
        with app.app_context():
            try:
                max_age = int(app.permanent_session_lifetime.total_seconds())
                data = serializer(app).loads(op["cookie"], max_age=max_age)
            except Exception as e:  # noqa: BLE001 - reported as a result
                return {"ok": False, "error": f"{type(e).__name__}: {e}"}
            return {"ok": True, "tagged": TaggedJSONSerializer().dumps(data)}
    if kind == "flashes":
        r = client_with_cookie(make_app(cfg), op["cookie"]).get("/flashes")
        return json.loads(r.get_data(as_text=True))
    if kind == "setcookie":
        r = client_with_cookie(make_app(cfg), op.get("cookie")).get(op["path"])
        return {"set_cookie": r.headers.getlist("Set-Cookie"), "vary": r.headers.get("Vary")}
    if kind == "hash":
        try:
            return generate_password_hash(op["password"], op["method"])
        except Exception as e:  # noqa: BLE001
            return {"error": f"{type(e).__name__}: {e}"}
    if kind == "check":
        h, pw = op["hash"], op["password"]
        old = tuple(int(x) for x in version("werkzeug").split(".")[:2]) < (2, 3)
        if h.startswith("scrypt") and old:
            method, salt, hexval = h.split("$", 2)
            parts = method.split(":")
            n, r, p = (int(x) for x in parts[1:]) if len(parts) == 4 else (2**15, 8, 1)
            got = hashlib.scrypt(pw.encode(), salt=salt.encode(), n=n, r=r, p=p,
                                 maxmem=132 * n * r * p).hex()
            return {"ok": hmac.compare_digest(got, hexval), "how": "hashlib.scrypt"}
        try:
            return {"ok": check_password_hash(h, pw), "how": "werkzeug"}
        except Exception as e:  # noqa: BLE001
            return {"ok": False, "how": "werkzeug", "error": f"{type(e).__name__}: {e}"}
    raise ValueError(f"unknown op {kind}")


def main():
    ops = json.load(sys.stdin)
    json.dump([run(op) for op in ops], sys.stdout)


if __name__ == "__main__":
    sys.dont_write_bytecode = True
    main()
