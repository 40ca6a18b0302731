"""Harness for alerting tests: a real Alertmanager and a real Prometheus
(the Debian packages prometheus-alertmanager and prometheus) on 127.0.0.1
with ephemeral ports and temporary storage, Prometheus evaluating a given
rule file every second against a given scrape target and sending its
alerts to that Alertmanager.

    with Alertmanager(tmpdir) as am, \\
            Prometheus(tmpdir, "127.0.0.1:%d" % srv.port, rules_path, am) as prom:
        prom.wait_rules_healthy(15)
        prom.wait_scraped("churn_prediction_log_dropped_total")
        ...
        alert = am.wait_alert("ChurnPredictionLogDrops", timeout=20)

Every wait is bounded and raises TimeoutError with the process's log
tail. stop() (also on leaving the with block, and when start-up fails)
terminates the process and kills it after a timeout. Nothing listens
beyond loopback: Alertmanager's cluster port is switched off.
"""
import json
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
ALERTMANAGER = "/usr/bin/prometheus-alertmanager"


def missing_binaries():
    """The binaries this harness needs that are not installed, with their
    Debian packages, as a message; "" when both are present."""
    out = []
    if not os.access(PROMETHEUS, os.X_OK):
        out.append("%s (Debian package prometheus)" % PROMETHEUS)
    if not os.access(ALERTMANAGER, os.X_OK):
        out.append("%s (Debian package prometheus-alertmanager)" % ALERTMANAGER)
    if not out:
        return ""
    return "not installed: " + ", ".join(out) + "; scripts/install-deps installs them"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def zero_for(rules_text):
    """'rules_text' with every `for:` duration set to 0s, so that alerts fire
    at the first evaluation that finds their condition true."""
    return re.sub(r"(?m)^(\s*)for:\s*\S+\s*$", r"\1for: 0s", rules_text)


def http_json(url, timeout=2, data=None):
    req = urllib.request.Request(url, data=data,
                                 headers={"Content-Type": "application/json"} if data else {})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.load(r)


class _Daemon:
    """A child process serving HTTP on 127.0.0.1:'port', with its output in
    'log_path'. Subclasses set 'name' and build the argument list."""

    name = "daemon"
    start_timeout = 20

    def __init__(self, workdir):
        self.workdir = workdir
        self.proc = None
        self.port = None
        self.log = None
        self.log_path = None

    def _args(self):
        raise NotImplementedError

    def start(self):
        # A port picked by free_port() can be taken before the child binds it;
        # a child that exits at once is retried on a new port.
        for attempt in range(3):
            self.port = free_port()
            self.log_path = os.path.join(self.workdir, "%s-%d.log" % (self.name, self.port))
            self.log = open(self.log_path, "w")
            self.proc = subprocess.Popen(self._args(), stdout=self.log,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            try:
                self._wait_ready()
                return self
            except RuntimeError:
                self.stop()
                if attempt == 2 or "address already in use" not in self.output():
                    raise
        return self

    def _wait_ready(self):
        deadline = time.time() + self.start_timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("%s exited with %d: %s" % (self.name, self.proc.returncode,
                                                              self.output()[-1500:]))
            try:
                with urllib.request.urlopen(self.url("/-/ready"), timeout=1) as r:
                    if r.status == 200:
                        return
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.1)
        raise RuntimeError("%s not ready after %d s: %s" % (self.name, self.start_timeout,
                                                           self.output()[-1500:]))

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def output(self):
        if self.log_path is None or not os.path.exists(self.log_path):
            return ""
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def stop(self, timeout=10):
        """Terminates the process, kills it after 'timeout' seconds; safe to call
        more than once and before start()."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.log is not None:
            self.log.close()
            self.log = None
        return None if self.proc is None else self.proc.returncode

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False


class Alertmanager(_Daemon):
    """A real Alertmanager with a generated configuration: one route to a
    receiver that sends nothing, or posts to 'webhook_url' when given
    (group_wait 1s, so a notification follows an alert within seconds)."""

    name = "alertmanager"

    def __init__(self, workdir, webhook_url=None):
        super().__init__(workdir)
        self.webhook_url = webhook_url

    def _args(self):
        d = os.path.join(self.workdir, "alertmanager-%d" % self.port)
        os.makedirs(d, exist_ok=True)
        cfg = os.path.join(d, "alertmanager.yml")
        with open(cfg, "w") as f:
            f.write("route:\n  receiver: test\n  group_by: [alertname]\n"
                    "  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 1h\n"
                    "receivers:\n  - name: test\n")
            if self.webhook_url:
                f.write("    webhook_configs:\n      - url: '%s'\n        send_resolved: true\n"
                        % self.webhook_url)
        return [ALERTMANAGER, "--config.file=" + cfg, "--storage.path=" + d,
                "--web.listen-address=127.0.0.1:%d" % self.port,
                # No HA gossip: it would listen on 0.0.0.0:9094.
                "--cluster.listen-address="]

    def alerts(self):
        """The active alerts (not silenced, not inhibited) from API v2, as
        returned: dicts with labels, annotations, status, startsAt, ..."""
        q = urllib.parse.urlencode({"active": "true", "silenced": "false",
                                    "inhibited": "false", "unprocessed": "false"})
        return http_json(self.url("/api/v2/alerts?" + q))

    def active(self, name):
        """The active alerts named 'name' (possibly none)."""
        return [a for a in self.alerts()
                if a.get("labels", {}).get("alertname") == name
                and a.get("status", {}).get("state") == "active"]

    def wait_alert(self, name, timeout=20):
        """Polls GET /api/v2/alerts until an alert named 'name' is active;
        returns {"labels": ..., "annotations": ...} of the first one. Raises
        TimeoutError after 'timeout' seconds."""
        deadline = time.time() + timeout
        seen = []
        while time.time() < deadline:
            try:
                hits = self.active(name)
                if hits:
                    return {"labels": hits[0]["labels"],
                            "annotations": hits[0].get("annotations", {})}
                seen = sorted({a["labels"].get("alertname", "?") for a in self.alerts()})
            except (OSError, ValueError, KeyError):
                pass
            time.sleep(0.2)
        raise TimeoutError("alert %s not active at Alertmanager after %d s (active: %s)"
                           % (name, timeout, ", ".join(seen) or "none"))


class Prometheus(_Daemon):
    """A real Prometheus scraping 'target' ("host:port", path /metrics) and
    evaluating the rule file 'rules_path' every 'interval', alerting to
    'alertmanager' (an Alertmanager, or None)."""

    name = "prometheus"

    def __init__(self, workdir, target, rules_path, alertmanager=None, interval="1s"):
        super().__init__(workdir)
        self.target = target
        self.rules_path = os.path.abspath(rules_path)
        self.alertmanager = alertmanager
        self.interval = interval

    def _args(self):
        d = os.path.join(self.workdir, "prometheus-%d" % self.port)
        os.makedirs(d, exist_ok=True)
        cfg = os.path.join(d, "prometheus.yml")
        with open(cfg, "w") as f:
            f.write("global:\n  scrape_interval: %s\n  evaluation_interval: %s\n"
                    % (self.interval, self.interval))
            f.write("rule_files:\n  - '%s'\n" % self.rules_path)
            if self.alertmanager is not None:
                f.write("alerting:\n  alertmanagers:\n    - static_configs:\n"
                        "        - targets: ['127.0.0.1:%d']\n" % self.alertmanager.port)
            f.write("scrape_configs:\n  - job_name: churn\n    static_configs:\n"
                    "      - targets: ['%s']\n" % self.target)
        return [PROMETHEUS, "--config.file=" + cfg,
                "--storage.tsdb.path=" + os.path.join(d, "tsdb"),
                "--web.listen-address=127.0.0.1:%d" % self.port]

    def query(self, expr):
        """The result list of an instant query (vector results)."""
        q = urllib.parse.urlencode({"query": expr})
        doc = http_json(self.url("/api/v1/query?" + q))
        return doc["data"]["result"]

    def rules(self):
        """Every rule Prometheus has loaded, flattened over groups: dicts with
        name, type ("alerting" or "recording"), health, lastError, group."""
        doc = http_json(self.url("/api/v1/rules"))
        out = []
        for g in doc["data"]["groups"]:
            for r in g["rules"]:
                out.append(dict(r, group=g["name"]))
        return out

    def wait_rules_healthy(self, expected, timeout=15):
        """Polls GET /api/v1/rules until 'expected' rules are loaded and every
        one has been evaluated with health "ok"; returns them. Raises
        TimeoutError with the rules not yet ok."""
        deadline = time.time() + timeout
        rules = []
        while time.time() < deadline:
            try:
                rules = self.rules()
                if len(rules) == expected and all(r.get("health") == "ok" for r in rules):
                    return rules
            except (OSError, ValueError, KeyError):
                pass
            time.sleep(0.2)
        bad = ["%s=%s %s" % (r.get("name"), r.get("health"), r.get("lastError", ""))
               for r in rules if r.get("health") != "ok"]
        raise TimeoutError("%d of %d rules loaded after %d s; not ok: %s"
                           % (len(rules), expected, timeout, "; ".join(bad) or "none"))

    def wait_scraped(self, expr, timeout=15):
        """Polls until the instant query 'expr' returns a sample (so the target
        has been scraped); returns the result list."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                res = self.query(expr)
                if res:
                    return res
            except (OSError, ValueError, KeyError):
                pass
            time.sleep(0.2)
        raise TimeoutError("no sample of %s after %d s" % (expr, timeout))
