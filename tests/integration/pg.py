"""
pg.py — a private PostgreSQL server for the integration tests that need
one (test_db_pg.py, test_seeds_pg.py): initdb into a temporary directory,
pg_ctl start on 127.0.0.1 with a free port and its Unix socket in that
directory (as the postgres user when run as root: the server refuses
root), stopped and removed by stop(). available() is False when the
PostgreSQL binaries are absent (package postgresql, scripts/install-deps):
the tests then skip their PostgreSQL part with a message.
"""
import glob
import os
import pwd
import shutil
import subprocess
import tempfile

import harness as H


class Postgres:
    def __init__(self):
        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        self.bin = os.path.dirname(bins[-1]) if bins else None
        self.dir = None
        self.port = None
        self.user = None

    def available(self):
        return self.bin is not None and os.path.exists(os.path.join(self.bin, "pg_ctl"))

    def _run(self, *argv, check_rc=True, timeout=60):
        cmd = list(argv)
        if self.user:  # the server refuses to run as root
            cmd = ["runuser", "-u", self.user, "--"] + cmd
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout)
        if check_rc and p.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stdout.decode()}"
                                 f"\n{self.log()}")
        return p.returncode

    def log(self):
        try:
            with open(os.path.join(self.dir, "server.log")) as f:
                return f.read()[-3000:]
        except OSError:
            return ""

    def start(self):
        self.dir = tempfile.mkdtemp(prefix="cf-pg-")
        if os.geteuid() == 0:
            try:
                pw = pwd.getpwnam("postgres")
            except KeyError:
                raise AssertionError("running as root and there is no postgres user to run the server")
            self.user = "postgres"
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        self._run(os.path.join(self.bin, "initdb"), "-D", os.path.join(self.dir, "data"),
                  "-A", "trust", "-U", "postgres", "-N", "-E", "UTF8", "--locale=C.UTF-8")
        self.port = H.free_port()
        self.ctl("start")

    def ctl(self, action, check_rc=True):
        opts = (f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off "
                f"-c max_connections=50")
        args = [os.path.join(self.bin, "pg_ctl"), "-D", os.path.join(self.dir, "data"),
                "-l", os.path.join(self.dir, "server.log"), "-w", "-t", "30"]
        if action in ("start", "restart"):
            args += ["-o", opts]
        if action in ("stop", "restart"):
            args += ["-m", "fast"]
        return self._run(*args, action, check_rc=check_rc)

    def url(self):
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def stop(self):
        if self.dir:
            self.ctl("stop", check_rc=False)
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def psql(self, sql):
        """Run SQL as the superuser, beside the app (e.g. change its schema)."""
        self._run(os.path.join(self.bin, "psql"), "-h", self.dir, "-p", str(self.port), "-U",
                  "postgres", "-v", "ON_ERROR_STOP=1", "-q", "-c", sql)


SKIP = ("SKIP postgresql part: no /usr/lib/postgresql/*/bin/initdb "
        "(install the postgresql package: scripts/install-deps)")
