"""
test_deploy.py — how Carafe is started in production: systemd socket
activation and dropping root.

  socket_activation_tcp    the test makes a listening TCP socket and starts the
                           app with it as fd 3, LISTEN_FDS=1 and LISTEN_PID set
                           to the app's own pid (a tiny sh wrapper that execs
                           the app), without --port: the app serves on it; a
                           request queued on the socket while the app is
                           stopped is served by the next start (what makes
                           systemd restarts lossless)
  socket_activation_unix   the same with a Unix socket; Carafe leaves the
                           socket file, which it did not create, in place
  listen_pid_mismatch      LISTEN_PID of another process: fd 3 is not taken,
                           the app listens where --port says
  user_group               as root: --user nobody --group nogroup, the master
                           and workers run as nobody/nogroup and still serve;
                           unknown names are refused. Not root: --user is
                           refused with a clear message (and the rest skipped)
  help_matches_docs        docs/deployment.md shows the current --help text
"""
import os
import re
import socket
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import Conn, check, eq, request_bytes  # noqa: E402

APP = H.app_path("testapp")
# sh runs the app with exec, so $$ is the app's pid, as systemd's LISTEN_PID.
ACTIVATE = ["sh", "-c", 'LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" "$@"']
PASSED = r"serving on the socket systemd passed \(fd 3\)"


class Fd3:
    """Puts a socket at fd 3 of this process while a server starts (systemd
    passes its sockets from fd 3 on), then puts back whatever was there."""

    def __init__(self, sock):
        self.sock = sock
        self.saved = None

    def __enter__(self):
        if self.sock.fileno() == 3:
            return 3
        try:
            os.fstat(3)
            self.saved = os.dup(3)
        except OSError:
            self.saved = None
        os.dup2(self.sock.fileno(), 3, inheritable=False)
        return 3

    def __exit__(self, *exc):
        if self.sock.fileno() == 3:
            return
        if self.saved is not None:
            os.dup2(self.saved, 3, inheritable=False)
            os.close(self.saved)
        else:
            os.close(3)


def activated(sock, args=(), name="activated", **kw):
    """Start testapp on `sock` the way systemd does; returns the Server."""
    srv = H.Server(APP, args=list(args), name=name, port_arg=False, ready=PASSED,
                   wrapper=ACTIVATE, pass_fds=(3,), **kw)
    with Fd3(sock):
        srv.start()
    return srv


def t_socket_activation_tcp():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    port = sock.getsockname()[1]
    srv = srv2 = None
    pending = None
    try:
        srv = activated(sock, ["--workers", "2", "--no-access-log"], name="activated-tcp")
        check("http://" not in srv.stderr(), f"the app opened a socket of its own:\n{srv.stderr()}")
        eq(H.http(port, "GET", "/hello").body, b"Hello, World!", "GET /hello on the passed socket")
        pids = {int(H.http(port, "GET", "/pid").body) for _ in range(20)}
        check(pids <= set(srv.worker_pids()), f"answered by {pids}, not the workers")
        H.stop_and_check(srv, expect_status=0)

        # The socket outlives the app (systemd holds it): a request made
        # while nothing runs waits in its queue for the next start.
        pending = Conn(port, timeout=10)
        pending.send(request_bytes("GET", "/hello"))
        time.sleep(0.2)
        srv2 = activated(sock, ["--workers", "1", "--no-access-log"], name="activated-tcp2")
        r = pending.read_response(timeout=5)
        eq((r.status, r.body), (200, b"Hello, World!"), "the request queued between two runs")
    finally:
        if pending:
            pending.close()
        for s in (srv, srv2):
            if s:
                H.stop_and_check(s, expect_status=0)
        sock.close()


def t_socket_activation_unix():
    tmp = tempfile.mkdtemp(prefix="cf-activate-")
    path = os.path.join(tmp, "app.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(path)
    sock.listen(128)
    srv = None
    try:
        srv = activated(sock, ["--workers", "2", "--no-access-log"], name="activated-unix")
        with Conn(None, unix=path) as c:
            c.send(request_bytes("GET", "/hello"))
            eq(c.read_response().body, b"Hello, World!", "GET /hello on the passed Unix socket")
            c.send(request_bytes("POST", "/echo", body=b"over unix"))
            eq(c.read_response().body, b"over unix", "POST /echo, same connection")
        H.stop_and_check(srv, expect_status=0)
        srv = None
        check(os.path.exists(path), "Carafe removed the socket file systemd owns")
    finally:
        if srv:
            H.stop_and_check(srv)
        sock.close()
        if os.path.exists(path):
            os.unlink(path)
        os.rmdir(tmp)


def t_listen_pid_mismatch():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    srv = H.Server(APP, args=["--no-access-log"], name="not-activated",
                   env={"LISTEN_PID": "1", "LISTEN_FDS": "1"}, pass_fds=(3,))
    try:
        with Fd3(sock):
            srv.start()  # waits for "serving on http://127.0.0.1:PORT"
        check(srv.port != sock.getsockname()[1], "served on the socket meant for another process")
        eq(H.http(srv.port, "GET", "/hello").status, 200, "GET /hello on --port")
        check("systemd" not in srv.stderr(), srv.stderr())
    finally:
        H.stop_and_check(srv, expect_status=0)
        sock.close()


def ids(pid):
    uid = H.proc_status(pid, "Uid").split()
    gid = H.proc_status(pid, "Gid").split()
    groups = H.proc_status(pid, "Groups").split()
    return uid, gid, groups


def refused(args, pattern, name):
    srv = H.Server(APP, args=args, name=name)
    try:
        srv.start(timeout=5)
    except AssertionError:
        pass
    else:
        H.stop_and_check(srv)
        raise AssertionError(f"{name}: started with {args}")
    rc = srv.wait(5)
    err = srv.stderr()
    srv.kill()
    srv.cleanup()
    eq(rc, 1, f"{name}: exit status")
    check(re.search(pattern, err), f"{name}: stderr {err!r} lacks {pattern!r}")


def t_user_group():
    if os.geteuid() != 0:
        refused(["--user", "nobody"], r"--user/--group need the server to start as root", "user-not-root")
        print("     SKIP the privilege drop itself: the test is not running as root "
              "(CI runs it as root); checked that --user is refused")
        return
    import pwd
    import grp
    uid = pwd.getpwnam("nobody").pw_uid
    gid = grp.getgrnam("nogroup").gr_gid
    srv = H.Server(APP, args=["--workers", "2", "--no-access-log", "--user", "nobody",
                              "--group", "nogroup"], name="nobody")
    try:
        srv.start()
        workers = srv.wait_workers(2)
        for pid in [srv.pid] + workers:
            u, g, groups = ids(pid)
            eq(u, [str(uid)] * 4, f"uids of {pid} (real, effective, saved, fs)")
            eq(g, [str(gid)] * 4, f"gids of {pid}")
            check(not (set(groups) - {str(gid)}), f"supplementary groups of {pid}: {groups}")
        eq(H.http(srv.port, "GET", "/hello").body, b"Hello, World!", "serving as nobody")
        p = int(H.http(srv.port, "GET", "/pid").body)
        check(p in workers, f"/pid {p} not a worker")
        print(f"     master {srv.pid} and workers {workers} run as uid {uid}, gid {gid}")
    finally:
        H.stop_and_check(srv, expect_status=0)
    refused(["--user", "no-such-user-cf"], r"no such user: no-such-user-cf", "bad-user")
    refused(["--user", "nobody", "--group", "no-such-group-cf"], r"no such group: no-such-group-cf",
            "bad-group")


def t_help_matches_docs():
    """docs/deployment.md shows --help verbatim (with ./app as the program)."""
    import subprocess
    out = subprocess.run([APP, "--help"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         timeout=10, env={**os.environ, "WEB_CONCURRENCY": "1"})
    eq(out.returncode, 0, "--help exit status")
    helptext = out.stdout.decode().replace(APP, "./app")
    doc = os.path.join(H.SOURCE_DIR, "docs", "deployment.md")
    with open(doc) as f:
        text = f.read()
    m = re.search(r"<!-- help:begin -->\n```\n(.*?)```\n<!-- help:end -->", text, re.S)
    check(m, f"no help block between <!-- help:begin/end --> in {doc}")
    if m.group(1) != helptext:
        raise AssertionError(f"the --help block in {doc} is out of date; it should be:\n{helptext}")


if __name__ == "__main__":
    H.watchdog(90)
    if not os.path.exists(APP):
        print(f"FAIL {APP} is not built")
        sys.exit(1)
    H.finish(H.run_tests(H.collect(globals())))
