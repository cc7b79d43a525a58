"""
harness.py — shared helpers for Carafe's integration tests (real sockets, real
clients): start a server on a free port (or a Unix socket, or an inherited
socket) and stop it, its workers and its log, raw-socket HTTP/1.1 with
timeouts (send bytes, read one full response, tell whether the server closed
the connection; over TCP or a Unix socket), wrk in the background with its
report parsed, sanitizer checks on the server's stderr, and a tiny test
runner with a watchdog so no script outlives its time budget.

Only the Python standard library. The tests import it from their own
directory (sys.path[0] is the script's directory).
"""
import atexit
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.environ.get("CF_SOURCE_DIR") or os.path.normpath(os.path.join(HERE, "..", ".."))
BUILD_DIR = os.environ.get("CF_BUILD_DIR") or os.path.join(SOURCE_DIR, "build")

SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")


def app_path(name):
    return os.path.join(BUILD_DIR, "tests", "apps", name)


def example_path(name):
    return os.path.join(BUILD_DIR, "examples", name)


def sanitized_build():
    """True when BUILD_DIR was configured with -DCF_SANITIZE=ON."""
    try:
        with open(os.path.join(BUILD_DIR, "CMakeCache.txt")) as f:
            return re.search(r"^CF_SANITIZE:BOOL=(ON|1|TRUE|YES)\s*$", f.read(), re.M | re.I) is not None
    except OSError:
        return False


# --------------------------------------------------------------------------
# Servers
# --------------------------------------------------------------------------

_live_servers = []


def _kill_leftovers():
    for s in list(_live_servers):
        s.kill()


atexit.register(_kill_leftovers)

SERVING_RE = re.compile(r"serving on http://([^:\s]+):(\d+)")


class Server:
    """A server process started with --port 0; the port is read from the
    "serving on http://HOST:PORT" line on stderr. stderr and stdout go to
    temporary files so a chatty server never blocks on a full pipe."""

    def __init__(self, exe, args=(), env=None, name=None, port_arg=True, ready=None,
                 wrapper=(), pass_fds=()):
        """ready: a regex the stderr must match before start() returns (default
        "serving on http://HOST:PORT", whose port becomes self.port; give one
        for --unix or an inherited socket). wrapper: argv put before the
        executable (e.g. a shell that sets LISTEN_PID). pass_fds: file
        descriptors the server inherits (socket activation)."""
        self.exe = exe
        self.ready = re.compile(ready) if isinstance(ready, str) else ready
        self.wrapper = list(wrapper)
        self.pass_fds = tuple(pass_fds)
        self.args = list(args)
        self.env = dict(os.environ)
        if env:
            self.env.update({k: str(v) for k, v in env.items()})
        self.env.setdefault("ASAN_OPTIONS", "detect_leaks=1")
        # One worker unless a test asks for more: per-process counters
        # (/stats) must be read from the worker that served the request.
        self.env.setdefault("WEB_CONCURRENCY", "1")
        self.name = name or os.path.basename(exe)
        self.port_arg = port_arg
        self.proc = None
        self.port = None
        self.returncode = None
        self._saved = None  # (stdout, stderr) once the log files are gone

    def start(self, timeout=10.0):
        if not os.path.exists(self.exe):
            raise AssertionError(f"{self.exe} is not built")
        self.errf = tempfile.NamedTemporaryFile(prefix=f"cf-{self.name}-err-", delete=False)
        self.outf = tempfile.NamedTemporaryFile(prefix=f"cf-{self.name}-out-", delete=False)
        argv = self.wrapper + [self.exe] + (["--host", "127.0.0.1", "--port", "0"] if self.port_arg else []) + self.args
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self.outf,
                                     stderr=self.errf, env=self.env, pass_fds=self.pass_fds)
        _live_servers.append(self)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.stderr()
            m = (self.ready or SERVING_RE).search(text)
            if m:
                pm = SERVING_RE.search(text)
                if pm:
                    self.port = int(pm.group(2))
                return self
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited with {self.proc.returncode} before "
                                     f"serving:\n{self.stderr()}")
            time.sleep(0.01)
        self.kill()
        raise AssertionError(f"{self.name} did not report its port within {timeout}s:\n{self.stderr()}")

    @property
    def pid(self):
        return self.proc.pid

    def url(self, path="/"):
        return f"http://127.0.0.1:{self.port}{path}"

    def stderr(self):
        if self._saved is not None:
            return self._saved[1]
        with open(self.errf.name, "r", errors="replace") as f:
            return f.read()

    def stdout(self):
        if self._saved is not None:
            return self._saved[0]
        with open(self.outf.name, "r", errors="replace") as f:
            return f.read()

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        if self.alive():
            self.proc.send_signal(sig)

    def wait(self, timeout):
        """Wait for the process to exit; returns its status, or None on timeout."""
        try:
            self.returncode = self.proc.wait(timeout=timeout)
            return self.returncode
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout=10.0):
        """SIGTERM, wait, SIGKILL after timeout. Returns the exit status."""
        if self.proc is None:
            return None
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            if self.wait(timeout) is None:
                self.kill()
        self.returncode = self.proc.wait()
        if self in _live_servers:
            _live_servers.remove(self)
        return self.returncode

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self in _live_servers:
            _live_servers.remove(self)

    def sanitizer_report(self):
        """The sanitizer findings on stderr, or "" if none."""
        text = self.stderr()
        if any(m in text for m in SANITIZER_MARKERS):
            return text
        return ""

    def cleanup(self):
        """Remove the log files (their text stays readable)."""
        self._saved = (self.stdout(), self.stderr())
        for f in (getattr(self, "errf", None), getattr(self, "outf", None)):
            if f is not None:
                try:
                    f.close()
                    os.unlink(f.name)
                except OSError:
                    pass

    def worker_pids(self):
        """The worker processes (children of the master, which is self.pid)."""
        try:
            with open(f"/proc/{self.pid}/task/{self.pid}/children") as f:
                return [int(p) for p in f.read().split()]
        except OSError:
            return []

    def wait_workers(self, n, timeout=5.0, exclude=()):
        """Wait until n workers run (none of them in exclude); returns their pids."""
        deadline = time.monotonic() + timeout
        while True:
            pids = [p for p in self.worker_pids() if p not in exclude]
            if len(pids) >= n:
                return pids
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name}: {len(pids)} new worker(s) after {timeout}s, "
                                     f"want {n} (all: {self.worker_pids()}):\n{self.stderr()[-2000:]}")
            time.sleep(0.02)

    def wait_stderr(self, pattern, timeout=5.0):
        """Wait until stderr matches the regex; returns the match."""
        deadline = time.monotonic() + timeout
        while True:
            m = re.search(pattern, self.stderr())
            if m:
                return m
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name}: no {pattern!r} on stderr within {timeout}s:\n"
                                     f"{self.stderr()[-3000:]}")
            time.sleep(0.02)

    def vm_status(self, field="VmRSS"):
        """A /proc/<pid>/status field in KiB (VmRSS, VmHWM, ...), summed over
        the master and its workers: the memory the server uses."""
        total = 0
        for pid in [self.pid] + self.worker_pids():
            try:
                with open(f"/proc/{pid}/status") as f:
                    for line in f:
                        if line.startswith(field + ":"):
                            total += int(line.split()[1])
            except OSError:
                pass
        if not total:
            raise AssertionError(f"no {field} in /proc/{self.pid}/status")
        return total


def stop_and_check(server, expect_status=None, timeout=10.0):
    """Stop a server and raise if it reported sanitizer errors (or exited
    with an unexpected status). Keeps the log files when something failed."""
    if server.proc is None:
        return None  # never started (its start() failure is reported already)
    rc = server.stop(timeout)
    report = server.sanitizer_report()
    if report:
        raise AssertionError(f"sanitizer findings in {server.name}'s stderr "
                             f"({server.errf.name}):\n{report[-6000:]}")
    if expect_status is not None and rc != expect_status:
        raise AssertionError(f"{server.name} exited with {rc}, expected {expect_status}:\n"
                             f"{server.stderr()[-3000:]}")
    server.cleanup()
    return rc


# --------------------------------------------------------------------------
# Raw HTTP/1.1 over a socket
# --------------------------------------------------------------------------

class Response:
    def __init__(self, version, status, reason, headers, body, raw_head):
        self.version = version
        self.status = status
        self.reason = reason
        self.headers = headers  # list of (name, value) as received
        self.body = body
        self.raw_head = raw_head

    def header(self, name, default=None):
        name = name.lower()
        vals = [v for k, v in self.headers if k.lower() == name]
        return vals[-1] if vals else default

    def header_all(self, name):
        name = name.lower()
        return [v for k, v in self.headers if k.lower() == name]

    @property
    def closes(self):
        """The response announces Connection: close."""
        return "close" in (self.header("Connection") or "").lower()

    def __repr__(self):
        return f"<Response {self.status} {self.reason!r} {len(self.body)} bytes>"


class Closed(Exception):
    """The peer closed (or reset) the connection before a full response."""


class Conn:
    """One client connection with a receive buffer; every read has a deadline."""

    def __init__(self, port, host="127.0.0.1", timeout=5.0, unix=None):
        """unix: connect to that Unix socket path instead of host:port."""
        if unix:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(timeout)
            try:
                self.sock.connect(unix)
            except OSError:
                self.sock.close()
                raise
        else:
            self.sock = socket.create_connection((host, port), timeout=timeout)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.eof = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def send(self, data):
        if isinstance(data, str):
            data = data.encode("latin-1")
        self.sock.sendall(data)

    def _fill(self, deadline):
        """Read more bytes into buf; raises Closed at EOF/reset, TimeoutError at deadline."""
        if self.eof:
            raise Closed("connection closed by the server")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("timed out waiting for the server")
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(262144)
        except socket.timeout:
            raise TimeoutError("timed out waiting for the server") from None
        except (ConnectionResetError, BrokenPipeError) as e:
            self.eof = True
            raise Closed(f"connection reset: {e}") from None
        if not chunk:
            self.eof = True
            raise Closed("connection closed by the server")
        self.buf += chunk

    def _read_until(self, marker, deadline):
        while marker not in self.buf:
            self._fill(deadline)
        i = self.buf.index(marker) + len(marker)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def _read_exact(self, n, deadline):
        while len(self.buf) < n:
            self._fill(deadline)
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_response(self, timeout=5.0, head_request=False):
        """Read one response (a 1xx interim response is returned as such).
        head_request: the request was HEAD, so there is no body to read."""
        deadline = time.monotonic() + timeout
        raw = self._read_until(b"\r\n\r\n", deadline)
        lines = raw[:-4].split(b"\r\n")
        m = re.match(rb"^(HTTP/\d\.\d) (\d{3}) ?(.*)$", lines[0])
        if not m:
            raise AssertionError(f"bad status line: {lines[0]!r}")
        version, status, reason = m.group(1).decode(), int(m.group(2)), m.group(3).decode("latin-1")
        headers = []
        for line in lines[1:]:
            name, sep, value = line.partition(b":")
            if not sep or not name or name != name.strip():
                raise AssertionError(f"bad header line in response: {line!r}")
            headers.append((name.decode("latin-1"), value.strip().decode("latin-1")))
        resp = Response(version, status, reason, headers, b"", raw)
        if 100 <= status < 200 or status in (204, 304) or head_request:
            return resp
        te = (resp.header("Transfer-Encoding") or "").lower()
        cl = resp.header("Content-Length")
        if "chunked" in te:
            body = b""
            while True:
                line = self._read_until(b"\r\n", deadline)
                size = int(line.split(b";")[0].strip(), 16)
                if size == 0:
                    while self._read_until(b"\r\n", deadline) != b"\r\n":
                        pass  # trailer fields
                    break
                body += self._read_exact(size, deadline)
                self._read_exact(2, deadline)
            resp.body = body
        elif cl is not None:
            resp.body = self._read_exact(int(cl), deadline)
        else:  # delimited by close
            try:
                while True:
                    self._fill(deadline)
            except Closed:
                pass
            resp.body, self.buf = self.buf, b""
        return resp

    def read_final(self, timeout=5.0, head_request=False):
        """Read responses until a non-1xx one; returns (interim list, final)."""
        deadline = time.monotonic() + timeout
        interim = []
        while True:
            r = self.read_response(max(0.0, deadline - time.monotonic()), head_request)
            if r.status >= 200:
                return interim, r
            interim.append(r)

    def wait_closed(self, timeout=3.0):
        """Wait until the server closes the connection. Returns (closed, extra)
        where extra are the bytes that arrived meanwhile (and were buffered)."""
        deadline = time.monotonic() + timeout
        start = len(self.buf)
        try:
            while True:
                self._fill(deadline)
        except Closed:
            return True, self.buf[start:]
        except TimeoutError:
            return False, self.buf[start:]

    def is_open_after(self, seconds):
        """True if nothing (no bytes, no EOF) arrived within `seconds`."""
        closed, extra = self.wait_closed(seconds)
        return not closed and not extra


def request_bytes(method, path, headers=None, body=b"", version="HTTP/1.1", host="test"):
    """A well-formed request; Content-Length is added when there is a body."""
    if isinstance(body, str):
        body = body.encode()
    lines = [f"{method} {path} {version}"]
    hdrs = list((headers or {}).items()) if isinstance(headers, dict) else list(headers or [])
    if host is not None and not any(k.lower() == "host" for k, _ in hdrs):
        lines.append(f"Host: {host}")
    if body and not any(k.lower() in ("content-length", "transfer-encoding") for k, _ in hdrs):
        hdrs.append(("Content-Length", str(len(body))))
    lines += [f"{k}: {v}" for k, v in hdrs]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def http(port, method, path, headers=None, body=b"", timeout=5.0, **kw):
    """One request on a fresh connection; returns the final response."""
    with Conn(port, timeout=timeout) as c:
        c.send(request_bytes(method, path, headers, body, **kw))
        return c.read_final(timeout, head_request=(method == "HEAD"))[1]


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(cond, timeout, interval=0.02, what="condition"):
    """Poll cond() until it returns a true value (returned) or raise."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not met within {timeout}s")
        time.sleep(interval)


def pids_seen(port, want, timeout=10.0):
    """Worker pids answering /pid on new connections: at least 60 requests,
    more (up to the timeout) until `want` distinct ones answered. Which
    worker takes a connection is the kernel's choice, and on a loaded
    machine one worker can take many in a row."""
    seen = set()
    deadline = time.monotonic() + timeout
    n = 0
    while n < 60 or (len(seen) < want and time.monotonic() < deadline):
        r = http(port, "GET", "/pid")  # a new connection each time
        eq(r.status, 200, "/pid")
        seen.add(int(r.body))
        n += 1
    return seen


def check_served_meanwhile(lat, what):
    """`lat`: seconds each request took, one after another, while something
    slow (`what`) was under way on the same worker. A blocked loop would hold
    the first until the slow thing ended, so answer about two; the median,
    not the worst, so that one stall of a loaded machine is not blocking."""
    check(len(lat) >= 10, f"only {len(lat)} requests answered during {what}")
    median = sorted(lat)[len(lat) // 2]
    check(median < 0.1, f"median request {median * 1000:.0f} ms during {what}")


def pid_alive(pid):
    """True while the process exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def proc_status(pid, field):
    """A field of /proc/<pid>/status (e.g. "Uid": "65534 65534 65534 65534")."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return line.split(":", 1)[1].strip()
    raise AssertionError(f"no {field} in /proc/{pid}/status")


class Wrk:
    """wrk running in the background; result() waits and parses its report:
    requests, socket errors (connect/read/write/timeout), non-2xx responses."""

    def __init__(self, url, threads=1, conns=50, duration=6, extra=()):
        if not shutil.which("wrk"):
            raise AssertionError("wrk is not installed (scripts/install-deps installs it)")
        self.out = tempfile.TemporaryFile()
        self.duration = duration
        self.proc = subprocess.Popen(["wrk", f"-t{threads}", f"-c{conns}", f"-d{duration}s",
                                      "--latency", *extra, url],
                                     stdout=self.out, stderr=subprocess.STDOUT)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def result(self, timeout=None):
        try:
            self.proc.wait(timeout=timeout or self.duration + 15)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError("wrk did not finish")
        self.out.seek(0)
        text = self.out.read().decode(errors="replace")
        self.out.close()
        m = re.search(r"(\d+) requests in", text)
        se = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
        n2 = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
        return {
            "text": text,
            "rc": self.proc.returncode,
            "requests": int(m.group(1)) if m else 0,
            "socket_errors": dict(zip(("connect", "read", "write", "timeout"),
                                      map(int, se.groups()))) if se else {},
            "non2xx": int(n2.group(1)) if n2 else 0,
        }


def big_pattern(n):
    """The bytes testapp's /big?n= sends: byte i = (i * 31 + (i >> 10)) & 0xff."""
    return bytes(((i * 31 + (i >> 10)) & 0xFF) for i in range(n))


# --------------------------------------------------------------------------
# Running tests
# --------------------------------------------------------------------------

class Watchdog(Exception):
    pass


def watchdog(seconds):
    """Raise Watchdog in the main thread after `seconds`, so the finally
    blocks that stop servers still run when something hangs."""
    def fire(signum, frame):
        raise Watchdog(f"test script exceeded its {seconds}s budget")
    signal.signal(signal.SIGALRM, fire)
    signal.alarm(int(seconds))


def check(cond, msg="check failed"):
    if not cond:
        raise AssertionError(msg)


def eq(got, want, what="value"):
    if got != want:
        raise AssertionError(f"{what}: got {got!r}, want {want!r}")


def run_tests(tests, stop_on=()):
    """Run (name, fn) pairs; prints one line per test. Returns failures."""
    failures = []
    for name, fn in tests:
        t0 = time.monotonic()
        try:
            fn()
        except Watchdog:
            raise
        except Exception:
            dt = time.monotonic() - t0
            print(f"FAIL {name} ({dt:.2f}s)", flush=True)
            traceback.print_exc(file=sys.stdout)
            failures.append(name)
            continue
        print(f"ok   {name} ({time.monotonic() - t0:.2f}s)", flush=True)
    return failures


def collect(namespace, prefix="t_"):
    """Functions named t_* in definition order."""
    return [(n[len(prefix):], f) for n, f in namespace.items()
            if n.startswith(prefix) and callable(f)]


CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def chromium():
    """A headless Chromium driven by python3-selenium, with a profile of its
    own. Fails (never skips) when Chromium, its driver or selenium is
    missing: scripts/install-deps --test installs them."""
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        missing.append("python3-selenium")
    if missing:
        raise AssertionError(f"missing {missing}: install chromium, chromium-driver and "
                             "python3-selenium (scripts/install-deps)")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--no-first-run", "--disable-extensions",
              f"--user-data-dir={tempfile.mkdtemp(prefix='cf-chromium-')}"):
        opts.add_argument(a)
    d = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    d.set_script_timeout(20)
    return d


def websockets_client():
    """The python3-websockets module, or an AssertionError naming the package."""
    try:
        import websockets
    except ImportError:
        raise AssertionError("python3-websockets is not installed (scripts/install-deps)") from None
    return websockets


def run_with_server(server, namespace, check_alive=False):
    """Start `server`, run the t_* tests of `namespace` against it, then stop
    it gracefully: an exit status other than 0 is the error "shutdown" (and
    with check_alive, a server dead after the tests is "server died").
    Returns (failures, errors) for finish()."""
    failures, errors = [], []
    try:
        server.start()
        failures = run_tests(collect(namespace))
        if check_alive and not server.alive():
            errors.append("server died")
    finally:
        try:
            stop_and_check(server, expect_status=0)
        except AssertionError as e:
            print(f"FAIL shutdown: {e}")
            errors.append("shutdown")
    return failures, errors


def finish(failures, extra_errors=()):
    errors = list(failures) + list(extra_errors)
    if errors:
        print(f"\n{len(errors)} failure(s): {', '.join(errors)}", flush=True)
        sys.exit(1)
    print("\nall passed", flush=True)
    sys.exit(0)


# --------------------------------------------------------------------------
# nginx, for tests that need a real one (test_nginx.py, test_fetch.py)
# --------------------------------------------------------------------------

def find_nginx():
    for cand in (shutil.which("nginx"), "/usr/sbin/nginx"):
        if cand and os.access(cand, os.X_OK):
            return cand
    return None


class Nginx:
    """nginx in the foreground with `conf` (its text), files in rundir,
    answering on 127.0.0.1:port once started."""

    def __init__(self, exe, rundir, port, conf):
        self.exe, self.rundir, self.port = exe, rundir, port
        self.conf = os.path.join(rundir, "nginx.conf")
        with open(self.conf, "w") as f:
            f.write(conf)
        self.log = open(os.path.join(rundir, "nginx.out"), "w+")
        self.proc = None

    def start(self):
        argv = [self.exe, "-p", self.rundir + "/", "-e", os.path.join(self.rundir, "error.log"),
                "-c", self.conf, "-g", "daemon off;"]
        t = subprocess.run(argv + ["-t"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=20)
        check(t.returncode == 0, f"nginx -t rejects the config:\n{t.stdout.decode(errors='replace')}")
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"nginx did not start:\n{self.errors()}")
                time.sleep(0.05)

    def errors(self):
        out = []
        for name in ("nginx.out", "error.log"):
            try:
                with open(os.path.join(self.rundir, name)) as f:
                    out.append(f"--- {name}\n{f.read()[-3000:]}")
            except OSError:
                pass
        return "\n".join(out)

    def stop(self, graceful=True):
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            # SIGQUIT: nginx's graceful shutdown, which waits for clients'
            # idle connections; SIGTERM: at once.
            self.proc.send_signal(signal.SIGQUIT if graceful else signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode
