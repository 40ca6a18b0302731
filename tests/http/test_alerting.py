"""The shipped alert rules (deploy/prometheus/churn.rules.yml) in a real
Prometheus scraping a real `churn serve`, alerting to a real Alertmanager
(harness in alerting.py): the rules load healthy, and prediction log drops
provoked with a 16-record queue make ChurnPredictionLogDrops active at
Alertmanager's API and reach its webhook receiver.
"""
import http.server
import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from alerting import Alertmanager, Prometheus, missing_binaries, zero_for  # noqa: E402
from common import ROOT, Server, Suite, Workspace, customers  # noqa: E402

t = Suite("http_alerting")
missing = missing_binaries()
if missing:
    t.check("Prometheus and Alertmanager are installed", False, missing)
    t.finish()

RULES = os.path.join(ROOT, "deploy", "prometheus", "churn.rules.yml")


class Hook(http.server.BaseHTTPRequestHandler):
    """Collects the JSON bodies Alertmanager posts."""
    received = []

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        try:
            Hook.received.append(json.loads(self.rfile.read(n)))
        except ValueError:
            pass
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def metric(srv, name):
    st, text, _ = srv.request("GET", "/metrics")
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    return None


t0 = time.time()
ws = Workspace()
srv = am = prom = hook = None
try:
    with open(RULES) as f:
        shipped = f.read()
    n_rules = sum(1 for line in shipped.splitlines()
                  if line.lstrip().startswith(("- alert:", "- record:")))
    # The copy Prometheus loads has every `for:` at 0s, so an alert fires at
    # the first evaluation that sees its condition instead of minutes later;
    # the expressions, labels and annotations are the shipped ones.
    rules = os.path.join(ws.dir, "churn.rules.yml")
    with open(rules, "w") as f:
        f.write(zero_for(shipped))

    data = ws.train(rows=1500, seed=41)
    ws.churn("users", "add", "service1", "--role", "service", stdin="service-pass-1\n")
    people = customers(data, 500)
    srv = Server(ws, "--set", "serve.log_queue=16")
    tok = srv.token("service")

    hook = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    am = Alertmanager(ws.dir, webhook_url="http://127.0.0.1:%d/hook" % hook.server_port).start()
    prom = Prometheus(ws.dir, "127.0.0.1:%d" % srv.port, rules, am, interval="1s").start()

    loaded = prom.wait_rules_healthy(n_rules, timeout=15)
    names = {r["name"] for r in loaded if r["type"] == "alerting"}
    t.check("Prometheus loaded all %d shipped rules, every one evaluated with health ok"
            % n_rules, len(loaded) == n_rules, [r["name"] for r in loaded])
    t.check("the alerts include ChurnPredictionLogDrops and ChurnHighErrorRate, all with for: 0s",
            {"ChurnPredictionLogDrops", "ChurnHighErrorRate"} <= names
            and all(r.get("duration") == 0 for r in loaded if r["type"] == "alerting"),
            sorted((r["name"], r.get("duration")) for r in loaded if r["type"] == "alerting"))

    # Drops must come after a scrape that saw the counter at 0, or increase()
    # has nothing to compare them with.
    before = prom.wait_scraped('churn_prediction_log_dropped_total == 0', timeout=15)
    t.check("Prometheus scraped churn_prediction_log_dropped_total at 0 before the flood",
            len(before) == 1, before)

    # Flood from two threads with batches: each enqueues 500 records at once
    # into a queue of 16 that the writer drains in transactions.
    errors = []

    def flood():
        try:
            for _ in range(4):
                st, _, _ = srv.request("POST", "/v1/predict/batch?k=0", people, token=tok)
                if st != 200:
                    errors.append(st)
                if (metric(srv, "churn_prediction_log_dropped_total") or 0) > 0:
                    return
        except OSError as e:
            errors.append(str(e))

    threads = [threading.Thread(target=flood) for _ in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(30)
    dropped = metric(srv, "churn_prediction_log_dropped_total") or 0
    t.check("the flood dropped predictions (%d), every batch answered 200" % dropped,
            dropped > 0 and not errors, (dropped, errors))

    try:
        alert = am.wait_alert("ChurnPredictionLogDrops", timeout=20)
    except TimeoutError as e:
        alert = None
        t.check("ChurnPredictionLogDrops becomes active at Alertmanager", False,
                "%s\n%s" % (e, prom.output()[-600:]))
    if alert is not None:
        lab, ann = alert["labels"], alert["annotations"]
        t.check("ChurnPredictionLogDrops becomes active at Alertmanager "
                "(%.1f s after start)" % (time.time() - t0), True)
        t.check("its labels: severity warning, the scraped instance and job",
                lab.get("severity") == "warning" and lab.get("job") == "churn"
                and lab.get("instance") == "127.0.0.1:%d" % srv.port, lab)
        t.check("its summary carries the templated count and instance",
                "predictions dropped from the prediction log in 5m on 127.0.0.1:%d" % srv.port
                in ann.get("summary", "") and ann["summary"].split()[0].isdigit()
                and int(ann["summary"].split()[0]) > 0, ann)
        t.check("its description says what to do", "serve.log_queue" in ann.get("description", ""),
                ann)

    deadline = time.time() + (10 if alert is not None else 0)
    got = []
    while not got:
        got = [a for n in list(Hook.received) for a in n.get("alerts", [])
               if a.get("labels", {}).get("alertname") == "ChurnPredictionLogDrops"
               and a.get("status") == "firing"]
        if time.time() >= deadline:
            break
        time.sleep(0.2)
    t.check("Alertmanager posted the firing alert to its webhook receiver", bool(got),
            Hook.received[-1:])

    t.check("no 5xx, so ChurnHighErrorRate is not active", am.active("ChurnHighErrorRate") == [],
            am.active("ChurnHighErrorRate"))
finally:
    for d in (prom, am):
        if d is not None:
            d.stop()
    if hook is not None:
        hook.shutdown()
        hook.server_close()
    if srv is not None:
        srv.stop()
    ws.cleanup()
print("    took %.1f s" % (time.time() - t0))
t.finish()
