"""
test_serving.py — serving hooks, the app logger and the master's start-up
back-off in the prefork server (tests/integration/apps/corsapp.c):

  hooks_around_serving   before_serving logs before the worker serves; on
                         SIGTERM a request in flight still gets its answer,
                         then after_serving runs (it awaits) and counts it;
                         exit 0
  failing_start_backoff  a before_serving hook that always fails: its name and
                         message are logged, the worker exits 3 without
                         serving, the master retries after 1 s, 2 s, 4 s
                         (at most 4 attempts in 6.5 s: no tight loop), stays
                         up, and stops on SIGTERM
  start_recovers         failing twice, then serving: the third attempt (after
                         1 + 2 s) answers, after_serving runs once at the end
  log_json_debug         --log-format json --log-level debug: one JSON object
                         per cf_log line, all four levels and the wrapper's
                         debug line, each with the client's X-Request-Id
  log_level_warning      --log-level warning: info and debug dropped; lines
                         carry the id the response's X-Request-Id shows
"""
import json
import os
import re
import signal
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import check, eq  # noqa: E402

APP = H.app_path("corsapp")


def server(name, args=(), env=None):
    return H.Server(APP, args=list(args), env=env, name=name)


def t_hooks_around_serving():
    s = server("serving-hooks").start()
    try:
        H.wait_until(lambda: "before_serving: ready" in s.stderr(), 5, what="before_serving's line")
        eq(H.http(s.port, "GET", "/api/data").status, 200, "served")
        result = {}
        t = threading.Thread(target=lambda: result.setdefault("r", H.http(s.port, "GET", "/slow?ms=600")))
        t.start()
        time.sleep(0.2)
        s.signal(signal.SIGTERM)
        t.join(5)
        eq((result["r"].status, result["r"].body), (200, b"slept"), "the request in flight")
        eq(s.wait(10), 0, "exit status")
        err = s.stderr()
        m = re.search(r"INFO \d+ - after_serving: served (\d+) requests", err)
        check(m, f"no after_serving line:\n{err}")
        eq(m.group(1), "2", "requests counted by after_serving")
        check(err.index("SIGTERM") < m.start(), "after_serving ran after the stop began")
        eq(err.count("after_serving: served"), 1, "after_serving runs once")
    finally:
        H.stop_and_check(s)


def t_failing_start_backoff():
    with tempfile.TemporaryDirectory() as d:
        count = os.path.join(d, "attempts")
        s = server("serving-fail", env={"SERVE_COUNT_FILE": count, "SERVE_FAIL_TIMES": "-1"}).start()
        try:
            time.sleep(6.5)
            check(s.alive(), "the master gave up")
            attempts = int(open(count).read())
            err = s.stderr()
            check(2 <= attempts <= 4, f"{attempts} start attempts in 6.5 s (want 3: at 0, 1 and 3 s):\n{err}")
            delays = re.findall(r"failed to start \(before_serving\); next try in (\d+) s", err)
            eq(delays[:2], ["1", "2"], "growing delays")
            eq(delays[2:3], ["4"] if len(delays) > 2 else [], "the third delay")
            check("ERROR" in err and "before_serving hook before_serving failed: failed: attempt 1: "
                  "the cache is not reachable" in err, f"the hook's failure is not logged:\n{err}")
            check("exited with status 3 (before_serving failed)" in err, "worker exit status")
            check("after_serving" not in err, "after_serving ran for a worker that never served")
            check("before_serving: ready" not in err, "a failing worker logged ready")
            s.signal(signal.SIGTERM)
            eq(s.wait(5), 0, "exit status after SIGTERM")
        finally:
            H.stop_and_check(s)


def t_start_recovers():
    with tempfile.TemporaryDirectory() as d:
        count = os.path.join(d, "attempts")
        t0 = time.monotonic()
        s = server("serving-recover", env={"SERVE_COUNT_FILE": count, "SERVE_FAIL_TIMES": "2"}).start()
        try:
            def up():
                try:
                    return H.http(s.port, "GET", "/api/data", timeout=0.5).status == 200
                except (H.Closed, TimeoutError, OSError):
                    return False
            H.wait_until(up, 12, interval=0.1, what="a worker that serves")
            dt = time.monotonic() - t0
            eq(int(open(count).read()), 3, "attempts")
            check(2.5 <= dt <= 8, f"served after {dt:.1f} s (want about 3: 1 s, then 2 s of back-off)")
            s.signal(signal.SIGTERM)
            eq(s.wait(10), 0, "exit status")
            eq(s.stderr().count("after_serving: served"), 1, "after_serving lines")
        finally:
            H.stop_and_check(s)


def t_log_json_debug():
    s = server("log-json", args=["--log-format", "json", "--log-level", "debug"]).start()
    try:
        r = H.http(s.port, "GET", "/log", headers={"X-Request-Id": "trace-7"})
        eq(r.status, 200, "status")
        eq(r.header("X-Request-Id"), "trace-7", "response id")
        H.wait_until(lambda: "wrapped GET /log" in s.stderr(), 5, what="the wrapper's line")
        lines = [json.loads(l) for l in s.stderr().splitlines() if l.startswith("{")]
        mine = [l for l in lines if l.get("request_id") == "trace-7"]
        eq([l["level"] for l in mine], ["debug", "info", "warning", "error", "debug"], "levels")
        eq(mine[1]["message"], "info from /log", "message")
        eq((mine[1]["method"], mine[1]["path"]), ("GET", "/log"), "method and path")
        check(all(l["pid"] in s.worker_pids() for l in mine), "pid is the worker's")
        ready = [l for l in lines if l["message"] == "before_serving: ready"]
        check(ready and ready[0]["request_id"] is None, f"before_serving line: {ready}")
    finally:
        H.stop_and_check(s, expect_status=0)


def t_log_level_warning():
    s = server("log-warning", args=["--log-level", "warning"]).start()
    try:
        r = H.http(s.port, "GET", "/log")
        rid = r.header("X-Request-Id")
        check(rid, "a logged request's response names its id")
        H.wait_until(lambda: "error from /log" in s.stderr(), 5, what="the error line")
        err = s.stderr()
        check("info from /log" not in err and "debug from /log" not in err, f"below the level:\n{err}")
        check(re.search(rf"^\S+Z WARNING \d+ {rid} warning from /log$", err, re.M), f"warning line:\n{err}")
        check(re.search(rf"^\S+Z ERROR \d+ {rid} error from /log$", err, re.M), f"error line:\n{err}")
        check("before_serving: ready" not in err, "info from before_serving dropped")
    finally:
        H.stop_and_check(s, expect_status=0)


def main():
    H.watchdog(120)
    H.finish(H.run_tests(H.collect(globals())))


if __name__ == "__main__":
    main()
