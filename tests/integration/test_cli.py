"""
test_cli.py — cf_run's command line and environment: --help, bad arguments,
PORT/HOST/WEB_CONCURRENCY from the environment, --workers spreading
connections over processes, --debug error details, and the access log
(on by default, off with --no-access-log).
"""
import os
import re
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import check, eq  # noqa: E402

APP = H.app_path("testapp")


def run_quick(args, env=None, timeout=10):
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run([APP] + args, capture_output=True, text=True, timeout=timeout, env=e)


def t_help():
    p = run_quick(["--help"])
    eq(p.returncode, 0, "exit status of --help")
    for opt in ("--host", "--port", "--workers", "--debug", "--no-access-log"):
        check(opt in p.stdout, f"--help does not mention {opt}")


def t_bad_arguments_exit_2():
    for args, env in ((["--port", "abc"], {}), (["--port", "70000"], {}), (["--workers", "0"], {}),
                      (["--bogus"], {}), (["--port"], {}), ([], {"PORT": "x"}),
                      ([], {"WEB_CONCURRENCY": "many"})):
        p = run_quick(args, env)
        eq(p.returncode, 2, f"exit status for {args} {env}")
        check(p.stderr.strip(), f"no message for {args} {env}")


def t_port_and_host_from_env():
    srv = H.Server(APP, env={"PORT": "0", "HOST": "127.0.0.1"}, port_arg=False, name="cli-env")
    try:
        srv.start()
        check("127.0.0.1" in srv.stderr(), "HOST not used")
        eq(H.http(srv.port, "GET", "/hello").status, 200, "served on the PORT=0 port")
    finally:
        H.stop_and_check(srv, expect_status=0)


def t_port_option_wins_over_env():
    srv = H.Server(APP, env={"PORT": "1"}, name="cli-port-wins")  # --port 0 given by harness
    try:
        srv.start()
        check(srv.port not in (0, 1), f"port {srv.port}")
        eq(H.http(srv.port, "GET", "/hello").status, 200, "served")
    finally:
        H.stop_and_check(srv, expect_status=0)


def t_workers_option():
    srv = H.Server(APP, args=["--workers", "3", "--no-access-log"], name="cli-workers")
    try:
        srv.start()
        check("3 workers" in srv.stderr(), f"banner: {srv.stderr()!r}")
        srv.wait_workers(3)
        seen = H.pids_seen(srv.port, 3)
        print(f"     worker pids seen: {sorted(seen)}")
        check(srv.pid not in seen, "the parent answered requests")
        check(len(seen) >= 2, f"every connection went to one worker: {seen}")
        check(len(seen) <= 3, f"more worker pids than workers: {seen}")
    finally:
        H.stop_and_check(srv, expect_status=0)


def t_web_concurrency_env():
    srv = H.Server(APP, args=["--no-access-log"], env={"WEB_CONCURRENCY": "2"}, name="cli-wc")
    try:
        srv.start()
        check("2 workers" in srv.stderr(), f"banner: {srv.stderr()!r}")
        srv.wait_workers(2)
        seen = H.pids_seen(srv.port, 2)
        check(len(seen) == 2, f"WEB_CONCURRENCY=2 did not give two workers: {seen}")
    finally:
        H.stop_and_check(srv, expect_status=0)


def t_debug_shows_error_details():
    srv = H.Server(APP, args=["--debug"], name="cli-debug")
    try:
        srv.start()
        check("debug mode" in srv.stderr(), "banner without debug mode")
        r = H.http(srv.port, "GET", "/boom")
        eq(r.status, 500, "status")
        check(b"without a response" in r.body, f"--debug 500 body lacks the reason: {r.body!r}")
    finally:
        H.stop_and_check(srv, expect_status=0)
    srv = H.Server(APP, name="cli-nodebug")
    try:
        srv.start()
        r = H.http(srv.port, "GET", "/boom")
        check(b"without a response" not in r.body, "details shown without --debug")
    finally:
        H.stop_and_check(srv, expect_status=0)


def t_access_log():
    srv = H.Server(APP, name="cli-log")
    try:
        srv.start()
        H.http(srv.port, "GET", "/hello?x=1")
        H.http(srv.port, "POST", "/echo", body=b"abc")
        H.http(srv.port, "GET", "/missing")
        H.http(srv.port, "GET", "/a/%2e%2e/secret")
        time.sleep(0.1)
    finally:
        H.stop_and_check(srv, expect_status=0)
    log = srv.stdout()
    check(re.search(r'^127\.0\.0\.1 - - \[\d\d/\w{3}/\d{4}:[\d:]+ \+0000\] "GET /hello\?x=1 HTTP/1\.1" '
                    r'200 13 [\d.]+ms [0-9a-f]{16}$', log, re.M),
          f"no access log line for GET /hello: {log!r}")
    check(re.search(r'"POST /echo HTTP/1\.1" 200 3 ', log), "no line for POST /echo")
    check(re.search(r'"GET /missing HTTP/1\.1" 404 ', log), "no line for the 404")
    check(re.search(r'"GET /a/%2e%2e/secret HTTP/1\.1" 400 .*\(dot segments are not allowed', log),
          f"no line for the refused request: {log!r}")

    srv = H.Server(APP, args=["--no-access-log"], name="cli-nolog")
    try:
        srv.start()
        H.http(srv.port, "GET", "/hello")
        time.sleep(0.1)
    finally:
        H.stop_and_check(srv, expect_status=0)
    eq(srv.stdout(), "", "stdout with --no-access-log")


def main():
    H.watchdog(100)
    H.finish(H.run_tests(H.collect(globals())))


if __name__ == "__main__":
    main()
