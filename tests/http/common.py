"""Helpers for the HTTP tests: a temporary workspace with a trained model,
users, and a real `churn serve` on 127.0.0.1 with an ephemeral port.

Results print like the other test scripts ("ok      name", "FAIL    name",
then "<suite>: N passed, N failed, N skipped").
"""
import base64
import csv
import hashlib
import hmac
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CHURN = os.environ.get("CHURN", os.path.join(ROOT, "build", "churn"))
PASSWORDS = {"admin": "admin-pass-1", "scientist": "scientist-pass-1",
             "analyst": "analyst-pass-1", "service": "service-pass-1"}


class Suite:
    def __init__(self, name):
        self.name = name
        self.passed = self.failed = self.skipped = 0

    def check(self, name, cond, detail=""):
        if cond:
            print("ok      " + name)
            self.passed += 1
        else:
            print("FAIL    " + name)
            if detail:
                print("    " + str(detail)[:600])
            self.failed += 1
        return cond

    def skip(self, name, why):
        print("SKIP    " + name)
        print("    skipped: " + why)
        self.skipped += 1

    def finish(self):
        print("%s: %d passed, %d failed, %d skipped"
              % (self.name, self.passed, self.failed, self.skipped))
        sys.exit(1 if self.failed else 0)


class Workspace:
    """A temporary directory with settings pointing into it."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="churn-http-")
        self.sets = ["--set", "workdir=%s/var" % self.dir,
                     "--set", "registry.url=%s/registry.db" % self.dir,
                     "--set", "serve.jwt_secret_file=%s/jwt.secret" % self.dir,
                     "--set", "serve.pseudonym_key_file=%s/pseudonym.key" % self.dir,
                     "--set", "serve.access_log=%s/access.log" % self.dir,
                     "--set", "serve.reload_ms=100"]

    def churn(self, *args, stdin=None, check=True):
        sets = self.sets if args[0] != "simulate" else []
        p = subprocess.run([CHURN, *args, *sets], input=stdin, capture_output=True,
                           text=True)
        if check and p.returncode != 0:
            raise RuntimeError("churn %s: exit %d: %s" % (" ".join(args), p.returncode,
                                                          p.stderr[-800:]))
        return p

    def train(self, rows=2000, seed=11, families="logreg"):
        data = os.path.join(self.dir, "train-%d.csv" % seed)
        self.churn("simulate", "--rows", str(rows), "--seed", str(seed), "-o", data)
        self.churn("train", "--data", data, "--set", "train.families=" + families,
                   "--set", "train.folds=2")
        return data

    def add_users(self):
        for role, pw in PASSWORDS.items():
            self.churn("users", "add", role + "1", "--role", role, stdin=pw + "\n")

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)


class Server:
    def __init__(self, ws, *extra):
        self.ws = ws
        self.log_path = os.path.join(ws.dir, "serve-%d.log" % time.time_ns())
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen([CHURN, "serve", "--port", "0", *ws.sets, *extra],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        self.port = None
        deadline = time.time() + 15
        while time.time() < deadline and self.port is None:
            with open(self.log_path) as f:
                m = re.search(r"listening on http://127\.0\.0\.1:(\d+)/", f.read())
            if m:
                self.port = int(m.group(1))
            elif self.proc.poll() is not None:
                break
            else:
                time.sleep(0.02)
        if self.port is None:
            raise RuntimeError("server did not start: " + self.output())

    def output(self):
        with open(self.log_path) as f:
            return f.read()

    def request(self, method, path, body=None, token=None, ctype="application/json",
                headers=None, raw=None):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        h = dict(headers or {})
        if token:
            h["Authorization"] = "Bearer " + token
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
        if data is not None and ctype:
            h["Content-Type"] = ctype
        c.request(method, path, body=data, headers=h)
        r = c.getresponse()
        text = r.read()
        c.close()
        try:
            doc = json.loads(text) if text else None
        except ValueError:
            doc = text.decode(errors="replace")
        return r.status, doc, dict(r.getheaders())

    def raw(self, data, read_timeout=10):
        """Sends 'data' as is on a new connection; returns (status, JSON body) of
        the first response (the connection may be closed by the server while
        sending, as it is for a refused oversized body)."""
        import socket
        sk = socket.create_connection(("127.0.0.1", self.port), timeout=read_timeout)
        try:
            sk.sendall(data)
        except OSError:
            pass
        buf = b""
        try:
            while b"\r\n\r\n" not in buf or len(buf.split(b"\r\n\r\n", 1)[1]) < \
                    int(re.search(rb"Content-Length: (\d+)", buf, re.I).group(1)):
                chunk = sk.recv(65536)
                if not chunk:
                    break
                buf += chunk
        except (OSError, AttributeError):
            pass
        sk.close()
        m = re.match(rb"HTTP/1\.[01] (\d+)", buf)
        body = buf.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in buf else b""
        try:
            doc = json.loads(body)
        except ValueError:
            doc = body
        return (int(m.group(1)) if m else 0), doc

    def token(self, role):
        st, doc, _ = self.request("POST", "/v1/auth/token",
                                  {"username": role + "1", "password": PASSWORDS[role]})
        if st != 200:
            raise RuntimeError("token for %s: %s %s" % (role, st, doc))
        return doc["access_token"]

    def stop(self, sig=signal.SIGTERM, timeout=15):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode


def customers(path, n):
    """The first 'n' rows of a simulated CSV as JSON objects with typed values."""
    out = []
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            obj = {}
            for k, v in row.items():
                if k == "Churn":
                    continue
                if k in ("tenure", "SeniorCitizen"):
                    obj[k] = int(v)
                elif k in ("MonthlyCharges", "TotalCharges"):
                    obj[k] = float(v) if v.strip() else None
                else:
                    obj[k] = v
            out.append(obj)
            if len(out) == n:
                break
    return out


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hs256(secret, claims, header=None):
    """A token signed with HMAC-SHA256 (or any header the caller gives)."""
    h = header or {"alg": "HS256", "typ": "JWT"}
    signing = b64(json.dumps(h).encode()) + "." + b64(json.dumps(claims).encode())
    sig = hmac.new(secret, signing.encode(), hashlib.sha256).digest()
    return signing + "." + b64(sig)
