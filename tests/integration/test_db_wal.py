"""
test_db_wal.py — the SQLite write-ahead log stays bounded under sustained
concurrent writes (issue 12: `wrk -c50 -d8s` of inserts left a 306 MB
-wal file). tests/apps/dbapp with 2 workers on a SQLite file; wrk
(-t2 -c50, 8 s, a lua script) POSTs inserts while a thread reads a row
every 10 ms and another samples the -wal file's size every 10 ms:

  - the log never grows past the bound the guide documents, twice
    CF_DB_WAL_LIMIT (default 16 MiB), and is no bigger than that after;
  - no insert fails, every answered insert is in the table;
  - reads are answered throughout (none fails, the slowest is printed
    with the insert rate, for comparison between builds).

CF_WAL_SECONDS / CF_WAL_CONNS change the load (e.g. to measure).
"""
import json
import os
import shutil
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import check, eq  # noqa: E402

LIMIT = 16 << 20           # CF_DB_WAL_LIMIT's default
BOUND = 2 * LIMIT          # what docs/guide.md promises
SECONDS = int(os.environ.get("CF_WAL_SECONDS", "8"))
CONNS = int(os.environ.get("CF_WAL_CONNS", "50"))

LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"name":"load"}'
"""


def main():
    H.watchdog(120)
    tmp = tempfile.mkdtemp(prefix="cf-wal-")
    path = os.path.join(tmp, "wal.db")
    wal = path + "-wal"
    script = os.path.join(tmp, "insert.lua")
    with open(script, "w") as f:
        f.write(LUA)
    srv = H.Server(H.app_path("dbapp"), args=["--workers", "2", "--no-access-log"],
                   env={"DATABASE_URL": f"sqlite:///{path}", "WEB_CONCURRENCY": "2"},
                   name="dbapp-wal").start()
    failures = []
    try:
        r = H.http(srv.port, "POST", "/items", headers={"Content-Type": "application/json"},
                   body=b'{"name":"first"}')
        eq(r.status, 201, f"first insert: {r.body!r}")

        stop = threading.Event()
        sizes, reads, read_errors = [0], [], []

        def sample():
            while not stop.is_set():
                try:
                    sizes.append(os.path.getsize(wal))
                except OSError:
                    pass
                time.sleep(0.01)

        def read():
            while not stop.is_set():
                t0 = time.monotonic()
                try:
                    rr = H.http(srv.port, "GET", "/items/1", timeout=10)
                    if rr.status != 200:
                        read_errors.append(rr.status)
                except Exception as e:  # noqa: BLE001
                    read_errors.append(repr(e))
                reads.append(time.monotonic() - t0)
                time.sleep(0.01)

        threads = [threading.Thread(target=sample), threading.Thread(target=read)]
        for t in threads:
            t.start()
        wrk = H.Wrk(srv.url("/items"), threads=2, conns=CONNS, duration=SECONDS,
                    extra=("-s", script))
        res = wrk.result()
        stop.set()
        for t in threads:
            t.join()
        after = os.path.getsize(wal) if os.path.exists(wal) else 0
        reads.sort()
        rate = res["requests"] / SECONDS
        print(f"  {res['requests']} inserts in {SECONDS} s ({rate:.0f}/s, {CONNS} connections, "
              f"2 workers); -wal at most {max(sizes) / 2**20:.1f} MiB over {len(sizes)} samples, "
              f"{after / 2**20:.1f} MiB after")
        print(f"  {len(reads)} reads meanwhile: median {reads[len(reads) // 2] * 1000:.1f} ms, "
              f"p99 {reads[int(len(reads) * 0.99)] * 1000:.1f} ms, "
              f"slowest {reads[-1] * 1000:.1f} ms")
        try:
            check(res["requests"] > 1000, f"inserts went on: {res['text']}")
            check(res["non2xx"] == 0 and not any(res["socket_errors"].values()),
                  f"no insert failed: {res['text']}")
            check(max(sizes) <= BOUND, f"-wal reached {max(sizes)} bytes, over {BOUND}")
            check(after <= BOUND, f"-wal is {after} bytes after the load")
            eq(read_errors, [], "every read answered")
            check(reads[-1] < 1.0, f"reads were held up: the slowest took {reads[-1]:.2f} s")
            r = H.http(srv.port, "GET", "/count?name=load")
            rows = json.loads(r.body)["count"]
            check(rows >= res["requests"], f"{rows} rows for {res['requests']} answered inserts")
        except AssertionError as e:
            print(f"FAIL {e}")
            failures.append("wal")
    finally:
        H.stop_and_check(srv)
        shutil.rmtree(tmp, ignore_errors=True)
    H.finish(failures)


if __name__ == "__main__":
    main()
