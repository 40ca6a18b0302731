"""Operational behaviour of `churn serve`: idle connections are closed
(slow-header attacks), CORS for one origin only, the prediction log's drop
and block modes account for every prediction, customer ids are stored only
as pseudonyms, and SIGTERM lets a request in flight finish.
"""
import json
import os
import re
import socket
import sqlite3
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import Server, Suite, Workspace, customers  # noqa: E402

t = Suite("http_ops")
ws = Workspace()
servers = []


def metric(srv, name):
    st, text, _ = srv.request("GET", "/metrics")
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


try:
    data = ws.train(rows=1500, seed=31)
    ws.churn("users", "add", "service1", "--role", "service", stdin="service-pass-1\n")
    people = customers(data, 1000)
    srv = Server(ws, "--set", "serve.idle_timeout_s=1", "--set",
                 "serve.cors_origin=https://crm.example", "--set", "serve.log_queue=16")
    servers.append(srv)
    tok = srv.token("service")

    # ---- bad settings are refused at start, with the setting named ----------------------
    for args, want, text in (
            (["--set", "serve.log_mode=fast"], 1, "serve.log_mode"),
            (["--set", "serve.jwt_alg=none"], 1, "serve.jwt_alg"),
            (["--host", "bogus"], 1, "listen address 'bogus'"),
            (["--log-mode", "maybe"], 1, "--log-mode"),
            (["--model", os.path.join(ws.dir, "no-such-bundle.json")], 4, "no-such-bundle")):
        p = ws.churn("serve", "--port", "0", *args, check=False)
        t.check("bad setting %s: exit %d naming it" % (" ".join(args), want),
                p.returncode == want and text in p.stderr, (p.returncode, p.stderr[-300:]))

    # ---- slow clients ----------------------------------------------------------------
    sk = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    sk.sendall(b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Ty")
    t0 = time.time()
    try:
        got = sk.recv(100)
    except OSError:
        got = b""
    waited = time.time() - t0
    sk.close()
    t.check("a connection stuck in its headers is closed after serve.idle_timeout_s "
            "(%.1f s)" % waited, got == b"" and waited < 5, (got, waited))

    # ---- CORS ------------------------------------------------------------------------
    st, _, hdr = srv.request("OPTIONS", "/v1/predict", headers={
        "Origin": "https://crm.example", "Access-Control-Request-Method": "POST"})
    t.check("CORS preflight from the configured origin: 204 with that origin",
            st == 204 and hdr.get("Access-Control-Allow-Origin") == "https://crm.example"
            and "POST" in hdr.get("Access-Control-Allow-Methods", ""), (st, hdr))
    t.check("CORS never allows credentials", "Access-Control-Allow-Credentials" not in hdr, hdr)
    st, _, hdr = srv.request("OPTIONS", "/v1/predict", headers={"Origin": "https://evil.example"})
    t.check("CORS preflight from another origin: 403, no allow header",
            st == 403 and "Access-Control-Allow-Origin" not in hdr, (st, hdr))
    st, _, hdr = srv.request("GET", "/healthz", headers={"Origin": "https://evil.example"})
    t.check("no CORS header for another origin", "Access-Control-Allow-Origin" not in hdr, hdr)

    # ---- the prediction log in drop mode: every prediction accounted for -----------------
    for _ in range(3):
        st, doc, _ = srv.request("POST", "/v1/predict/batch?k=0", people, token=tok)
    ok = st == 200 and doc["count"] == 1000
    deadline = time.time() + 10
    while time.time() < deadline and metric(srv, "churn_prediction_log_queue_depth") > 0:
        time.sleep(0.05)
    preds = metric(srv, "churn_predictions_total")
    written = metric(srv, "churn_prediction_log_written_total")
    dropped = metric(srv, "churn_prediction_log_dropped_total")
    t.check("drop mode with a 16-record queue: written + dropped = predictions (%d + %d = %d)"
            % (written, dropped, preds), ok and written + dropped == preds == 3000, (written, dropped, preds))
    t.check("drops happened and are counted in /metrics", dropped > 0, dropped)
    db = sqlite3.connect(os.path.join(ws.dir, "registry.db"))
    rows = db.execute("SELECT count(*) FROM predictions").fetchone()[0]
    t.check("the store holds exactly the written predictions", rows == written, (rows, written))

    # ---- customer ids are pseudonymized before they are stored --------------------------
    cust = [r[0] for r in db.execute("SELECT customer FROM predictions LIMIT 100")]
    t.check("stored customer ids are 32-hex pseudonyms",
            cust and all(re.fullmatch(r"[0-9a-f]{32}", c or "") for c in cust), cust[:3])
    db.close()
    with open(os.path.join(ws.dir, "registry.db"), "rb") as f:
        blob = f.read()
    for name in ("registry.db-wal",):
        p = os.path.join(ws.dir, name)
        if os.path.exists(p):
            with open(p, "rb") as f:
                blob += f.read()
    raw = [p["customerID"].encode() for p in people[:50]]
    t.check("no raw customer id appears anywhere in the store files",
            not any(r in blob for r in raw), "")
    srv.stop()

    # ---- block mode: nothing dropped, the requests wait instead --------------------------
    srv = Server(ws, "--log-mode", "block", "--set", "serve.log_queue=16")
    servers.append(srv)
    tok = srv.token("service")
    for _ in range(3):
        st, doc, _ = srv.request("POST", "/v1/predict/batch?k=0", people, token=tok)
    srv.stop()
    out = srv.output()
    m = re.search(r"prediction log: (\d+) written, (\d+) dropped", out)
    t.check("block mode: 3000 written, 0 dropped",
            m is not None and m.group(1) == "3000" and m.group(2) == "0", out[-300:])

    # ---- rate limits ---------------------------------------------------------------------
    srv = Server(ws, "--set", "serve.rate_per_s=2", "--set", "serve.rate_burst=3",
                 "--set", "serve.login_per_min=4")
    servers.append(srv)
    tok = srv.token("service")
    codes = [srv.request("POST", "/v1/predict?k=0", people[0], token=tok)[0] for _ in range(6)]
    st, doc, hdr = srv.request("POST", "/v1/predict?k=0", people[0], token=tok)
    t.check("per-principal rate limit: 429 with Retry-After after the burst",
            codes[:3] == [200, 200, 200] and 429 in codes and st == 429
            and int(hdr.get("Retry-After", "0")) >= 1 and doc["error"] == "rate_limited",
            (codes, st, hdr))
    st, _, _ = srv.request("GET", "/healthz")
    t.check("probes are not rate limited", st == 200, st)
    logins = [srv.request("POST", "/v1/auth/token", {"username": "service1",
                                                     "password": "wrong-pass-1"})[0]
              for _ in range(6)]
    t.check("password guessing is limited per client address (401s, then 429)",
            logins[0] == 401 and logins[-1] == 429, logins)
    st, text, _ = srv.request("GET", "/metrics")
    t.check("refusals are counted", "churn_rate_limited_total" in text
            and metric(srv, "churn_rate_limited_total") >= 2, "")
    srv.stop()

    # ---- RS256: tokens signed with a private key, verified with the public one ------------
    key = os.path.join(ws.dir, "jwt-private.pem")
    pub = os.path.join(ws.dir, "jwt-public.pem")
    import subprocess
    subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                    "-out", key], check=True, capture_output=True)
    subprocess.run(["openssl", "pkey", "-in", key, "-pubout", "-out", pub], check=True,
                   capture_output=True)
    srv = Server(ws, "--set", "serve.jwt_alg=RS256", "--set", "serve.jwt_public_key=" + pub,
                 "--set", "serve.jwt_private_key=" + key)
    servers.append(srv)
    tok = srv.token("service")
    st, _, _ = srv.request("POST", "/v1/predict?k=1", people[0], token=tok)
    t.check("RS256: an issued token works", st == 200 and tok.count(".") == 2, st)
    from common import hs256
    with open(pub, "rb") as f:
        pem = f.read()
    now = int(time.time())
    forged = hs256(pem, {"sub": "service1", "role": "admin", "iss": "churn", "aud": "churn-api",
                         "iat": now, "nbf": now, "exp": now + 600})
    st, doc, _ = srv.request("GET", "/v1/users", token=forged)
    t.check("RS256: an HS256 token signed with the public key is refused (alg confusion)",
            st == 401, (st, doc))
    srv.stop()

    # ---- SIGTERM lets a request in flight finish ------------------------------------------
    srv = Server(ws)
    servers.append(srv)
    tok = srv.token("service")
    body = json.dumps(people[0]).encode()
    sk = socket.create_connection(("127.0.0.1", srv.port), timeout=20)
    sk.sendall(("POST /v1/predict HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                % (tok, len(body))).encode() + body[:20])
    time.sleep(0.3)
    srv.proc.send_signal(15)
    time.sleep(0.3)
    sk.sendall(body[20:])
    resp = b""
    while b"\r\n\r\n" not in resp or not resp.rstrip().endswith(b"}"):
        chunk = sk.recv(65536)
        if not chunk:
            break
        resp += chunk
    sk.close()
    t.check("a request in flight at SIGTERM completes with 200",
            resp.startswith(b"HTTP/1.1 200") and b'"probability"' in resp, resp[:200])
    try:
        srv.proc.wait(10)
    except Exception:
        pass
    t.check("the server then exits 0", srv.proc.returncode == 0, srv.output()[-300:])
    try:
        socket.create_connection(("127.0.0.1", srv.port), timeout=1).close()
        refused = False
    except OSError:
        refused = True
    t.check("and no longer accepts connections", refused)
finally:
    for s in servers:
        s.stop()
    ws.cleanup()
t.finish()
