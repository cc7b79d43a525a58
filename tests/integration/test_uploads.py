"""
test_uploads.py — multipart/form-data over real sockets, against Werkzeug:

  secure_filename          cf_secure_filename gives Werkzeug's secure_filename
                           for a table and 400 random strings
  parse_like_werkzeug      bodies from python3-requests and hand-made ones:
                           the fields and files Werkzeug's form parser finds
  example_*                examples/upload with curl -F and requests files=:
                           201 with each file's size and SHA-256, stored under
                           a safe name, served back (ranges); hostile bodies
                           (no boundary, 100,000 parts, a file over the limit
                           sent without end, a NUL in a filename, a client
                           that stops halfway) get a clean 4xx or nothing,
                           store nothing, leave no temporary file, and the
                           worker stays; a 256 MiB upload with the worker's
                           RSS sampled throughout stays flat
"""
import hashlib
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import check, eq  # noqa: E402

import requests  # noqa: E402
from werkzeug.formparser import parse_form_data  # noqa: E402
from werkzeug.test import EnvironBuilder  # noqa: E402
from werkzeug.utils import secure_filename  # noqa: E402

T = 30
app = None      # testapp: /multipart, /secure-filename
example = None  # examples/upload, MAX_FILE_SIZE 1 MiB
roomy = None    # examples/upload with the default limits, its own folder
UPLOAD_DIR = None


# ---- cf_secure_filename against Werkzeug ---------------------------------------

NAMES = ["My cool movie.mov", "../../../etc/passwd", "i contain cool \xfcml\xe4uts.txt", "  ..hidden",
         "a\tb\nc", "\ufb01le.txt", "\u65e5\u672c\u8a9e.txt", "a/b\\c.txt", "\x1cx\x1fy", "___", "....",
         "CON", "x\u00a0y", "\xdcn\xefc\xf6d\xe9 \u216b.pdf", "a!@#$%^&*()b", "-dash-", "\xe9", "",
         "._.a._.", "a .b", "\u2002wide\u3000space", "\u1e9b\u0323", "\u00bd cup", "x\u0301y",
         "file name (1).tar.gz", "\u0130stanbul", "\u00df", "\u212b", "a\x7fb", "tab\x0bvt"]


def ours(name):
    r = requests.get(app.url("/secure-filename?name=" + urllib.parse.quote(name, safe="")), timeout=T)
    eq(r.status_code, 200, f"status for {name!r}")
    return r.content.decode("ascii")


def t_secure_filename():
    for name in NAMES:
        eq(ours(name), secure_filename(name), f"secure_filename({name!r})")
    rnd = random.Random(7)
    pool = "abcXYZ019 ._-/\\\t\n!$%&'()*+,;=@[]^`{|}~\u00e9\u00fc\u00df\u00c5\u0301\u0323\u00a0" \
           "\u2000\u3000\ufb01\u2160\u00bd\u65e5\u0438\u05d0\U0001f600\ufeff\u200b"
    for _ in range(400):
        name = "".join(rnd.choice(pool) for _ in range(rnd.randint(0, 20)))
        eq(ours(name), secure_filename(name), f"secure_filename({name!r})")


# ---- the parser against Werkzeug's ------------------------------------------------

def werkzeug_view(body, content_type):
    env = EnvironBuilder(method="POST", data=body, content_type=content_type).get_environ()
    _, form, files = parse_form_data(env)
    return ([list(kv) for kv in form.items(multi=True)],
            [[k, f.filename, f.content_type or "application/octet-stream", len(f.read())]
             for k, f in files.items(multi=True)])


def ours_view(body, content_type):
    r = requests.post(app.url("/multipart"), data=body, headers={"Content-Type": content_type}, timeout=T)
    eq(r.status_code, 200, f"status ({r.text[:200]})")
    j = r.json()
    return sorted_form(j["form"]), [f[:4] for f in j["files"]]


def sorted_form(items):
    """Werkzeug's MultiDict groups a name's values at its first place."""
    first = {}
    for i, (k, _) in enumerate(items):
        first.setdefault(k, i)
    return sorted(items, key=lambda kv: first[kv[0]])


def encoded(fields, files):
    req = requests.Request("POST", "http://x/", data=fields, files=files).prepare()
    return req.body, req.headers["Content-Type"]


def raw_body(boundary, parts, epilogue=b"--\r\n"):
    out = b""
    for headers, data in parts:
        out += b"--" + boundary + b"\r\n" + b"".join(h + b"\r\n" for h in headers) + b"\r\n" + data + b"\r\n"
    return out + b"--" + boundary + epilogue


def t_parse_like_werkzeug():
    blob = bytes(random.Random(3).getrandbits(8) for _ in range(700 * 1024))  # spooled: over 512 KiB
    cases = [
        encoded({"title": "Hello", "tag": ["a", "b"]}, {"file": ("a.txt", b"tiny", "text/plain")}),
        encoded({"empty": ""}, [("file", ("one.bin", blob)), ("file", ("two.txt", b"\r\n--x\r\n"))]),
        encoded({"\u00fc": "\u65e5\u672c"}, {"f": ("\u00fcml\u00e4ut.txt", b"x")}),
        (raw_body(b"XyZ", [([b'Content-Disposition: form-data; name="a"'], b"1"),
                           ([b"Content-Disposition: form-data; name=b"], b"--XyZ in the data"),
                           ([b'Content-Disposition: form-data; name="f"; filename="x y.csv"',
                             b"Content-Type: text/csv"], b"a,b\r\n1,2\r\n")]),
         "multipart/form-data; boundary=XyZ"),
        (b"preamble\r\n" + raw_body(b"q", [([b'Content-Disposition: form-data; name="k"'], b"v")],
                                    epilogue=b"--\r\nepilogue"),
         'multipart/form-data; boundary="q"'),
        (raw_body(b"b", [([b'content-disposition: form-data; name="e"; filename=""'], b"")]),
         "multipart/form-data; boundary=b"),
    ]
    for body, ctype in cases:
        want = werkzeug_view(body, ctype)
        got = ours_view(body, ctype)
        eq(got, (sorted_form(want[0]), want[1]), f"form of {body[:80]!r}")
    r = requests.post(app.url("/multipart"), data=cases[1][0], headers={"Content-Type": cases[1][1]}, timeout=T)
    eq([f[4] for f in r.json()["files"]], [True, False], "the 700 KiB file spooled, the small one not")


# ---- examples/upload ------------------------------------------------------------

def stored():
    return sorted(n for n in os.listdir(UPLOAD_DIR))


def clear():
    for n in os.listdir(UPLOAD_DIR):
        os.unlink(os.path.join(UPLOAD_DIR, n))


def t_example_curl_two_files():
    clear()
    a = os.path.join(UPLOAD_DIR, "..", "in-a.txt")
    b = os.path.join(UPLOAD_DIR, "..", "in b.bin")
    with open(a, "wb") as f:
        f.write(b"hello upload\n")
    with open(b, "wb") as f:
        f.write(os.urandom(300 * 1024))
    out = subprocess.run(["curl", "-sS", "-w", "\n%{http_code}", "-F", f"file=@{a}", "-F", f"file=@{b}",
                          "-F", "note=ignored", example.url("/upload")],
                         capture_output=True, timeout=T)
    body, _, code = out.stdout.rpartition(b"\n")
    eq(code, b"201", f"curl -F status ({out.stderr!r})")
    got = json.loads(body)
    want = []
    for path, name in ((a, "in-a.txt"), (b, "in_b.bin")):
        data = open(path, "rb").read()
        want.append({"name": name, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()})
    eq(got, want, "the answer")
    eq(stored(), ["in-a.txt", "in_b.bin"], "stored files")
    data = open(b, "rb").read()
    r = requests.get(example.url("/files/in_b.bin"), headers={"Range": "bytes=100-199"}, timeout=T)
    eq((r.status_code, r.content), (206, data[100:200]), "a range of a stored file")
    os.unlink(a)
    os.unlink(b)


def t_example_requests_same_name_and_unsafe_names():
    clear()
    files = [("file", ("../../etc/passwd", b"one")), ("file", ("../../etc/passwd", b"two")),
             ("file", ("\u65e5\u672c.txt", b"three"))]
    r = requests.post(example.url("/upload"), files=files, timeout=T)
    eq(r.status_code, 201, f"status ({r.text})")
    eq([f["name"] for f in r.json()], ["etc_passwd", "etc_passwd-1", "txt"], "safe, distinct names")
    eq(open(os.path.join(UPLOAD_DIR, "etc_passwd-1"), "rb").read(), b"two", "the second file")


def expect_refused(body, ctype, status, what):
    clear()
    r = requests.post(example.url("/upload"), data=body, headers={"Content-Type": ctype}, timeout=T)
    eq(r.status_code, status, f"{what}: status ({r.text[:200]})")
    eq(stored(), [], f"{what}: something was stored")
    return r


def t_example_hostile_bodies():
    expect_refused(b"--x\r\n\r\n", "multipart/form-data", 400, "no boundary")
    expect_refused(raw_body(b"B", [([b'Content-Disposition: form-data; name="file"; filename="a\x00b"'], b"x")]),
                   "multipart/form-data; boundary=B", 400, "a NUL byte in a filename")
    ok_part = ([b'Content-Disposition: form-data; name="file"; filename="kept.txt"'], b"data")
    expect_refused(raw_body(b"B", [ok_part])[:-8], "multipart/form-data; boundary=B", 400,
                   "a truncated body after a good file")
    many = b"".join(b"--B\r\nContent-Disposition: form-data; name=n\r\n\r\nv\r\n" for _ in range(100000))
    r = expect_refused(many + b"--B--\r\n", "multipart/form-data; boundary=B", 413, "100,000 parts")
    check("more parts" in r.json()["error"], f"reason: {r.text}")
    big = raw_body(b"B", [([b'Content-Disposition: form-data; name="file"; filename="big"'], b"z" * (1024 * 1024 + 1)),
                          ok_part])
    expect_refused(big, "multipart/form-data; boundary=B", 413, "a file over MAX_FILE_SIZE")
    eq(leftovers(), [], "temporary files")


def leftovers():
    return [n for n in os.listdir(UPLOAD_DIR) if n.startswith(".upload-")]


def t_example_endless_file_over_the_limit():
    """A 2 GiB file (as announced) to a 1 MiB limit: the 413 comes while
    the client is still sending, after about the limit, not at the end."""
    clear()
    s = socket.create_connection(("127.0.0.1", example.port), timeout=10)
    head = (b"--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"huge.iso\"\r\n\r\n")
    s.sendall(b"POST /upload HTTP/1.1\r\nHost: t\r\nContent-Type: multipart/form-data; boundary=B\r\n"
              b"Content-Length: %d\r\n\r\n" % (2 << 30) + head)
    sent, reply = 0, b""
    s.setblocking(False)
    chunk = b"\0" * 65536
    deadline = time.monotonic() + 20
    while b"\r\n\r\n" not in reply and time.monotonic() < deadline:
        try:
            sent += s.send(chunk)
        except BlockingIOError:
            time.sleep(0.005)
        except (BrokenPipeError, ConnectionResetError):
            break
        try:
            reply += s.recv(65536)
        except BlockingIOError:
            pass
        except ConnectionResetError:
            break
    s.close()
    check(reply.startswith(b"HTTP/1.1 413"), f"reply {reply[:100]!r} after {sent} bytes")
    check(sent < 64 << 20, f"sent {sent >> 20} MiB before the 413")
    time.sleep(0.2)
    eq(stored(), [], "stored after the refused upload")
    print(f"     413 after {sent >> 10} KiB sent")


def t_example_client_stops_halfway():
    clear()
    s = socket.create_connection(("127.0.0.1", example.port), timeout=10)
    body = b"--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"half.bin\"\r\n\r\n" + b"h" * 600000
    s.sendall(b"POST /upload HTTP/1.1\r\nHost: t\r\nContent-Type: multipart/form-data; boundary=B\r\n"
              b"Content-Length: 2000000\r\n\r\n" + body)
    time.sleep(0.3)
    s.close()
    deadline = time.monotonic() + 5
    while (stored() or leftovers()) and time.monotonic() < deadline:
        time.sleep(0.05)
    eq(stored(), [], "stored after the client left")
    r = requests.get(example.url("/"), timeout=T)
    eq(r.status_code, 200, "the worker still serves")


def t_example_large_upload_memory_flat():
    """256 MiB streamed to the example (the README has a 1 GiB run): the
    worker's RSS, sampled every 50 ms, stays within a few MiB, and the
    stored file's SHA-256 is the one sent."""
    size = 256 << 20
    pid = roomy.worker_pids()[0]
    block = bytes(range(256)) * 4096  # 1 MiB
    want = hashlib.sha256()
    for _ in range(size // len(block)):
        want.update(block)
    samples = []
    done = threading.Event()

    def sample():
        while not done.is_set():
            try:
                with open(f"/proc/{pid}/status") as f:
                    samples.extend(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
            except OSError:
                pass
            time.sleep(0.05)

    def body():
        yield b"--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.bin\"\r\n\r\n"
        for _ in range(size // len(block)):
            yield block
        yield b"\r\n--B--\r\n"

    requests.get(roomy.url("/"), timeout=T)  # warm
    base = None
    th = threading.Thread(target=sample)
    th.start()
    try:
        time.sleep(0.1)
        base = samples[0] if samples else None
        r = requests.post(roomy.url("/upload"), data=body(),
                          headers={"Content-Type": "multipart/form-data; boundary=B"}, timeout=120)
    finally:
        done.set()
        th.join()
    eq(r.status_code, 201, f"status ({r.text[:200]})")
    eq(r.json(), [{"name": "big.bin", "size": size, "sha256": want.hexdigest()}], "the answer")
    check(base is not None and len(samples) > 5, f"too few samples: {len(samples)}")
    grown = max(samples) - base
    print(f"     worker RSS {base} KiB before, at most +{grown} KiB during a 256 MiB upload "
          f"({len(samples)} samples)")
    check(grown < 16 * 1024, f"RSS grew {grown} KiB")


def main():
    global app, example, roomy, UPLOAD_DIR
    H.watchdog(240)
    tmp = tempfile.mkdtemp(prefix="cf-uploads-")
    UPLOAD_DIR = os.path.join(tmp, "store")
    app = H.Server(H.app_path("testapp"), name="uploads-app")
    example = H.Server(H.example_path("upload"), name="uploads-example",
                       env={"UPLOAD_DIR": UPLOAD_DIR, "MAX_FILE_SIZE": 1024 * 1024})
    roomy = H.Server(H.example_path("upload"), name="uploads-roomy",
                     env={"UPLOAD_DIR": os.path.join(tmp, "roomy")})
    servers = (app, example, roomy)
    failures, errors = [], []
    try:
        for s in servers:
            s.start()
        failures = H.run_tests(H.collect(globals()))
        for s in servers:
            check(s.alive(), f"{s.name} died")
    finally:
        for s in servers:
            try:
                H.stop_and_check(s, expect_status=0)
            except AssertionError as e:
                errors.append(f"{s.name}: {e}")
        shutil.rmtree(tmp, ignore_errors=True)
    H.finish(failures, errors)


if __name__ == "__main__":
    main()
