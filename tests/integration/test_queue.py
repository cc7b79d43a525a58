"""
test_queue.py — the SQLite task queue across real processes
(tests/integration/apps/queueapp.c, --workers 2).

  enqueue_over_http        60 jobs enqueued over HTTP all run, each exactly once,
                           spread over the workers; nothing left pending
  sigkill_mid_job          the worker running a slow job is SIGKILLed: the job is
                           delivered again after the visibility timeout, to a
                           live worker, and completes once
  long_job_keeps_lease     a job running 3.5 times its visibility timeout renews its
                           lease: the other worker never takes it, it runs once
  poison_job_dead_letter   a job that SIGKILLs its worker every time is delivered
                           max_attempts (2) times, then lands in the dead letters
  sigterm_waits_for_job    SIGTERM while a job runs: the worker finishes it, exit 0
  periodic_two_instances   two app instances (2 workers each) share one queue
                           file: the 1 s periodic job runs once per period
  queue_only               a --queue-only instance binds no port and runs the
                           jobs another (since stopped) instance enqueued

Then each again on Redis 7 (a server wanting a password: the tests' URL has
an ACL user and a percent-encoded password), and the URL's password forms:
a wrong one, none, a user without one (each refused at start, stderr naming
no password), and redis://:password@host:port/db.
"""
import json
import os
import shutil
import sys
import tempfile
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import check, eq  # noqa: E402

APP = H.app_path("queueapp")
TMP = tempfile.mkdtemp(prefix="cf-queue-it-")
_n = [0]
REDIS_URL = None  # set while the Redis part runs


def fresh(**env):
    """Env for a new queue file and job log."""
    _n[0] += 1
    base = os.path.join(TMP, f"q{_n[0]}")
    url = REDIS_URL or f"sqlite:///{base}.db"
    e = {"QUEUE_URL": url, "JOBLOG": f"{base}.log", "WEB_CONCURRENCY": "2"}
    e.update({k: str(v) for k, v in env.items()})
    return e


def lines(env):
    try:
        with open(env["JOBLOG"]) as f:
            return f.read().splitlines()
    except OSError:
        return []


def enqueue(srv, name, payload, delay=None):
    path = f"/enqueue/{name}" + (f"?delay={delay}" if delay is not None else "")
    r = H.http(srv.port, "POST", path, headers={"Content-Type": "application/json"},
               body=json.dumps(payload).encode())
    eq(r.status, 201, f"enqueue {name}: {r.body!r}")
    return json.loads(r.body)["id"]


def expect_nothing_pending(srv):
    # A job's last output line comes just before its acknowledgement reaches
    # the store (a round trip to Redis): nothing may stay pending after that.
    H.wait_until(lambda: json.loads(H.http(srv.port, "GET", "/pending").body)["pending"] == 0,
                 3, what="no job pending")


def t_enqueue_over_http():
    env = fresh()
    srv = H.Server(APP, ["--workers", "2"], env=env).start()
    try:
        ids = [enqueue(srv, "note", {"n": i}) for i in range(60)]
        H.wait_until(lambda: len([l for l in lines(env) if l.startswith("done")]) >= 60, 20,
                     what="60 jobs done")
        time.sleep(0.3)
        done = [l.split() for l in lines(env) if l.startswith("done")]
        got = sorted(int(d[1]) for d in done)
        eq(got, sorted(ids), "each job exactly once")
        payloads = {json.loads(" ".join(d[3:]))["n"] for d in done}
        eq(payloads, set(range(60)), "payloads")
        expect_nothing_pending(srv)
    finally:
        H.stop_and_check(srv, expect_status=0)


def t_sigkill_mid_job():
    env = fresh(VIS_MS=2000, SLOW_MS=1500)
    srv = H.Server(APP, ["--workers", "2"], env=env).start()
    try:
        srv.wait_workers(2)
        jid = enqueue(srv, "slow", {})
        m = H.wait_until(lambda: [l for l in lines(env) if l.startswith(f"start {jid} ")], 5,
                         what="the job started")
        victim = int(m[0].split()[2])
        os.kill(victim, 9)
        t_kill = time.monotonic()
        H.wait_until(lambda: [l for l in lines(env) if l.startswith(f"done {jid} ")], 15,
                     what="the job completed after the kill")
        took = time.monotonic() - t_kill
        starts = [l.split() for l in lines(env) if l.startswith(f"start {jid} ")]
        dones = [l.split() for l in lines(env) if l.startswith(f"done {jid} ")]
        eq(len(starts), 2, "delivered twice (once to the killed worker)")
        eq(len(dones), 1, "completed once")
        check(int(dones[0][2]) != victim, "completed by another worker")
        check(took >= 1.5, f"redelivered only after the visibility timeout ({took:.2f}s)")
        expect_nothing_pending(srv)
    finally:
        H.stop_and_check(srv, expect_status=0)


def t_long_job_keeps_lease():
    env = fresh(VIS_MS=1000, SLOW_MS=3500)
    srv = H.Server(APP, ["--workers", "2"], env=env).start()
    try:
        srv.wait_workers(2)
        jid = enqueue(srv, "slow", {})
        H.wait_until(lambda: [l for l in lines(env) if l.startswith(f"done {jid} ")], 10,
                     what="the long job completed")
        time.sleep(1.2)  # past another visibility timeout: nothing claims it again
        starts = [l for l in lines(env) if l.startswith(f"start {jid} ")]
        eq(len(starts), 1, f"delivered once in spite of the 1 s lease: {starts}")
        eq(len([l for l in lines(env) if l.startswith(f"done {jid} ")]), 1, "completed once")
        expect_nothing_pending(srv)
    finally:
        H.stop_and_check(srv, expect_status=0)


def t_poison_job_dead_letter():
    env = fresh(VIS_MS=500)
    srv = H.Server(APP, ["--workers", "2"], env=env).start()
    try:
        srv.wait_workers(2)
        # Delayed, so the worker that takes the enqueue answers it before
        # the job (which it may well run) kills it.
        jid = enqueue(srv, "poison", {}, delay=300)

        def dead():
            try:
                r = H.http(srv.port, "GET", "/dead")
            except (OSError, H.Closed):  # its worker was the one the job just killed
                return None
            return r.status == 200 and json.loads(r.body)

        d = H.wait_until(dead, 20, what="the poison job in the dead letters")
        tries = [l.split() for l in lines(env) if l.startswith(f"poison {jid} ")]
        eq([int(t[3]) for t in tries], [1, 2], "delivered once per allowed attempt")
        eq((len(d), d[0]["job_id"], d[0]["name"]), (1, jid, "poison"), "the dead letter")
        check("died" in (d[0]["error"] or ""), f"the error says why: {d[0]['error']}")
        expect_nothing_pending(srv)
    finally:
        H.stop_and_check(srv, expect_status=0)


def t_sigterm_waits_for_job():
    env = fresh(VIS_MS=5000, SLOW_MS=1500)
    srv = H.Server(APP, ["--workers", "1"], env=env).start()
    try:
        jid = enqueue(srv, "slow", {})
        H.wait_until(lambda: [l for l in lines(env) if l.startswith(f"start {jid} ")], 5,
                     what="the job started")
        t0 = time.monotonic()
    finally:
        H.stop_and_check(srv, expect_status=0)
    took = time.monotonic() - t0
    eq(len([l for l in lines(env) if l.startswith(f"done {jid} ")]), 1, "finished before exit")
    check(took >= 1.0, f"the worker waited for the job ({took:.2f}s)")


def t_periodic_two_instances():
    env = fresh(TICK_S=1)
    a = H.Server(APP, ["--workers", "2"], env=env, name="queueapp-a").start()
    b = H.Server(APP, ["--workers", "2"], env=env, name="queueapp-b").start()
    try:
        time.sleep(4.5)
    finally:
        H.stop_and_check(a, expect_status=0)
        H.stop_and_check(b, expect_status=0)
    ticks = [l.split() for l in lines(env) if l.startswith("tick")]
    periods = [int(t[1]) for t in ticks]
    eq(len(periods), len(set(periods)), f"one run per period: {periods}")
    check(4 <= len(periods) <= 7, f"about one per second over 4.5 s: {periods}")
    pids = {t[2] for t in ticks}
    print(f"     {len(periods)} periods, run by {len(pids)} different worker(s)")


def t_queue_only():
    env = fresh()
    web = H.Server(APP, ["--workers", "1"], env=env, name="queueapp-web").start()
    worker = H.Server(APP, ["--workers", "2", "--queue-only"], env=env, name="queueapp-qonly",
                      ready=r"serving on the task queue only").start()
    try:
        check(worker.port is None, "the --queue-only instance reports no port")
        # Delayed jobs, then the web instance goes: only the --queue-only
        # workers are left to run them.
        ids = [enqueue(web, "note", {"n": i}, delay=1500) for i in range(20)]
        H.stop_and_check(web, expect_status=0)
        H.wait_until(lambda: len([l for l in lines(env) if l.startswith("done")]) >= 20, 20,
                     what="20 jobs done")
        time.sleep(0.2)
        done = [l.split() for l in lines(env) if l.startswith("done")]
        eq(sorted(int(d[1]) for d in done), sorted(ids), "each job once")
        qpids = set(map(str, worker.worker_pids()))
        check(all(d[2] in qpids for d in done), "run by the --queue-only workers")
    finally:
        H.stop_and_check(web, expect_status=0)
        H.stop_and_check(worker, expect_status=0)


# The Redis part runs against a server that wants a password, as the tests'
# ACL user with characters that must be percent-encoded in the URL.
REDIS_USER, REDIS_PASS, REDIS_DEFAULT_PASS = "carafe", "p@ss:w/rd", "defaultpw"


def redis_flush(port):
    import socket
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(f"AUTH {REDIS_USER} {REDIS_PASS}\r\nFLUSHALL\r\n".encode())
        got = b""
        while got.count(b"\r\n") < 2:
            got += s.recv(100)
        eq(got, b"+OK\r\n+OK\r\n", "AUTH and FLUSHALL")


def redis_auth_cases(port):
    """The queue URL's password forms, and refusals that name no password."""
    failures = []

    def exits_with(url, message):
        env = fresh()
        env["QUEUE_URL"] = url
        import subprocess
        p = subprocess.run([APP, "--port", "0"], env={**os.environ, **env}, timeout=20,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        err = p.stderr.decode()
        eq(p.returncode, 1, f"exit status with {url}: {err}")
        check(message in err, f"stderr with {url}: {err!r}")
        check("wrong-one" not in err and "defaultpw" not in err, f"a password on stderr: {err!r}")

    def t_wrong_password():
        exits_with(f"redis://{REDIS_USER}:wrong-one@127.0.0.1:{port}/0",
                   f"redis://{REDIS_USER}:***@127.0.0.1:{port}/0: WRONGPASS")

    def t_no_password():
        exits_with(f"redis://127.0.0.1:{port}/0", "NOAUTH")

    def t_user_without_password():
        exits_with(f"redis://{REDIS_USER}@127.0.0.1:{port}/0", "is not redis://")

    def t_password_only_form_and_db():
        env = fresh()
        env["QUEUE_URL"] = f"redis://:{REDIS_DEFAULT_PASS}@127.0.0.1:{port}/3"
        srv = H.Server(APP, ["--workers", "1"], env=env).start()
        try:
            jid = enqueue(srv, "note", {"n": 7})
            H.wait_until(lambda: any(l.startswith(f"done {jid} ") for l in lines(env)), 10,
                         what="the job done")
        finally:
            H.stop_and_check(srv, expect_status=0)

    for name, fn in [("wrong_password", t_wrong_password), ("no_password", t_no_password),
                     ("user_without_password", t_user_without_password),
                     ("password_only_form_and_db", t_password_only_form_and_db)]:
        failures += ["redis/" + f for f in H.run_tests([(name, fn)])]
    return failures


def main():
    global REDIS_URL
    H.watchdog(280)
    tests = H.collect(globals())
    redis = None
    try:
        print("== sqlite")
        failures = H.run_tests(tests)
        exe = shutil.which("redis-server")
        if not exe:
            print("SKIP the Redis part: no redis-server on PATH (scripts/install-deps)")
        else:
            import subprocess
            port = H.free_port()
            redis = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no", "--daemonize", "no",
                                      "--requirepass", REDIS_DEFAULT_PASS,
                                      "--user", REDIS_USER, "on", ">" + REDIS_PASS, "~*", "&*",
                                      "+@all"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            from urllib.parse import quote
            REDIS_URL = f"redis://{REDIS_USER}:{quote(REDIS_PASS, safe='')}@127.0.0.1:{port}/0"
            H.wait_until(lambda: _can_connect(port), 5, what="redis-server up")
            print(f"== redis ({exe})")
            for name, fn in tests:
                redis_flush(port)
                failures += ["redis/" + f for f in H.run_tests([(name, fn)])]
            failures += redis_auth_cases(port)
    finally:
        if redis is not None:
            redis.terminate()
            redis.wait()
        shutil.rmtree(TMP, ignore_errors=True)
    H.finish(failures)


def _can_connect(port):
    import socket
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False


if __name__ == "__main__":
    main()
