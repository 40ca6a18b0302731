"""Two `churn serve` processes on one PostgreSQL store:

  - a throwaway PostgreSQL server is started in a temporary directory (unix
    socket only, tests/pg/cluster.sh does the same for the unit suites) and
    removed at the end; a missing server binary is a failure naming the
    Debian package;
  - models trained with the CLI into the PostgreSQL store are served by
    both servers, which follow a promotion and a rollback made with the
    CLI;
  - audited writes from both servers (API keys over HTTP) and from the CLI
    at the same time leave `churn audit verify` intact with exactly the
    entries written, and `churn models check` passes.
"""
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import Server, Suite, Workspace, customers  # noqa: E402

t = Suite("http_pg")


def pg_bin():
    d = os.environ.get("CH_PG_BIN")
    if d:
        return d
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"),
                   key=lambda p: [int(x) for x in p.split("/")[4].split(".") if x.isdigit()])
    return os.path.dirname(found[-1]) if found else None


class Postgres:
    """A PostgreSQL server owned by this test, on a unix socket in its own
    temporary directory. PostgreSQL refuses to run as root: then the
    cluster belongs to the 'postgres' user the Debian package creates."""

    def __init__(self):
        self.bin = pg_bin()
        if self.bin is None or not os.access(os.path.join(self.bin, "initdb"), os.X_OK):
            raise RuntimeError("no PostgreSQL server binaries: install the Debian package "
                               "'postgresql' (scripts/install-deps)")
        self.dir = tempfile.mkdtemp(prefix="churn-pg-")
        self.as_user = []
        if os.geteuid() == 0:
            shutil.chown(self.dir, user="postgres")
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self.started = False
        self.run("initdb", "-D", self.dir + "/data", "-A", "trust", "-U", "churn", "-E", "UTF8",
                 "--locale=C", "--no-sync")
        self.run("pg_ctl", "-D", self.dir + "/data", "-l", self.dir + "/server.log", "-w",
                 "-t", "60", "-o", "-c listen_addresses='' -c unix_socket_directories='%s' "
                 "-c max_connections=100" % self.dir, "start")
        self.started = True
        self.url = "postgresql:///postgres?host=%s&user=churn" % self.dir

    def run(self, tool, *args):
        p = subprocess.run([*self.as_user, os.path.join(self.bin, tool), *args],
                           capture_output=True, text=True)
        if p.returncode != 0:
            raise RuntimeError("%s: exit %d: %s" % (tool, p.returncode, (p.stdout + p.stderr)[-800:]))

    def stop(self):
        if self.started:
            try:
                self.run("pg_ctl", "-D", self.dir + "/data", "-m", "fast", "-w", "stop")
            except RuntimeError:
                self.run("pg_ctl", "-D", self.dir + "/data", "-m", "immediate", "stop")
            self.started = False
        shutil.rmtree(self.dir, ignore_errors=True)


def wait_version(srv, want, timeout=10):
    deadline = time.time() + timeout
    v = None
    while time.time() < deadline:
        v = srv.request("GET", "/readyz")[1]["model"]["version"]
        if v == want:
            return v
        time.sleep(0.05)
    return v


def audit_count(ws):
    p = ws.churn("audit", "verify", check=False)
    if p.returncode != 0 or not p.stdout.startswith("audit chain intact: "):
        return None, p.stdout + p.stderr
    return int(p.stdout.split(": ")[1].split()[0]), p.stdout


pg = None
ws = Workspace()
servers = []
try:
    try:
        pg = Postgres()
    except (RuntimeError, OSError) as e:
        t.check("a PostgreSQL server starts for the test", False, e)
        raise SystemExit
    url = pg.url + "&options=-csearch_path%3Dhttp_pg"
    ws.sets[ws.sets.index("registry.url=%s/registry.db" % ws.dir)] = "registry.url=" + url
    data = ws.train(rows=2000, seed=41)   # v1, champion
    ws.train(rows=1500, seed=42)          # v2, challenger
    ws.add_users()
    p = ws.churn("models", "list", "--json")
    t.check("the CLI trained two versions into the PostgreSQL store",
            '"version":2' in p.stdout.replace(" ", ""), p.stdout[:300])
    a = Server(ws)
    servers.append(a)
    b = Server(ws)
    servers.append(b)
    person = customers(data, 1)[0]
    tok = {s.port: (s.token("service"), s.token("admin")) for s in servers}

    def predicted_version(srv):
        st, doc, _ = srv.request("POST", "/v1/predict", person, token=tok[srv.port][0])
        return doc["model"]["version"] if st == 200 else (st, doc)

    t.check("both servers serve the champion v1",
            predicted_version(a) == 1 and predicted_version(b) == 1,
            (predicted_version(a), predicted_version(b)))
    ws.churn("models", "promote", "2", "--force", "--reason", "pg test")
    t.check("both servers follow a CLI promotion to v2",
            wait_version(a, 2) == 2 and wait_version(b, 2) == 2 and predicted_version(a) == 2
            and predicted_version(b) == 2, (predicted_version(a), predicted_version(b)))
    ws.churn("models", "rollback", "--reason", "pg test")
    t.check("both servers follow a CLI rollback to v1",
            wait_version(a, 1) == 1 and wait_version(b, 1) == 1 and predicted_version(a) == 1
            and predicted_version(b) == 1, (predicted_version(a), predicted_version(b)))

    # ---- concurrent audited writers ------------------------------------------
    before, out = audit_count(ws)
    t.check("audit chain intact before the concurrent writes", before is not None, out)
    per_server, per_cli = 40, 8
    errors = []

    def http_writer(srv, tag):
        for i in range(per_server):
            st, doc, _ = srv.request("POST", "/v1/keys", {"role": "service",
                                                         "label": "%s-%d" % (tag, i)},
                                     token=tok[srv.port][1])
            if st not in (200, 201):
                errors.append((tag, i, st, doc))

    def cli_writer():
        for i in range(per_cli):
            p = ws.churn("keys", "create", "--role", "service", "--label", "cli-%d" % i,
                         check=False)
            if p.returncode != 0:
                errors.append(("cli", i, p.returncode, p.stderr[-300:]))

    threads = [threading.Thread(target=http_writer, args=(a, "a")),
               threading.Thread(target=http_writer, args=(b, "b")),
               threading.Thread(target=cli_writer)]
    t0 = time.time()
    for th in threads:
        th.start()
    for th in threads:
        th.join(120)
    t.check("every concurrent audited write succeeded (%d via each server, %d via the CLI, "
            "%.1f s)" % (per_server, per_cli, time.time() - t0), not errors, errors[:3])
    after, out = audit_count(ws)
    want = (before or 0) + 2 * per_server + per_cli
    t.check("churn audit verify: chain intact with %d entries" % want, after == want,
            (before, after, out))
    p = ws.churn("keys", "list", "--json", check=False)
    labels = [k.get("label") for k in json.loads(p.stdout)] if p.returncode == 0 else []
    wanted = (["a-%d" % i for i in range(per_server)] + ["b-%d" % i for i in range(per_server)]
              + ["cli-%d" % i for i in range(per_cli)])
    t.check("every key written is stored once", sorted(labels) == sorted(wanted),
            p.stdout[-300:])
    p = ws.churn("models", "check", check=False)
    t.check("churn models check: registry ok", p.returncode == 0 and "registry ok" in p.stdout,
            p.stdout + p.stderr)
    for s in servers:
        rc = s.stop()
        t.check("server on port %d stops cleanly" % s.port, rc == 0, s.output()[-400:])
    servers = []
except SystemExit:
    pass
except Exception as e:  # a broken step fails the suite with its reason
    t.check("the test ran to its end", False, repr(e))
finally:
    for s in servers:
        s.stop()
    if pg is not None:
        pg.stop()
    ws.cleanup()
t.finish()
