"""
test_lazy_open.py — set-up records the database and the queue, and only
serving opens them (issue 12): an app that calls cf_db_open(app, NULL) and
cf_db_exec_script before cf_run, as the guide shows (tests/apps/dbapp), or
cf_queue_open (tests/apps/queueapp), answers --help without any database
or queue — DATABASE_URL unset, a SQLite file it cannot create, a
PostgreSQL or Redis server that is not there — and creates no file doing
so; run to serve, it exits non-zero at once with a message that says what
is wrong. A good URL still serves.
"""
import os
import shutil
import subprocess
import sys
import tempfile

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import check, eq  # noqa: E402

tmp = tempfile.mkdtemp(prefix="cf-lazy-")
DEAD_PORT = H.free_port()  # nothing listens there


def run(app, args, env, timeout=10):
    e = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "QUEUE_URL")}
    e.update(env)
    e.setdefault("ASAN_OPTIONS", "detect_leaks=1")
    return subprocess.run([os.path.abspath(H.app_path(app)), "--host", "127.0.0.1", "--port", "0"] + args,
                          env=e, cwd=tmp, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=timeout, text=True)


def files():
    return sorted(os.listdir(tmp))


def t_help_without_a_database():
    cases = {
        "unset": {},
        "unwritable": {"DATABASE_URL": "sqlite:////nonexistent-dir-cf/app.db"},
        "sqlite": {"DATABASE_URL": "sqlite:///app.db"},
        "postgresql down": {"DATABASE_URL": f"postgresql://u@127.0.0.1:{DEAD_PORT}/x"},
    }
    for what, env in cases.items():
        p = run("dbapp", ["--help"], env)
        eq(p.returncode, 0, f"dbapp --help, DATABASE_URL {what}: {p.stderr}")
        check("usage:" in p.stdout and "--port" in p.stdout, f"usage printed ({what})")
        eq(p.stderr.strip(), "", f"nothing on stderr ({what})")
    eq(files(), [], "no database file created by --help")


def t_serving_without_a_database_fails_clearly():
    cases = {
        "unset": ({}, "DATABASE_URL is not set"),
        "unwritable": ({"DATABASE_URL": "sqlite:////nonexistent-dir-cf/app.db"},
                       "cannot open SQLite database /nonexistent-dir-cf/app.db"),
        "postgresql down": ({"DATABASE_URL": f"postgresql://u@127.0.0.1:{DEAD_PORT}/x"},
                            "cannot connect"),
    }
    for what, (env, msg) in cases.items():
        p = run("dbapp", ["--workers", "1"], env)
        check(p.returncode != 0, f"dbapp without a database ({what}) exits non-zero, not "
                                 f"{p.returncode}")
        check(msg in p.stderr, f"{what}: {msg!r} not in {p.stderr!r}")
        check("serving on" not in p.stderr, f"{what}: it did not start serving")
    eq(files(), [], "no file left behind")


def t_help_without_a_queue():
    p = run("queueapp", ["--help"], {})
    eq(p.returncode, 0, f"queueapp --help, no QUEUE_URL: {p.stderr}")
    eq(files(), [], "--help created no queue.db")
    p = run("queueapp", ["--help"], {"QUEUE_URL": f"redis://127.0.0.1:{DEAD_PORT}"})
    eq(p.returncode, 0, f"queueapp --help, Redis not there: {p.stderr}")
    check("usage:" in p.stdout, "usage printed")
    p = run("queueapp", ["--workers", "1"], {"QUEUE_URL": f"redis://127.0.0.1:{DEAD_PORT}"})
    check(p.returncode != 0, f"queueapp without its Redis exits non-zero, not {p.returncode}")
    check("cannot use the task queue" in p.stderr, p.stderr)
    p = run("queueapp", ["--workers", "1"], {"QUEUE_URL": "sqlite:////nonexistent-dir-cf/q.db"})
    check(p.returncode != 0, f"queueapp with an unusable file exits non-zero, not {p.returncode}")
    check("cannot open the task queue /nonexistent-dir-cf/q.db" in p.stderr, p.stderr)


def t_a_good_url_still_serves():
    srv = H.Server(H.app_path("dbapp"), args=["--workers", "1"],
                   env={"DATABASE_URL": f"sqlite:///{tmp}/good.db"}, name="dbapp").start()
    try:
        r = H.http(srv.port, "GET", "/count?name=x")
        eq(r.status, 200, f"/count: {r.body!r}")
    finally:
        H.stop_and_check(srv)
    check(os.path.exists(os.path.join(tmp, "good.db")), "the file was created when serving")


if __name__ == "__main__":
    H.watchdog(120)
    try:
        failures = H.run_tests(H.collect(globals()))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    H.finish(failures)
