"""
test_prefork.py — the production server over real sockets: the prefork
master and its workers, crash recovery, signals, recycling, limits and
timeouts from the command line, the access log and the metrics endpoint.

  crash_segfault, crash_abort,  a handler that dies of SIGSEGV / SIGABRT /
  crash_stack_overflow          a 1 MiB local array on its 64 KiB stack costs
                                its own client a closed connection; the slow
                                requests both workers hold all finish with 200;
                                the next request is served; the log names the
                                route; a new worker replaces the crashed one
  crash_single_worker_...       with one worker, the replacement serves while
                                the crashed worker still drains
  sigterm_100_in_flight         100 one-second requests finish, exit 0 in ~1 s,
                                then connections are refused
  sigterm_to_every_process      SIGTERM to master and workers at once (systemd's
                                default KillMode) still drains
  sighup_under_wrk              two reloads under wrk: no socket error, no
                                non-2xx, all worker pids new
  sighup_twice_quickly          a reload during a reload: the draining request
                                finishes, the full set of workers ends up running
  sigkill_worker_under_wrk      the only worker killed: answers again within 1 s,
                                the death is logged and counted in the metrics
  sigquit_immediate             master and workers gone within 1 s although a
                                10 s request is in flight
  max_requests                  --max-requests 50: pid changes after exactly 50;
                                with jitter within [50, 70]; all 200
  max_requests_while_busy       the replacement serves while the retiring worker
                                finishes a slow request
  handler_timeout               --handler-timeout 0.3: 503 in ~0.3 s; fast
                                requests unaffected
  limits_from_cli               --max-body-size, --max-header-size,
                                --keepalive-timeout, --header-timeout
  access_log_json / _common     one JSON object per line, X-Request-Id kept or
                                generated, --access-log FILE; the common format
  access_log_reopened_on_hup    log rotation: SIGHUP's workers open the file anew
  metrics                       counts per route and status summed over two
                                workers, histograms, gauges, restarts
"""
import json
import os
import re
import signal
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import Conn, check, eq, request_bytes  # noqa: E402

APP = H.app_path("testapp")
SAN = H.sanitized_build()


def server(args, name, **kw):
    return H.Server(APP, args=args, name=name, **kw)


def get(port, path, timeout=5.0, **kw):
    return H.http(port, "GET", path, timeout=timeout, **kw)


def expect_closed_without_response(c, what, timeout=5.0):
    """The server closes c without sending a byte of response."""
    try:
        r = c.read_response(timeout=timeout)
    except H.Closed:
        eq(c.buf, b"", f"{what}: bytes before the close")
        return
    raise AssertionError(f"{what}: got a response {r!r} instead of a closed connection")


# --------------------------------------------------------------------------
# Crash recovery
# --------------------------------------------------------------------------

def slow_on_both_workers(srv, ms, per_worker=2, budget=2.0):
    """Open keep-alive connections, ask each which worker holds it (/pid),
    then start GET /sleep?ms=ms on it, until every worker holds per_worker
    slow requests. Returns ({pid: [conn, ...]}, time the first was sent)."""
    workers = set(srv.worker_pids())
    by_pid = {p: [] for p in workers}
    t_first = None
    deadline = time.monotonic() + budget
    while any(len(v) < per_worker for v in by_pid.values()):
        if time.monotonic() > deadline:
            for v in by_pid.values():
                for c in v:
                    c.close()
            raise AssertionError(f"could not place {per_worker} slow requests on each worker in "
                                 f"{budget}s: {({p: len(v) for p, v in by_pid.items()})}")
        c = Conn(srv.port, timeout=10)
        c.send(request_bytes("GET", "/pid"))
        pid = int(c.read_response().body)
        check(pid in by_pid, f"/pid answered {pid}, not one of the workers {sorted(workers)}")
        if len(by_pid[pid]) >= per_worker:
            c.close()
            continue
        c.send(request_bytes("GET", f"/sleep?ms={ms}"))
        if t_first is None:
            t_first = time.monotonic()
        by_pid[pid].append(c)
    return by_pid, t_first


def crash_case(route, report):
    ms = 2000
    srv = server(["--workers", "2", "--no-access-log"], f"crash{route.replace('/', '-')}")
    conns = []
    try:
        srv.start()
        before = set(srv.wait_workers(2))
        by_pid, t_first = slow_on_both_workers(srv, ms)
        conns = [c for v in by_pid.values() for c in v]

        bad = Conn(srv.port, timeout=10)
        bad.send(request_bytes("GET", route))
        expect_closed_without_response(bad, f"the client of {route}")
        bad.close()
        # The crash must have happened while every slow request was in flight.
        check(time.monotonic() - t_first < ms / 1000 - 0.2,
              "the test was too slow: the slow requests may have finished before the crash")

        r = get(srv.port, "/hello")
        eq((r.status, r.body), (200, b"Hello, World!"), "a request right after the crash")

        results = {}
        for pid, cs in by_pid.items():
            for c in cs:
                try:
                    r = c.read_response(timeout=ms / 1000 + 5)
                    results.setdefault(pid, []).append((r.status, r.body))
                except (H.Closed, TimeoutError) as e:
                    results.setdefault(pid, []).append(repr(e))
        want = {pid: [(200, f"slept {ms}".encode())] * len(cs) for pid, cs in by_pid.items()}
        eq(results, want, "the slow requests held by both workers")

        m = srv.wait_stderr(r"worker (\d+) exited with status 70 after a crash in a handler")
        dead = int(m.group(1))
        check(dead in before, f"the crashed worker {dead} is not one of {sorted(before)}")
        err = srv.stderr()
        check(f"{report} while handling GET {route}" in err,
              f"stderr does not name the fault and the route:\n{err[-3000:]}")
        now = set(srv.wait_workers(2, exclude=(dead,)))
        check(dead not in now, "the crashed worker is still there")
        check(now - before, f"no new worker pid: before {sorted(before)}, now {sorted(now)}")
        # The replacement serves.
        seen = {int(get(srv.port, "/pid").body) for _ in range(30)}
        check(seen <= now and not (seen & {dead}), f"/pid answered {seen}, workers are {now}")
        print(f"     workers {sorted(before)} -> {sorted(now)}; {dead} crashed")
    finally:
        for c in conns:
            c.close()
        H.stop_and_check(srv, expect_status=0)


def t_crash_segfault():
    crash_case("/segfault", "SIGSEGV in a coroutine")


def t_crash_abort():
    crash_case("/abort", "SIGABRT in a coroutine")


def t_crash_stack_overflow():
    crash_case("/bigframe", "stack overflow in a coroutine (stack 64 KiB)")


def t_crash_single_worker_keeps_serving():
    """With one worker, a crash while another request is in flight: the
    crashed worker drains that request, but a replacement serves new
    connections at once, not after the drain."""
    srv = server(["--workers", "1", "--no-access-log", "--metrics", "/metrics"], "crash-1worker")
    slow = None
    try:
        srv.start()
        (first,) = srv.wait_workers(1)
        slow = Conn(srv.port, timeout=10)
        slow.send(request_bytes("GET", "/sleep?ms=3000"))
        time.sleep(0.2)
        with Conn(srv.port) as c:
            c.send(request_bytes("GET", "/segfault"))
            expect_closed_without_response(c, "/segfault")
        t0 = time.monotonic()
        r = get(srv.port, "/pid", timeout=5)
        dt = time.monotonic() - t0
        eq(r.status, 200, "a request right after the crash")
        check(int(r.body) != first, "answered by the crashed worker")
        check(dt < 1.0, f"a new connection waited {dt:.2f}s for the crashed worker's drain")
        r = slow.read_response(timeout=5)
        eq((r.status, r.body), (200, b"slept 3000"), "the request the crashed worker held")
        slow.close()
        srv.wait_stderr(rf"worker {first} exited with status 70 after a crash in a handler")
        time.sleep(0.3)
        eq(len(srv.worker_pids()), 1, f"workers after the crashed one exited: {srv.worker_pids()}")
        samples = parse_metrics(metrics_text(srv.port))
        eq(metric_sum(samples, "carafe_worker_restarts_total"), 1, "restarts")
        print(f"     new worker answered {dt * 1000:.0f} ms after the crash")
    finally:
        if slow:
            slow.close()
        H.stop_and_check(srv, expect_status=0)


# --------------------------------------------------------------------------
# Signals
# --------------------------------------------------------------------------

def metrics_text(port):
    r = get(port, "/metrics")
    eq(r.status, 200, "/metrics status")
    return r.body.decode()


def parse_metrics(text):
    """{(name, frozenset(labels.items())): value} of the samples."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$', line)
        check(m, f"not a Prometheus sample line: {line!r}")
        labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        out[(m.group(1), frozenset(labels.items()))] = float(m.group(3))
    return out


def metric_sum(samples, name, **labels):
    return sum(v for (n, ls), v in samples.items()
               if n == name and all((k, str(val)) in ls for k, val in labels.items()))


def t_sigterm_100_in_flight():
    n, ms = 100, 1000
    srv = server(["--workers", "2", "--no-access-log", "--metrics", "/metrics"], "sigterm100")
    conns = []
    try:
        srv.start()
        workers = srv.wait_workers(2)
        for _ in range(n):
            c = Conn(srv.port, timeout=10)
            c.send(request_bytes("GET", f"/sleep?ms={ms}"))
            conns.append(c)
        t_sent = time.monotonic()
        # All of them in the handlers before the signal (the gauge is
        # sampled every 100 ms).
        H.wait_until(lambda: metric_sum(parse_metrics(metrics_text(srv.port)),
                                        "carafe_requests_in_flight") >= n,
                     timeout=0.7, interval=0.03, what=f"{n} requests in flight")
        t0 = time.monotonic()
        srv.signal(signal.SIGTERM)
        statuses = []
        for c in conns:
            try:
                r = c.read_response(timeout=5)
                statuses.append((r.status, r.body, r.closes))
            except (H.Closed, TimeoutError) as e:
                statuses.append(repr(e))
            c.close()  # as a client does after "Connection: close"
        eq(statuses, [(200, f"slept {ms}".encode(), True)] * n, "the 100 in-flight requests")
        rc = srv.wait(5)
        dt = time.monotonic() - t0
        check(rc is not None, "the master still runs 5 s after SIGTERM")
        eq(rc, 0, "exit status after SIGTERM")
        check(dt < 3.0, f"stopping took {dt:.2f}s")
        print(f"     all {n} answered; master exited 0 {dt:.2f}s after SIGTERM "
              f"({t0 - t_sent:.2f}s after the last request was sent)")
        for p in workers:
            check(not H.pid_alive(p), f"worker {p} outlived the master")
        try:
            Conn(srv.port, timeout=2).close()
            raise AssertionError("a connection after the drain was accepted")
        except ConnectionRefusedError:
            pass
    finally:
        for c in conns:
            c.close()
        H.stop_and_check(srv, expect_status=0)


def t_sigterm_to_every_process():
    """SIGTERM to the master and the workers at once, as systemd does with its
    default KillMode=control-group and as `kill -TERM -PGID` does: the
    workers get it twice (directly and from the master) and must still
    drain, not cut their requests."""
    srv = server(["--workers", "2", "--no-access-log"], "sigterm-all")
    conns = []
    try:
        srv.start()
        workers = srv.wait_workers(2)
        by_pid, _ = slow_on_both_workers(srv, 1500, per_worker=3)
        conns = [c for v in by_pid.values() for c in v]
        for pid in [srv.pid] + workers:
            os.kill(pid, signal.SIGTERM)
        got = []
        for c in conns:
            try:
                r = c.read_response(timeout=5)
                got.append((r.status, r.body))
            except (H.Closed, TimeoutError) as e:
                got.append(repr(e))
            c.close()
        eq(got, [(200, b"slept 1500")] * len(conns), "requests in flight")
        eq(srv.wait(5), 0, "exit status")
    finally:
        for c in conns:
            c.close()
        H.stop_and_check(srv, expect_status=0)


def t_sighup_under_wrk():
    srv = server(["--workers", "2", "--no-access-log"], "sighup")
    wrk = None
    try:
        srv.start()
        before = set(srv.wait_workers(2))
        wrk = H.Wrk(srv.url("/hello"), threads=1, conns=50, duration=6)
        time.sleep(1.5)
        srv.signal(signal.SIGHUP)
        time.sleep(2.0)
        mid = set(srv.worker_pids())
        srv.signal(signal.SIGHUP)
        res = wrk.result()
        wrk = None
        after = set(srv.wait_workers(2))
        print(f"     wrk: {res['requests']} requests; workers {sorted(before)} -> {sorted(mid)} "
              f"-> {sorted(after)}")
        check(res["rc"] == 0, f"wrk failed:\n{res['text']}")
        check("Socket errors" not in res["text"], f"wrk saw socket errors:\n{res['text']}")
        eq(res["non2xx"], 0, "non-2xx responses")
        check(res["requests"] > 1000, f"wrk made only {res['requests']} requests:\n{res['text']}")
        eq(srv.stderr().count("SIGHUP: starting"), 2, "reloads logged")
        eq(len(after), 2, "workers after the reloads")
        check(not (after & before), f"workers not replaced: {sorted(before)} -> {sorted(after)}")
        check(not (after & mid), f"second reload did not replace: {sorted(mid)} -> {sorted(after)}")
        for p in before | mid:
            H.wait_until(lambda: not H.pid_alive(p), 5, what=f"retired worker {p} gone")
        eq(get(srv.port, "/hello").status, 200, "after the reloads")
    finally:
        if wrk:
            wrk.kill()
        H.stop_and_check(srv, expect_status=0)


def t_sighup_twice_quickly():
    """Two reloads 50 ms apart, while the first set still drains a slow
    request: the server ends with its full set of workers."""
    srv = server(["--workers", "2", "--no-access-log"], "sighup2")
    c = None
    try:
        srv.start()
        before = set(srv.wait_workers(2))
        c = Conn(srv.port, timeout=10)
        c.send(request_bytes("GET", "/sleep?ms=1500"))
        time.sleep(0.2)
        srv.signal(signal.SIGHUP)
        time.sleep(0.05)
        srv.signal(signal.SIGHUP)
        r = c.read_response(timeout=5)
        eq((r.status, r.body), (200, b"slept 1500"), "the request the old worker held")
        c.close()
        H.wait_until(lambda: len(srv.worker_pids()) == 2 and not (set(srv.worker_pids()) & before),
                     5, what="two new workers after two quick reloads")
        time.sleep(1.5)  # a missing worker would be started within about 1 s
        now = srv.worker_pids()
        eq(len(now), 2, f"workers after two quick reloads ({now})")
        eq(H.pids_seen(srv.port, 2), set(now), "workers answering")
    finally:
        if c:
            c.close()
        H.stop_and_check(srv, expect_status=0)


def t_sigkill_worker_under_wrk():
    srv = server(["--workers", "1", "--no-access-log", "--metrics", "/metrics"], "sigkill")
    wrk = None
    try:
        srv.start()
        (victim,) = srv.wait_workers(1)
        wrk = H.Wrk(srv.url("/hello"), threads=1, conns=20, duration=3)
        time.sleep(1.0)
        t0 = time.monotonic()
        os.kill(victim, signal.SIGKILL)
        # The only worker is gone: a connection waits in the listen queue
        # until its replacement accepts it.
        r = get(srv.port, "/hello", timeout=2)
        dt = time.monotonic() - t0
        eq(r.status, 200, "first request after the kill")
        check(dt < 1.0, f"the service answered again only after {dt:.2f}s")
        res = wrk.result()
        wrk = None
        check(res["requests"] > 100, f"wrk made only {res['requests']} requests:\n{res['text']}")
        srv.wait_stderr(rf"worker {victim} killed by signal 9 \(Killed\)")
        (new,) = srv.wait_workers(1, exclude=(victim,))
        samples = parse_metrics(metrics_text(srv.port))
        eq(metric_sum(samples, "carafe_worker_restarts_total"), 1, "carafe_worker_restarts_total")
        print(f"     answered {dt * 1000:.0f} ms after the kill; worker {victim} -> {new}; "
              f"wrk {res['requests']} requests, errors {res['socket_errors']}")
    finally:
        if wrk:
            wrk.kill()
        H.stop_and_check(srv, expect_status=0)


def t_sigquit_immediate():
    srv = server(["--workers", "2", "--no-access-log"], "sigquit")
    c = None
    try:
        srv.start()
        workers = srv.wait_workers(2)
        c = Conn(srv.port, timeout=10)
        c.send(request_bytes("GET", "/sleep?ms=10000"))
        time.sleep(0.3)
        t0 = time.monotonic()
        srv.signal(signal.SIGQUIT)
        rc = srv.wait(1.0)
        check(rc is not None, "the master still runs 1 s after SIGQUIT")
        H.wait_until(lambda: not any(H.pid_alive(p) for p in workers), 1.0 - (time.monotonic() - t0),
                     what="workers gone within 1 s of SIGQUIT")
        print(f"     all gone {time.monotonic() - t0:.2f}s after SIGQUIT (exit status {rc})")
        expect_closed_without_response(c, "the 10 s request", timeout=2)
        check("SIGQUIT: stopping at once" in srv.stderr(), "SIGQUIT not logged")
    finally:
        if c:
            c.close()
        H.stop_and_check(srv)


# --------------------------------------------------------------------------
# Recycling, limits, timeouts
# --------------------------------------------------------------------------

def served_by(port, n):
    """n requests on fresh connections; the pid that answered each."""
    pids = []
    for i in range(n):
        r = get(port, "/pid")
        eq(r.status, 200, f"request {i + 1}")
        pids.append(int(r.body))
    return pids


def t_max_requests():
    srv = server(["--workers", "1", "--no-access-log", "--max-requests", "50"], "maxreq")
    try:
        srv.start()
        pids = served_by(srv.port, 120)
        distinct = list(dict.fromkeys(pids))
        print(f"     120 requests served by {len(distinct)} workers")
        check(len(distinct) >= 2, f"only {distinct} served 120 requests")
        eq(pids[:50], [pids[0]] * 50, "the first worker's 50 requests")
        check(pids[50] != pids[0], "request 51 was served by the worker that reached 50")
        eq(len(distinct), 3, "workers for 120 requests at 50 each")
        check("reached --max-requests" in srv.stderr(), "recycling not logged")
    finally:
        H.stop_and_check(srv, expect_status=0)

    srv = server(["--workers", "1", "--no-access-log", "--max-requests", "50",
                  "--max-requests-jitter", "20"], "maxreq-jitter")
    try:
        srv.start()
        pids = served_by(srv.port, 75)
        first = pids.index(next(p for p in pids if p != pids[0])) if len(set(pids)) > 1 else None
        check(first is not None and 50 <= first <= 70,
              f"with jitter 20 the first worker served {first} requests, want 50..70")
    finally:
        H.stop_and_check(srv, expect_status=0)


def t_max_requests_while_busy():
    """--workers 1 --max-requests 3 with a slow request in flight: the
    retiring worker finishes it while its replacement already serves."""
    srv = server(["--workers", "1", "--no-access-log", "--max-requests", "3"], "maxreq-busy")
    slow = None
    try:
        srv.start()
        (first,) = srv.wait_workers(1)
        slow = Conn(srv.port, timeout=10)
        slow.send(request_bytes("GET", "/sleep?ms=2500"))
        time.sleep(0.2)
        eq(served_by(srv.port, 3), [first] * 3, "three requests reach the limit")
        t0 = time.monotonic()
        r = get(srv.port, "/pid", timeout=5)
        dt = time.monotonic() - t0
        check(int(r.body) != first, "the retiring worker answered")
        check(dt < 1.0, f"a new connection waited {dt:.2f}s for the retiring worker's drain")
        r = slow.read_response(timeout=5)
        eq((r.status, r.body), (200, b"slept 2500"), "the slow request")
        slow.close()
        H.wait_until(lambda: not H.pid_alive(first), 3, what="the retired worker exits")
        time.sleep(0.3)
        eq(len(srv.worker_pids()), 1, f"workers after the retired one exited: {srv.worker_pids()}")
    finally:
        if slow:
            slow.close()
        H.stop_and_check(srv, expect_status=0)


def t_handler_timeout():
    srv = server(["--no-access-log", "--debug", "--handler-timeout", "0.3"], "htimeout")
    try:
        srv.start()
        t0 = time.monotonic()
        r = get(srv.port, "/sleep?ms=2000")
        dt = time.monotonic() - t0
        eq(r.status, 503, "a handler over the deadline")
        check(b"handler timeout" in r.body, f"503 body {r.body!r}")
        check(0.25 <= dt <= 0.5, f"503 after {dt:.3f}s, want ~0.3s")
        t0 = time.monotonic()
        r = get(srv.port, "/sleep?ms=100")
        eq((r.status, r.body), (200, b"slept 100"), "a request within the deadline")
        eq(get(srv.port, "/hello").status, 200, "a fast request")
        print(f"     503 after {dt * 1000:.0f} ms")
    finally:
        H.stop_and_check(srv, expect_status=0)


def t_limits_from_cli():
    srv = server(["--no-access-log", "--max-body-size", "1K", "--max-header-size", "1K",
                  "--keepalive-timeout", "0.3", "--header-timeout", "0.5"], "limits")
    try:
        srv.start()
        p = srv.port
        eq(H.http(p, "POST", "/echo", body=b"x" * 1024).status, 200, "a body of exactly 1 KiB")
        eq(H.http(p, "POST", "/echo", body=b"x" * 2048).status, 413, "a body of 2 KiB")
        eq(get(p, "/hello", headers={"X-Pad": "a" * 600}).status, 200, "a 0.6 KiB head")
        eq(get(p, "/hello", headers={"X-Pad": "a" * 1500}).status, 431, "a 1.5 KiB head")

        with Conn(p) as c:
            c.send(request_bytes("GET", "/hello"))
            eq(c.read_response().status, 200, "keep-alive request")
            t0 = time.monotonic()
            closed, extra = c.wait_closed(3)
            dt = time.monotonic() - t0
            check(closed and not extra, "idle connection not closed")
            check(0.2 <= dt <= 1.0, f"idle connection closed after {dt:.2f}s, want ~0.3")

        with Conn(p) as c:
            c.send(b"GET /hello HTTP/1.1\r\nHost: t\r\n")  # and nothing more
            t0 = time.monotonic()
            r = c.read_response(timeout=3)
            dt = time.monotonic() - t0
            eq(r.status, 408, "an unfinished head")
            check(0.4 <= dt <= 1.2, f"408 after {dt:.2f}s, want ~0.5")
    finally:
        H.stop_and_check(srv, expect_status=0)


# --------------------------------------------------------------------------
# Access log and metrics
# --------------------------------------------------------------------------

HEX16 = re.compile(r"^[0-9a-f]{16}$")


def t_access_log_json():
    tmp = tempfile.mkdtemp(prefix="cf-alog-")
    path = os.path.join(tmp, "access.log")
    srv = server(["--log-format", "json", "--access-log", path], "alog-json")
    try:
        srv.start()
        p = srv.port
        r1 = get(p, "/hello", headers={"X-Request-Id": "client-id.42"})
        eq(r1.header("X-Request-Id"), "client-id.42", "X-Request-Id sent by the client")
        r2 = get(p, "/user/7")
        gen = r2.header("X-Request-Id") or ""
        check(HEX16.match(gen), f"generated X-Request-Id {gen!r}")
        r3 = get(p, "/no/such/page")
        eq(r3.status, 404, "unknown path")
        check(HEX16.match(r3.header("X-Request-Id") or ""), "404 has a request id")
        r4 = H.http(p, "POST", "/echo?x=%22q%22", body=b"12345")
        eq(r4.body, b"12345", "echo")
        bad = get(p, "/hello", headers={"X-Request-Id": "has space"})
        check(HEX16.match(bad.header("X-Request-Id") or ""), "an unsafe client id is replaced")
        # the server's own answer to a request it cannot parse is a record too
        with H.Conn(p) as c:
            c.send(b'GET / HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n')
            eq(c.read_response().status, 400, "bad request line")

        def lines():
            try:
                with open(path) as f:
                    return f.read().splitlines()
            except OSError:
                return []
        H.wait_until(lambda: len(lines()) >= 6, 3, what="6 lines in the access log file")
        recs = [json.loads(line) for line in lines()]  # each line one JSON object
        eq(len(recs), 6, "log lines")
        own = recs.pop()
        eq((own["status"], own["remote"]), (400, "127.0.0.1"), f"the 400's record {own}")
        check(own["error"] and own["bytes"] > 0, f"the 400's record {own}")
        for rec in recs:
            for k in ("method", "target", "status", "bytes", "duration_ms", "request_id"):
                check(k in rec, f"{k} missing in {rec}")
            check(isinstance(rec["duration_ms"], (int, float)) and rec["duration_ms"] >= 0,
                  f"duration_ms {rec['duration_ms']!r}")
        got = [(r["method"], r["target"], r["status"], r["bytes"], r["request_id"]) for r in recs]
        want = [("GET", "/hello", 200, 13, "client-id.42"),
                ("GET", "/user/7", 200, len(r2.body), gen),
                ("GET", "/no/such/page", 404, len(r3.body), r3.header("X-Request-Id")),
                ("POST", '/echo?x=%22q%22', 200, 5, r4.header("X-Request-Id")),
                ("GET", "/hello", 200, 13, bad.header("X-Request-Id"))]
        eq(got, want, "access log records")
        check("Hello" not in srv.stdout() and '"method"' not in srv.stdout(),
              "with --access-log FILE nothing goes to stdout")
    finally:
        H.stop_and_check(srv, expect_status=0)
        for f in os.listdir(tmp):
            os.unlink(os.path.join(tmp, f))
        os.rmdir(tmp)


def t_access_log_reopened_on_hup():
    """Log rotation: after the file is renamed, SIGHUP's new workers open a
    new file at the configured path."""
    tmp = tempfile.mkdtemp(prefix="cf-alog-")
    path = os.path.join(tmp, "access.log")
    srv = server(["--access-log", path, "--workers", "1"], "alog-hup")

    def read(p):
        try:
            with open(p) as f:
                return f.read()
        except OSError:
            return ""
    try:
        srv.start()
        (old,) = srv.wait_workers(1)
        eq(get(srv.port, "/hello").status, 200, "/hello")
        H.wait_until(lambda: '"GET /hello ' in read(path), 3, what="the line in the log")
        os.rename(path, path + ".1")
        srv.signal(signal.SIGHUP)
        srv.wait_workers(1, exclude=(old,))
        H.wait_until(lambda: not H.pid_alive(old), 3, what="the old worker exits")
        eq(get(srv.port, "/user/5").status, 200, "/user/5")
        H.wait_until(lambda: '"GET /user/5 ' in read(path), 3, what="the line in the new log")
        check("/user/5" not in read(path + ".1"), "written to the rotated file")
    finally:
        H.stop_and_check(srv, expect_status=0)
        for f in os.listdir(tmp):
            os.unlink(os.path.join(tmp, f))
        os.rmdir(tmp)


def t_access_log_common():
    srv = server([], "alog-common")  # default: common format on stdout
    try:
        srv.start()
        r = get(srv.port, "/hello", headers={"X-Request-Id": "abc"})
        eq(r.header("X-Request-Id"), "abc", "kept id")
        r = get(srv.port, "/nope")
        gen = r.header("X-Request-Id")
        H.wait_until(lambda: srv.stdout().count("\n") >= 2, 3, what="2 access log lines on stdout")
        lines = srv.stdout().splitlines()
        pat = re.compile(r'^127\.0\.0\.1 - - \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d \+0000\] '
                         r'"(\S+) (\S+) HTTP/1\.1" (\d{3}) (\d+) ([\d.]+)ms (\S+)$')
        ms = [pat.match(line) for line in lines]
        check(all(ms), f"common log lines: {lines}")
        eq([m.group(1, 2, 3, 6) for m in ms], [("GET", "/hello", "200", "abc"),
                                               ("GET", "/nope", "404", gen)], "common log fields")
        eq(ms[0].group(4), "13", "bytes")
    finally:
        H.stop_and_check(srv, expect_status=0)


def t_metrics():
    srv = server(["--workers", "2", "--no-access-log", "--metrics", "/metrics"], "metrics")
    try:
        srv.start()
        srv.wait_workers(2)
        p = srv.port
        for _ in range(30):
            eq(get(p, "/hello").status, 200, "/hello")
        for i in range(7):
            eq(get(p, f"/no/such/{i}").status, 404, "unknown path")
        # /pid on new connections (the earlier ones held open) until both
        # workers have answered: both must have counted something.
        held, pids = [], []
        try:
            while len(set(pids)) < 2 and len(pids) < 300:
                c = Conn(p)
                c.send(request_bytes("GET", "/pid"))
                r = c.read_response()
                eq(r.status, 200, "/pid")
                pids.append(int(r.body))
                held.append(c)
        finally:
            for c in held:
                c.close()
        check(len(set(pids)) == 2, f"{len(pids)} /pid requests all went to {set(pids)}: the "
                                   "test needs both workers to count")
        print(f"     both workers answered within {len(pids)} /pid requests")
        eq(H.http(p, "POST", "/hello").status, 405, "POST /hello")

        want = {
            ("/hello", "GET", "200"): 30,
            ("/pid", "GET", "200"): len(pids),
            ("(unmatched)", None, "404"): 7,
            ("(unmatched)", None, "405"): 1,
        }

        def counts(samples):
            got = {}
            for (n, ls), v in samples.items():
                if n == "carafe_requests_total":
                    d = dict(ls)
                    if d["route"] != "/metrics":
                        got[(d["route"], d.get("method"), d["status"])] = int(v)
            return got

        # A response leaves just before its worker counts it: poll briefly.
        samples = {}
        try:
            H.wait_until(lambda: counts(samples_set(samples, parse_metrics(metrics_text(p)))) == want,
                         2, interval=0.05, what="request counts")
        except AssertionError:
            eq(counts(samples), want, "carafe_requests_total")
        for route, n in (("/hello", 30), ("/pid", len(pids)), ("(unmatched)", 8)):
            cnt = metric_sum(samples, "carafe_request_duration_seconds_count", route=route)
            inf = metric_sum(samples, "carafe_request_duration_seconds_bucket", route=route, le="+Inf")
            eq((cnt, inf), (n, n), f"histogram count and +Inf bucket of {route}")
            buckets = sorted((float(dict(ls)["le"]), v) for (nm, ls), v in samples.items()
                             if nm == "carafe_request_duration_seconds_bucket" and
                             dict(ls)["route"] == route and dict(ls)["le"] != "+Inf")
            check(all(a[1] <= b[1] for a, b in zip(buckets, buckets[1:])),
                  f"buckets of {route} not cumulative: {buckets}")
            check(metric_sum(samples, "carafe_request_duration_seconds_sum", route=route) > 0,
                  f"duration sum of {route}")
        for g in ("carafe_requests_in_flight", "carafe_coroutines_alive", "carafe_connections_open",
                  "carafe_loop_lag_seconds"):
            workers = {dict(ls).get("worker") for (n, ls) in samples if n == g}
            eq(len(workers), 2, f"{g}: one sample per live worker")
        eq(metric_sum(samples, "carafe_worker_restarts_total"), 0, "restarts before the crash")
        text = metrics_text(p)
        check("# TYPE carafe_requests_total counter" in text and
              "# TYPE carafe_request_duration_seconds histogram" in text, "TYPE lines")

        before = set(srv.worker_pids())
        with Conn(p) as c:
            c.send(request_bytes("GET", "/segfault"))
            expect_closed_without_response(c, "/segfault")
        m = srv.wait_stderr(r"worker (\d+) exited with status 70")
        srv.wait_workers(2, exclude=(int(m.group(1)),))
        samples = parse_metrics(metrics_text(p))
        eq(metric_sum(samples, "carafe_worker_restarts_total"), 1, "restarts after a /segfault")
        eq(counts(samples), want, "counts survive the crashed worker")
        check(before != set(srv.worker_pids()), "no new worker")
    finally:
        H.stop_and_check(srv, expect_status=0)


def samples_set(holder, new):
    holder.clear()
    holder.update(new)
    return holder


if __name__ == "__main__":
    H.watchdog(240 if SAN else 150)
    if not os.path.exists(APP):
        print(f"FAIL {APP} is not built")
        sys.exit(1)
    H.finish(H.run_tests(H.collect(globals())))
