"""
test_many_sleepers.py — tens of thousands of waiting requests on one worker:
10,000 connections each send GET /sleep?ms=2000 to ONE worker of
examples/bench. All must get 200, the whole run must take < 10 s (the sleeps
overlap), and the worker's resident memory while they all sleep must stay
under 256 MiB. Prints the measured time and memory.

The client is a single-threaded selectors (epoll) loop over non-blocking raw
sockets. If the hard RLIMIT_NOFILE is too low for 10,000 sockets (+ slack),
the count is scaled down and the output says so.
"""
import errno
import os
import resource
import selectors
import socket
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import check  # noqa: E402

WANT = 10000
SLEEP_MS = 2000
MAX_TIME = 10.0
MAX_RSS_MIB = 256
MAX_CONNECTING = 256  # handshakes in progress at once (the listen backlog is 1024)


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def run_clients(port, n, server):
    """Returns (statuses list, elapsed, rss samples [(t, kib)], rss_all_sleeping)."""
    sel = selectors.DefaultSelector()
    req = (f"GET /sleep?ms={SLEEP_MS} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").encode()
    state = {}  # sock -> [phase, buf]
    statuses = []
    errors = []
    started = sent = done = connecting = 0
    samples = []
    all_sent_at = None
    rss_sleeping = None
    t0 = time.monotonic()
    next_sample = t0
    deadline = t0 + 60

    def finish(sock, status):
        nonlocal done
        sel.unregister(sock)
        sock.close()
        del state[sock]
        statuses.append(status)
        done += 1

    while done < n:
        now = time.monotonic()
        if now > deadline:
            raise AssertionError(f"gave up after 60s: {done} done, {sent} sent, {started} started")
        while started < n and connecting < MAX_CONNECTING:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            rc = s.connect_ex(("127.0.0.1", port))
            if rc not in (0, errno.EINPROGRESS):
                s.close()
                errors.append(f"connect: {os.strerror(rc)}")
                statuses.append(None)
                done += 1
                started += 1
                continue
            state[s] = ["connecting", b""]
            sel.register(s, selectors.EVENT_WRITE)
            started += 1
            connecting += 1
        if now >= next_sample:
            try:
                samples.append((now - t0, server.vm_status("VmRSS")))
            except (OSError, AssertionError):
                pass
            next_sample = now + 0.1
        if all_sent_at is not None and rss_sleeping is None and now - all_sent_at >= 0.3:
            rss_sleeping = (now - t0, server.vm_status("VmRSS"), done)
        for key, ev in sel.select(timeout=0.05):
            s = key.fileobj
            st = state[s]
            if st[0] == "connecting":
                connecting -= 1
                err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    errors.append(f"connect: {os.strerror(err)}")
                    finish(s, None)
                    continue
                try:
                    k = s.send(req)
                except OSError as e:
                    errors.append(f"send: {e}")
                    finish(s, None)
                    continue
                if k != len(req):
                    errors.append("short send")
                    finish(s, None)
                    continue
                st[0] = "sent"
                sent += 1
                if sent == n:
                    all_sent_at = time.monotonic()
                sel.modify(s, selectors.EVENT_READ)
            else:
                try:
                    chunk = s.recv(4096)
                except BlockingIOError:
                    continue
                except OSError as e:
                    errors.append(f"recv: {e}")
                    finish(s, None)
                    continue
                if chunk:
                    st[1] += chunk
                    continue
                # EOF (the server closes after its response): parse what came.
                buf = st[1]
                head, _, body = buf.partition(b"\r\n\r\n")
                status = None
                if head.startswith(b"HTTP/1.1 "):
                    status = int(head[9:12])
                    if body != f"slept {SLEEP_MS}".encode():
                        errors.append(f"body {body[:60]!r}")
                        status = None
                else:
                    errors.append(f"response {buf[:80]!r}")
                finish(s, status)
    elapsed = time.monotonic() - t0
    sel.close()
    return statuses, elapsed, samples, rss_sleeping, errors, all_sent_at and all_sent_at - t0


def main():
    H.watchdog(100)
    hard = raise_nofile()
    n = WANT
    if hard < WANT + 100:
        n = max(100, hard - 100)
        print(f"NOTE: hard RLIMIT_NOFILE is {hard}: scaled down from {WANT} to {n} connections")
    srv = H.Server(H.example_path("bench"), args=["--no-access-log"], name="many-sleepers")
    failures = []
    try:
        srv.start()
        base_rss = srv.vm_status("VmRSS")
        statuses, elapsed, samples, sleeping, errors, sent_at = run_clients(srv.port, n, srv)
        hwm = srv.vm_status("VmHWM")
        ok = sum(1 for s in statuses if s == 200)
        peak = max((kib for _, kib in samples), default=0)
        print(f"{n} connections x GET /sleep?ms={SLEEP_MS} on one worker:")
        print(f"  all requests sent after {sent_at:.2f}s; all answered after {elapsed:.2f}s")
        print(f"  200 responses: {ok}/{n}")
        print(f"  VmRSS before: {base_rss / 1024:.1f} MiB")
        if sleeping:
            print(f"  VmRSS while all sleep (t={sleeping[0]:.2f}s, {sleeping[2]} answered so far): "
                  f"{sleeping[1] / 1024:.1f} MiB")
        print(f"  VmRSS peak sampled: {peak / 1024:.1f} MiB; VmHWM: {hwm / 1024:.1f} MiB")
        if errors:
            print(f"  client errors ({len(errors)}): {errors[:5]}")
        san = H.sanitized_build()
        limit = MAX_RSS_MIB * (3 if san else 1)  # ASan measured 2.7 times the release build's RSS
        if san:
            print(f"  (sanitizer build: ASan's shadow memory and quarantine inflate RSS; limit "
                  f"{limit} MiB, and the requests may not all be sleeping at once)")
        try:
            check(ok == n, f"only {ok} of {n} got 200 ({len(errors)} errors: {errors[:5]})")
            check(elapsed < MAX_TIME, f"took {elapsed:.2f}s (limit {MAX_TIME}s)")
            if not san:
                check(sleeping is not None and sleeping[2] == 0,
                      "the RSS sample was not taken while all requests were sleeping "
                      f"(sending took {sent_at:.2f}s)")
                check(sleeping[1] < limit * 1024,
                      f"VmRSS {sleeping[1] / 1024:.1f} MiB while sleeping (limit {limit} MiB)")
            check(hwm < limit * 1024, f"VmHWM {hwm / 1024:.1f} MiB (limit {limit} MiB)")
            r = H.http(srv.port, "GET", "/plaintext")
            check(r.status == 200 and r.body == b"Hello, World!", "the worker after the run")
            print("ok   many_sleepers")
        except AssertionError as e:
            print(f"FAIL many_sleepers: {e}")
            failures.append("many_sleepers")
    finally:
        try:
            H.stop_and_check(srv, expect_status=0, timeout=20)
        except AssertionError as e:
            print(f"FAIL shutdown: {e}")
            failures.append("shutdown")
    H.finish(failures)


if __name__ == "__main__":
    main()
