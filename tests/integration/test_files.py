"""
test_files.py — file responses over real sockets (cf_static in
tests/integration/apps/streamapp.c over a temporary directory), with curl,
python3-requests and raw sockets:
  download     a 24 MiB file with curl, byte for byte, with its length
  ranges       curl -r, and curl -C - resuming a cut download
  conditional  If-None-Match and If-Modified-Since answered 304 (requests)
  traversal    targets that would leave the directory: never a 200
  slow reader  a client reading nothing holds neither the worker (others are
               served) nor the file in memory (the worker's RSS stays low)
  stop         SIGTERM during a download: the download completes, exit 0
"""
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import Conn, check, eq, request_bytes  # noqa: E402

APP = H.app_path("streamapp")
TMP = tempfile.mkdtemp(prefix="cf-files-")
DIR = os.path.join(TMP, "root")  # served; TMP/secret.txt is beside it, not in it
BIG = os.path.join(DIR, "big.bin")
BIG_LEN = 24 * 2**20 + 777
srv = None


def sha(data):
    return hashlib.sha256(data).hexdigest()


def curl(*args):
    exe = shutil.which("curl")
    check(exe, "curl is not installed")
    return subprocess.run([exe, "-s", "--max-time", "30", *args], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=40)


def t_download_with_curl():
    out = os.path.join(TMP, "out.bin")
    p = curl("-o", out, "-w", "%{http_code} %{size_download}", srv.url("/files/big.bin"))
    eq(p.stdout.decode(), f"200 {BIG_LEN}", "curl status and size")
    with open(out, "rb") as f, open(BIG, "rb") as g:
        eq(sha(f.read()), sha(g.read()), "downloaded bytes")
    os.unlink(out)


def t_ranges_and_resume():
    with open(BIG, "rb") as g:
        data = g.read()
    p = curl("-r", "1000-1999", srv.url("/files/big.bin"))
    eq(p.stdout, data[1000:2000], "curl -r 1000-1999")
    part = os.path.join(TMP, "part.bin")
    with open(part, "wb") as f:
        f.write(data[:5_000_000])  # a download cut at 5 MB
    p = curl("-C", "-", "-o", part, "-w", "%{http_code}", srv.url("/files/big.bin"))
    eq(p.stdout.decode(), "206", "resumed with a range")
    with open(part, "rb") as f:
        eq(sha(f.read()), sha(data), "the resumed file")
    os.unlink(part)


def t_conditional():
    import requests  # python3-requests
    r = requests.get(srv.url("/files/small.txt"), timeout=5)
    eq((r.status_code, r.text), (200, "small file\n"), "first GET")
    etag, modified = r.headers["ETag"], r.headers["Last-Modified"]
    r = requests.get(srv.url("/files/small.txt"), headers={"If-None-Match": etag}, timeout=5)
    eq((r.status_code, r.content), (304, b""), "If-None-Match")
    r = requests.get(srv.url("/files/small.txt"), headers={"If-Modified-Since": modified}, timeout=5)
    eq(r.status_code, 304, "If-Modified-Since")


def t_traversal_never_200():
    for target in ["/files/../secret.txt", "/files/%2e%2e/secret.txt", "/files/sub/../../secret.txt",
                   "/files/%2e%2e%2fsecret.txt", "/files//etc/passwd", "/files/.%2e/secret.txt"]:
        with Conn(srv.port) as c:
            c.send(request_bytes("GET", target))
            r = c.read_response()
            check(r.status in (400, 404), f"{target}: {r.status}")
            check(b"top secret" not in r.body, f"{target}: the secret leaked")


def worker_rss_kib():
    (pid,) = srv.worker_pids()
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def t_slow_reader():
    before = worker_rss_kib()
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    s.connect(("127.0.0.1", srv.port))
    try:
        s.sendall(request_bytes("GET", "/files/big.bin"))
        time.sleep(1.0)
        lat = []
        for _ in range(20):
            t0 = time.monotonic()
            eq(H.http(srv.port, "GET", "/hello").status, 200, "/hello during the download")
            lat.append(time.monotonic() - t0)
        grown = worker_rss_kib() - before
        print(f"     worker RSS grew {grown} KiB while a client held a 24 MiB download; "
              f"/hello worst {max(lat) * 1000:.1f} ms")
        check(grown < 8 * 1024, f"the worker grew {grown} KiB: it buffers the file")
        H.check_served_meanwhile(lat, "a stalled download")
    finally:
        s.close()


def t_sigterm_lets_download_finish():
    global srv
    main_srv = srv
    srv = H.Server(APP, args=["--workers", "1"], env={"STATIC_DIR": DIR}, name="files-stop")
    try:
        srv.start()
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        s.connect(("127.0.0.1", srv.port))
        s.settimeout(20)
        s.sendall(request_bytes("GET", "/files/big.bin"))
        got = s.recv(65536)
        srv.signal(signal.SIGTERM)
        while True:  # read it all, after the stop began
            chunk = s.recv(1 << 20)
            if not chunk:
                break
            got += chunk
        s.close()
        # the head went out before the stop; the server closes after the body
        head, _, body = got.partition(b"\r\n\r\n")
        check(f"Content-Length: {BIG_LEN}".encode() in head, f"head: {head!r}")
        eq(len(body), BIG_LEN, "bytes received after SIGTERM, up to the close")
        with open(BIG, "rb") as g:
            eq(sha(body), sha(g.read()), "the file")
        H.stop_and_check(srv, expect_status=0)
    finally:
        srv = main_srv


def main():
    global srv
    H.watchdog(200)
    os.mkdir(DIR)
    with open(BIG, "wb") as f:
        f.write(os.urandom(BIG_LEN))
    with open(os.path.join(DIR, "small.txt"), "w") as f:
        f.write("small file\n")
    os.mkdir(os.path.join(DIR, "sub"))
    with open(os.path.join(TMP, "secret.txt"), "w") as f:
        f.write("top secret\n")
    srv = H.Server(APP, args=["--workers", "1"], env={"STATIC_DIR": DIR}, name="files")
    try:
        failures, errors = H.run_with_server(srv, globals())
    finally:
        shutil.rmtree(TMP, ignore_errors=True)
    H.finish(failures, errors)


if __name__ == "__main__":
    main()
