"""The web UI in a real headless Chromium against a real `churn serve`.

Sets up a workspace (two trained versions, one user per role), starts the
server on 127.0.0.1, checks the static files' headers over plain HTTP, runs
tests/ui/ui.test.mjs (playwright-core driving /usr/bin/chromium) and
counts its checks, then checks on the server side what the browser did.

playwright-core comes from tests/ui/node_modules: scripts/install-deps
installs it (npm ci from package-lock.json); when it is missing here it is
installed the same way, and the suite fails if that fails. Screenshots go
to a temporary directory, or to UI_SHOTS (docs/img for the documentation).
"""
import csv
import json
import os
import re
import select
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "http"))
from common import PASSWORDS, Server, Suite, Workspace, customers  # noqa: E402

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")

t = Suite("ui")


def wait(cond, timeout_s):
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if cond():
            return True
        time.sleep(0.2)
    return False


def need(name, ok, why):
    if not t.check(name, ok, why):
        t.finish()


need("node is installed", shutil.which("node") is not None,
     "node not found: run scripts/install-deps (Debian package nodejs)")
need("chromium is installed", os.access(CHROMIUM, os.X_OK),
     CHROMIUM + " not found: run scripts/install-deps (Debian package chromium)")
if not os.path.isdir(os.path.join(HERE, "node_modules", "playwright-core")):
    print("ui: tests/ui/node_modules is missing: npm ci (from package-lock.json)")
    need("npm is installed", shutil.which("npm") is not None,
         "npm not found: run scripts/install-deps (Debian package npm)")
    p = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=HERE,
                       capture_output=True, text=True)
    need("npm ci installs playwright-core", p.returncode == 0, p.stdout[-400:] + p.stderr[-800:])

ws = Workspace()
srv = None
shots = os.path.abspath(os.environ.get("UI_SHOTS") or tempfile.mkdtemp(prefix="churn-ui-shots-"))
out = tempfile.mkdtemp(prefix="churn-ui-out-")
try:
    data = ws.train(rows=2000, seed=11)
    ws.train(rows=1500, seed=12)  # v2, the challenger
    ws.add_users()
    drifted = os.path.join(ws.dir, "price.csv")
    ws.churn("simulate", "--rows", "600", "--seed", "23", "--drift", "price", "-o", drifted)
    flags = ["--set", "monitor.min_rows=100", "--set", "monitor.min_labels=100",
             "--set", "rollout.eval_s=1"]
    srv = Server(ws, *flags)

    # ---- the static files over plain HTTP ------------------------------------------
    st, body, hdr = srv.request("GET", "/")
    csp = hdr.get("Content-Security-Policy", "")
    t.check("GET /: the page, text/html", st == 200 and hdr.get("Content-Type", "")
            .startswith("text/html") and "<script type=\"module\" src=\"/ui/app.js\">" in body,
            (st, hdr))
    t.check("GET /: a CSP allowing only this origin's scripts, no inline script",
            "script-src 'self'" in csp and "default-src 'none'" in csp
            and "unsafe-inline" not in csp and "unsafe-eval" not in csp
            and "frame-ancestors 'none'" in csp and "base-uri 'none'" in csp, csp)
    t.check("GET /: nosniff, DENY framing, no referrer",
            hdr.get("X-Content-Type-Options") == "nosniff" and hdr.get("X-Frame-Options") == "DENY"
            and hdr.get("Referrer-Policy") == "no-referrer", hdr)
    for name, ctype in (("app.js", "text/javascript"), ("app.css", "text/css")):
        st, body, h = srv.request("GET", "/ui/" + name)
        t.check("GET /ui/%s: %s with an ETag" % (name, ctype),
                st == 200 and h.get("Content-Type", "").startswith(ctype)
                and h.get("ETag", "").startswith('"')
                and h.get("Content-Security-Policy") == csp, (st, h))
    with open(os.path.join(os.path.dirname(os.path.dirname(HERE)), "web", "app.js"), "rb") as f:
        t.check("GET /ui/app.js: the bytes of web/app.js",
                srv.request("GET", "/ui/app.js")[1] == f.read().decode(), "content differs")
    st, _, h = srv.request("GET", "/ui/app.js")
    st2, body2, h2 = srv.request("GET", "/ui/app.js", headers={"If-None-Match": h["ETag"]})
    t.check("If-None-Match with the ETag: 304 without a body",
            st2 == 304 and not body2 and h2.get("ETag") == h["ETag"], (st2, h2))
    st, _, h = srv.request("GET", "/")
    st2, body2, _ = srv.request("GET", "/", headers={"If-None-Match": 'W/"x", ' + h["ETag"]})
    t.check("GET / with its ETag in an If-None-Match list: 304", st2 == 304 and not body2, st2)
    st, doc, h = srv.request("GET", "/ui/secret.txt")
    t.check("an unknown file: 404 JSON, with the security headers",
            st == 404 and doc["error"] == "not_found" and "Content-Security-Policy" in h, (st, doc))
    for path in ("/ui/../server.h", "/ui/%2e%2e%2fMakefile", "/ui/", "/ui/a/b.js"):
        st, doc, _ = srv.request("GET", path)
        t.check("GET %s: 404" % path, st == 404, (st, doc))
    st, _, _ = srv.request("POST", "/ui/app.js", raw=b"x", ctype="text/plain")
    t.check("POST to a UI file: 405", st == 405, st)

    # The page's copy of the permission matrix (which hides what a role may
    # not do) is the table of docs/security.md, cell for cell.
    top = os.path.dirname(os.path.dirname(HERE))
    with open(os.path.join(top, "docs", "security.md")) as f:
        rows = [ln.strip().strip("|").split("|") for ln in f
                if re.match(r"\| (admin|scientist|analyst|service) \|", ln)]
    with open(os.path.join(top, "docs", "security.md")) as f:
        head = [ln for ln in f if ln.startswith("| Role | predict")][0].strip().strip("|").split("|")
    perms = [h.strip() for h in head[1:]]
    doc_matrix = {r[0].strip(): sorted(p for p, v in zip(perms, r[1:]) if v.strip() == "yes")
                  for r in rows}
    with open(os.path.join(top, "web", "api.js")) as f:
        js = f.read()
    js_matrix = {m.group(1): sorted(re.findall(r"'([a-z:]+)'", m.group(2)))
                 for m in re.finditer(r"^  (\w+): \[([^\]]*)\],$", js, re.M)}
    t.check("web/api.js has the permission matrix of docs/security.md",
            len(doc_matrix) == 4 and js_matrix == doc_matrix, (js_matrix, doc_matrix))

    # ---- GET /v1/schema ---------------------------------------------------------------
    tok = {role: srv.token(role) for role in PASSWORDS}
    st, doc, _ = srv.request("GET", "/v1/schema", token=tok["service"])
    cols = {c["name"]: c for c in doc["schema"]["columns"]} if st == 200 else {}
    t.check("GET /v1/schema: the champion's columns with kinds, categories and ranges",
            st == 200 and doc["model"]["version"] == 1 and len(doc["schema_hash"]) == 64
            and cols["tenure"]["kind"] == "integer" and cols["tenure"]["range"] == [0, 600]
            and cols["Contract"]["categories"] == ["Month-to-month", "One year", "Two year"]
            and cols["Churn"]["kind"] == "target", (st, doc))
    st, _, _ = srv.request("GET", "/v1/schema")
    t.check("GET /v1/schema without credentials: 401", st == 401, st)

    # ---- monitoring results and a rollout for the views to show ---------------------------
    # 600 customers after a price rise, the outcomes of 300 of them, one
    # monitoring run; then a shadow rollout of v2 (the champion answers
    # everyone, so the batch below is scored by v1 alone).
    with open(drifted, newline="") as f:
        labels = [row["Churn"] == "Yes" for row in csv.DictReader(f)]
    people = customers(drifted, 600)
    ids = []
    for i in range(0, 600, 200):
        st, doc, _ = srv.request("POST", "/v1/predict/batch?k=0", people[i:i + 200],
                                 token=tok["service"])
        ids += [p["prediction_id"] for p in doc["predictions"]]
    for pid, churned in list(zip(ids, labels))[:300]:
        srv.request("POST", "/v1/feedback", {"prediction_id": pid, "churned": churned,
                                             "observed_date": "2026-12-01"}, token=tok["service"])
    time.sleep(1.1)  # results are timed to the second: start after the last feedback
    start = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    srv.request("POST", "/v1/monitor/run", token=tok["scientist"])
    ready = lambda: all(  # noqa: E731
        (lambda r: r[0] == 200 and r[1]["computed_at"] >= start and r[1]["predictions"] == 600)(
            srv.request("GET", "/v1/monitor/" + k, token=tok["analyst"]))
        for k in ("drift", "decay", "estimate"))
    t.check("monitoring results over the 600 served customers", wait(ready, 30), start)
    st, ro, _ = srv.request("POST", "/v1/rollouts", {"candidate": 2, "steps": [10, 100],
                                                     "shadow": True, "reason": "ui test"},
                            token=tok["scientist"])
    t.check("a shadow rollout of v2 started", st == 201 and ro["state"] == "shadow", (st, ro))
    t.check("the rollout has been evaluated", wait(lambda: srv.request(
        "GET", "/v1/rollouts/%d" % ro["id"], token=tok["analyst"])[1]["last_evaluation"]
        is not None, 15), ro)

    # ---- the browser -------------------------------------------------------------------
    # 600 customers and one that cannot be read (an unknown gender).
    batch = os.path.join(ws.dir, "batch.csv")
    with open(data, newline="") as f:
        rows = list(csv.reader(f))
    header, body_rows = rows[0], rows[1:601]
    bad = list(body_rows[5])
    bad[header.index("gender")] = "Robot"
    with open(batch, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        w.writerows(body_rows[:5] + [bad] + body_rows[5:])
    # A file whose header misspells a column.
    batch_bad = os.path.join(ws.dir, "misspelt.csv")
    with open(batch_bad, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["tenur" if h == "tenure" else h for h in header])
        w.writerows(body_rows[:3])
    # And one over serve.max_body_bytes (1 MiB).
    batch_big = os.path.join(ws.dir, "big.csv")
    ws.churn("simulate", "--rows", "12000", "--seed", "24", "-o", batch_big)
    users = {role: [role + "1", pw] for role, pw in PASSWORDS.items()}
    env = dict(os.environ, UI_URL="http://127.0.0.1:%d" % srv.port, UI_USERS=json.dumps(users),
               UI_BATCH=batch, UI_BATCH_BAD=batch_bad,
               UI_BATCH_BIG=batch_big, UI_OUT=out, UI_SHOTS=shots, CHROMIUM=CHROMIUM,
               UI_WEB=os.path.join(os.path.dirname(os.path.dirname(HERE)), "web"))
    # The script's lines are read as they come (it asks for a server restart
    # midway and waits for the answer on its stdin), with a deadline.
    download = None
    feedback_for = []  # prediction ids the page recorded an outcome for
    n_checks = 0

    def restart():
        # Same port and store, a new token secret: every token issued so far
        # is refused.
        global srv
        port = srv.port
        srv.stop()
        os.remove(os.path.join(ws.dir, "jwt.secret"))
        srv = Server(ws, *flags, "--port", str(port))

    def handle(line):
        global download, n_checks
        try:
            r = json.loads(line)
        except ValueError:
            print("    " + line)
            return
        if "download" in r:
            download = r["download"]
        elif "feedback" in r:
            feedback_for.append(r["feedback"])
        elif "restart" in r:
            restart()
            node.stdin.write(b"restarted\n")
            node.stdin.flush()
        else:
            n_checks += 1
            t.check("browser: " + r["name"], r["ok"], r["detail"])

    err_path = os.path.join(ws.dir, "node.stderr")
    with open(err_path, "wb") as err_file:
        node = subprocess.Popen(["node", os.path.join(HERE, "ui.test.mjs")], env=env, cwd=HERE,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err_file)
        deadline, pending, timed_out, ended = time.time() + 300, b"", False, False
        try:
            while True:
                if time.time() > deadline:
                    timed_out = True
                    break
                ready, _, _ = select.select([node.stdout], [], [], 1.0)
                if not ready:
                    continue
                chunk = os.read(node.stdout.fileno(), 65536)
                if not chunk:
                    ended = True
                    break
                pending += chunk
                while b"\n" in pending:
                    line, pending = pending.split(b"\n", 1)
                    handle(line.decode(errors="replace"))
        finally:
            # Never leave the browser running: not on a timeout, not when a
            # restart failed here. A script that closed its output gets
            # time to exit.
            try:
                rc = node.wait(timeout=30 if ended else 0.1)
            except subprocess.TimeoutExpired:
                node.kill()
                rc = node.wait()
    with open(err_path, errors="replace") as f:
        err = f.read()
    t.check("browser: the session ran (node exit 0, all checks reported)",
            rc == 0 and not timed_out and n_checks >= 30,
            "exit %s%s, %d checks: %s" % (rc, ", timed out after 300 s" if timed_out else "",
                                          n_checks, err[-1500:]))
    tok = {role: srv.token(role) for role in PASSWORDS}  # the restart made new ones necessary

    # ---- what the browser did, seen from the server --------------------------------------
    if download:
        with open(download, newline="") as f:
            got = list(csv.DictReader(f))
        with open(batch, "rb") as f:
            st, doc, _ = srv.request("POST", "/v1/predict/batch?k=1", raw=f.read(),
                                     ctype="text/csv", token=tok["service"])
        want = doc["predictions"] if st == 200 else []
        same = len(got) == len(want) == 601 and all(
            (g["error"] == w.get("error", "")) and
            (w.get("error") or abs(float(g["probability"]) - w["probability"]) < 1e-9
             and g["risk_band"] == w["risk_band"] and g["customer_id"] == w["customer_id"]
             and g["reasons"] == w["reasons"][0]["text"])
            for g, w in zip(got, want))
        t.check("the downloaded CSV matches the API's batch answer row by row", same,
                (len(got), len(want), got[:2], want[:2]))
        t.check("the downloaded CSV gives the unreadable row's line and field",
                len(got) > 5 and got[5]["error"] == "unprocessable" and got[5]["line"] == "7"
                and got[5]["field"] == "gender", got[5:6])
    else:
        t.check("the browser saved the batch results", False, "no download reported")
    st, doc, _ = srv.request("GET", "/v1/audit?limit=1000", token=tok["admin"])
    acts = [(e["actor"], e["action"], e.get("to"), e.get("reason")) for e in doc]
    t.check("the audit log has the promotion by scientist1 and the rollback by admin1",
            ("scientist1", "promote", 2, "promoted from the UI test") in acts
            and any(a[:3] == ("admin1", "rollback", 1) for a in acts), acts)
    t.check("the outcome recorded from the page is in the store, by analyst1",
            len(feedback_for) == 1 and any(e["actor"] == "analyst1" and e["action"] == "feedback"
                                           and e["target"] == feedback_for[0]
                                           and e["details"] == {"churned": True} for e in doc),
            (feedback_for, [e for e in doc if e["actor"] == "analyst1"]))
    t.check("the analyst's refused promotion changed nothing",
            not any(a[0] == "analyst1" and a[1] != "feedback" for a in acts), acts)
    st, doc, _ = srv.request("GET", "/v1/rollouts/%d" % ro["id"], token=tok["analyst"])
    t.check("the rollout was aborted from the page, by scientist1",
            st == 200 and doc["state"] == "aborted", (st, doc))
    t.check("the page's pause, resume and abort are audited as scientist1",
            [a[1] for a in acts if a[0] == "scientist1" and a[1].startswith("rollout")][-3:]
            == ["rollout-pause", "rollout-resume", "rollout-abort"], acts)
    with open(os.path.join(ws.dir, "access.log")) as f:
        log = [json.loads(x) for x in f if x.strip()]
    t.check("the access log has the analyst's 403 on the promotion and on the audit log",
            any(e.get("principal") == "analyst1" and e.get("status") == 403
                and e.get("path") == "/v1/models/2/promote" for e in log)
            and any(e.get("principal") == "analyst1" and e.get("status") == 403
                    and e.get("path") == "/v1/audit" for e in log),
            [e for e in log if e.get("status") == 403][:4])
    t.check("the screenshots were saved",
            all(os.path.getsize(os.path.join(shots, "ui-%s.png" % n)) > 5000
                for n in ("login", "predict", "batch", "refused", "models", "audit", "users",
                          "monitor", "rollouts")),
            sorted(os.listdir(shots)))
except Exception as e:  # a failed set-up is a failure, never a skip
    t.check("the suite ran to the end", False, repr(e))
finally:
    if srv:
        srv.stop()
    ws.cleanup()
    shutil.rmtree(out, ignore_errors=True)
    if not os.environ.get("UI_SHOTS"):
        shutil.rmtree(shots, ignore_errors=True)
t.finish()
