"""Monitoring inside `churn serve`, end to end: a price-rise drift scenario
goes through the real server with delayed feedback labels; the scheduler
(monitor.interval_s=1) measures it off the request path; the results come
back from GET /v1/monitor/{drift,decay,estimate} (with history from the
store), as gauges on /metrics, and agree with `churn monitor` run over
the same log; a failing job is counted and survived; and the shipped
alert rules, loaded by a real Prometheus, make ChurnFeatureDrift active
at a real Alertmanager.
"""
import csv
import json
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from alerting import Alertmanager, Prometheus, missing_binaries, zero_for  # noqa: E402
from common import CHURN, PASSWORDS, ROOT, Server, Suite, Workspace, customers  # noqa: E402

t = Suite("http_monitor")


def metric_lines(srv, name):
    st, text, _ = srv.request("GET", "/metrics")
    return [ln for ln in text.splitlines() if ln.startswith(name + "{") or ln.startswith(name + " ")]


def metric_value(srv, name, label=None):
    for ln in metric_lines(srv, name):
        if label is None or label in ln:
            return float(ln.rsplit(" ", 1)[1])
    return None


def wait_result(srv, tok, kind, after, timeout=30):
    """The latest result of 'kind' computed at or after 'after' (ISO text)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        st, doc, _ = srv.request("GET", "/v1/monitor/" + kind, token=tok)
        if st == 200 and doc["computed_at"] >= after:
            return doc
        time.sleep(0.2)
    raise TimeoutError("no %s result after %s: %s" % (kind, after, (st, doc)))


def utc_now():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time()))


ws = Workspace()
srv = am = prom = None
try:
    ws.train(rows=3000, seed=21)
    ws.add_users()
    drifted = os.path.join(ws.dir, "price.csv")
    ws.churn("simulate", "--rows", "1200", "--seed", "22", "--drift", "price", "-o", drifted)
    people = customers(drifted, 1200)
    with open(drifted, newline="") as f:
        labels = [row["Churn"] == "Yes" for row in csv.DictReader(f)]
    srv = Server(ws, "--set", "monitor.interval_s=1", "--set", "monitor.min_rows=100",
                 "--set", "monitor.min_labels=100")
    svc, sci, ana = srv.token("service"), srv.token("scientist"), srv.token("analyst")

    st, doc, _ = srv.request("GET", "/v1/monitor/drift", token=ana)
    t.check("before any job: 404 with a reason", st == 404 and "first job" in doc["message"]
            or st == 200, (st, doc))

    # Serve the drifted customers, then report what 600 of them did.
    ids = []
    for i in range(0, len(people), 200):
        st, doc, _ = srv.request("POST", "/v1/predict/batch?k=0", people[i:i + 200], token=svc)
        if st != 200:
            raise RuntimeError("batch: %s %s" % (st, doc))
        ids += [p["prediction_id"] for p in doc["predictions"]]
    t.check("1200 drifted customers served", len(ids) == 1200, len(ids))
    for pid, churned in list(zip(ids, labels))[:600]:
        st, doc, _ = srv.request("POST", "/v1/feedback", {"prediction_id": pid, "churned": churned,
                                                         "observed_date": "2026-12-01"}, token=svc)
        if st != 201 and st != 200:
            raise RuntimeError("feedback: %s %s" % (st, doc))

    time.sleep(1.1)  # results are timed to the second: start after the last feedback
    start = utc_now()
    st, doc, _ = srv.request("POST", "/v1/monitor/run", token=sci)
    t.check("POST /v1/monitor/run starts a job (202)", st == 202, (st, doc))
    st, doc, _ = srv.request("POST", "/v1/monitor/run", token=ana)
    t.check("an analyst may not start one (403)", st == 403, (st, doc))
    drift = None
    deadline = time.time() + 30
    while time.time() < deadline:
        drift = wait_result(srv, ana, "drift", start)
        decay = wait_result(srv, ana, "decay", start)
        v1 = [v for v in decay["result"]["versions"] if v["version"] == 1][0]["result"]
        if drift["predictions"] >= 1200 and v1["labels"] >= 600:
            break
        time.sleep(0.3)
    cols = {c["name"]: c for c in drift["result"]["columns"]}
    t.check("drift over the served window: %d predictions, model v%d"
            % (drift["predictions"], drift["model_version"]),
            drift["predictions"] == 1200 and drift["model_version"] == 1, drift["predictions"])
    t.check("MonthlyCharges drifted (PSI %.3f)" % cols["MonthlyCharges"]["psi"],
            cols["MonthlyCharges"]["status"] == "drift" and cols["MonthlyCharges"]["psi"] > 0.25,
            cols["MonthlyCharges"])
    calm = [n for n, c in cols.items() if c["status"] == "drift" and n != "MonthlyCharges"]
    t.check("no column outside the scenario drifted", calm == [], calm)
    t.check("the inputs were read from the log: every column counted every row",
            all(c["rows"] == 1200 for c in cols.values()), {n: c["rows"] for n, c in cols.items()})

    t.check("decay: 600 labels joined to their predictions", v1["labels"] == 600, v1["labels"])
    auc = v1["metrics"]["roc_auc"]
    t.check("decay: realized ROC AUC %.3f in [%.3f, %.3f]" % (auc["value"], auc["lo"], auc["hi"]),
            auc["lo"] <= auc["value"] <= auc["hi"] and auc["value"] > 0.7, auc)
    est = wait_result(srv, ana, "estimate", start)
    e1 = [v for v in est["result"]["versions"] if v["version"] == 1][0]["result"]
    gap = e1["realized"]["gap"]
    t.check("estimate: %.3f, tracks the realized AUC (gap %+.3f), diagnosis %s"
            % (e1["estimated"]["roc_auc"], gap, e1["diagnosis"]),
            abs(gap) < 0.05 and e1["diagnosis"] == "covariate_shift", e1)

    st, hist, _ = srv.request("GET", "/v1/monitor/drift?history=5", token=ana)
    t.check("history from the store, newest first", st == 200 and len(hist) >= 1 and
            hist[0]["kind"] == "drift" and "columns" in hist[0]["result"] and
            (len(hist) < 2 or hist[0]["id"] > hist[1]["id"]), (st, hist[:1]))
    st, doc, _ = srv.request("GET", "/v1/monitor/drift?history=0", token=ana)
    t.check("history=0 is refused (400)", st == 400, (st, doc))
    st, doc, _ = srv.request("GET", "/v1/monitor/nonsense", token=ana)
    t.check("an unknown kind is 404", st == 404, (st, doc))

    psi = metric_value(srv, "churn_feature_drift_psi", 'feature="MonthlyCharges"')
    t.check("gauge churn_feature_drift_psi{feature=MonthlyCharges} = %.3f" % (psi or -1),
            psi is not None and abs(psi - cols["MonthlyCharges"]["psi"]) < 1e-12, psi)
    t.check("gauge churn_feature_drift_alert is 1 for it",
            metric_value(srv, "churn_feature_drift_alert", 'feature="MonthlyCharges"') == 1)
    t.check("estimated, realized and reference AUC and the label count are exported",
            all(metric_value(srv, n, 'model_version="1"') is not None for n in
                ("churn_estimated_roc_auc", "churn_realized_roc_auc", "churn_reference_roc_auc",
                 "churn_feedback_labels")))
    t.check("runs counted, failures exported at 0 from the start",
            (metric_value(srv, "churn_monitor_runs_total", 'result="ok"') or 0) >= 1 and
            metric_value(srv, "churn_monitor_runs_total", 'result="failed"') is not None)
    last = metric_value(srv, "churn_monitor_last_success_timestamp_seconds", 'monitor="drift"')
    t.check("last success timestamp is recent", last is not None and abs(time.time() - last) < 60,
            last)
    st, text, _ = srv.request("GET", "/metrics")
    if shutil.which("promtool"):
        p = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                           text=True)
        t.check("promtool check metrics passes with the monitoring gauges", p.returncode == 0,
                p.stdout + p.stderr)

    # The CLI reads the same log with the same code.
    p = ws.churn("monitor", "drift", "--json", "--window", "1200")
    cli = {c["name"]: c for c in json.loads(p.stdout)["columns"]}
    t.check("churn monitor drift over the log gives the server's PSI",
            abs(cli["MonthlyCharges"]["psi"] - cols["MonthlyCharges"]["psi"]) < 1e-12,
            (cli["MonthlyCharges"]["psi"], cols["MonthlyCharges"]["psi"]))
    report = os.path.join(ws.dir, "report.html")
    ws.churn("monitor", "report", "-o", report)
    html = open(report).read()
    t.check("churn monitor report writes a self-contained page",
            html.startswith("<!DOCTYPE html>") and "<svg" in html and "<script" not in html
            and "MonthlyCharges" in html, len(html))

    # A second version takes over: one window then spans both, each
    # measured against its own training reference.
    ws.train(rows=3000, seed=23)
    ws.churn("models", "promote", "2", "--force", "--reason", "second model")
    deadline = time.time() + 10
    while time.time() < deadline:
        st, doc, _ = srv.request("GET", "/readyz")
        if doc["model"]["version"] == 2:
            break
        time.sleep(0.1)
    for i in range(0, 400, 200):
        srv.request("POST", "/v1/predict/batch?k=0", people[i:i + 200], token=svc)
    time.sleep(1.1)
    start2 = utc_now()
    srv.request("POST", "/v1/monitor/run", token=sci)
    deadline = time.time() + 30
    while time.time() < deadline:
        est2 = wait_result(srv, ana, "estimate", start2)
        vs = {v["version"]: v for v in est2["result"]["versions"]}
        if est2["model_version"] == 2 and vs.get(2, {}).get("rows", 0) >= 400:
            break
        time.sleep(0.3)
    t.check("after a promotion the window holds both versions, drift measured for v2",
            est2["model_version"] == 2 and vs[1]["rows"] == 1200 and vs[2]["rows"] == 400
            and "result" in vs[1] and "result" in vs[2], {k: v["rows"] for k, v in vs.items()})
    t.check("each version judged against its own reference",
            vs[1]["result"]["reference_roc_auc"] != vs[2]["result"]["reference_roc_auc"],
            (vs[1]["result"]["reference_roc_auc"], vs[2]["result"]["reference_roc_auc"]))

    # A failing job is logged and counted; the server keeps serving and the
    # next job runs again once the cause is gone.
    bundle = os.path.join(ws.dir, "var", "runs", "2", "bundle.json")
    os.rename(bundle, bundle + ".away")
    failed0 = metric_value(srv, "churn_monitor_runs_total", 'result="failed"') or 0
    srv.request("POST", "/v1/monitor/run", token=sci)
    deadline = time.time() + 20
    while time.time() < deadline and \
            (metric_value(srv, "churn_monitor_runs_total", 'result="failed"') or 0) <= failed0:
        time.sleep(0.2)
    t.check("a failing job is counted",
            (metric_value(srv, "churn_monitor_runs_total", 'result="failed"') or 0) > failed0)
    st, doc, _ = srv.request("POST", "/v1/predict", people[0], token=svc)
    t.check("the server keeps serving while jobs fail", st == 200, (st, doc))
    t.check("the failure is in the server log", "monitoring job failed" in srv.output(),
            srv.output()[-400:])
    os.rename(bundle + ".away", bundle)
    ok0 = metric_value(srv, "churn_monitor_runs_total", 'result="ok"')
    srv.request("POST", "/v1/monitor/run", token=sci)
    deadline = time.time() + 20
    while time.time() < deadline and metric_value(srv, "churn_monitor_runs_total",
                                                  'result="ok"') <= ok0:
        time.sleep(0.2)
    t.check("the next job succeeds again",
            metric_value(srv, "churn_monitor_runs_total", 'result="ok"') > ok0)

    # The shipped rules in a real Prometheus fire at a real Alertmanager.
    missing = missing_binaries()
    if missing:
        t.check("Prometheus and Alertmanager are installed", False, missing)
    else:
        rules = os.path.join(ws.dir, "churn.rules.yml")
        with open(os.path.join(ROOT, "deploy", "prometheus", "churn.rules.yml")) as f:
            shipped = f.read()
        with open(rules, "w") as f:
            f.write(zero_for(shipped))  # every for: at 0s, so the test need not wait minutes
        am = Alertmanager(ws.dir).start()
        prom = Prometheus(ws.dir, "127.0.0.1:%d" % srv.port, rules, am, interval="1s").start()
        try:
            alert = am.wait_alert("ChurnFeatureDrift", timeout=30)
            sev = sorted(a["labels"]["severity"] for a in am.alerts()
                         if a["labels"]["alertname"] == "ChurnFeatureDrift"
                         and a["labels"].get("feature") == "MonthlyCharges")
            t.check("ChurnFeatureDrift fires at Alertmanager for MonthlyCharges (%s)"
                    % ", ".join(sev), "critical" in sev, am.alerts())
            t.check("ChurnFeatureDriftDetected fires too",
                    am.wait_alert("ChurnFeatureDriftDetected", timeout=20) is not None)
            calm = [a["labels"].get("feature") for a in am.alerts()
                    if a["labels"]["alertname"] == "ChurnFeatureDrift"
                    and a["labels"]["severity"] == "critical"
                    and a["labels"].get("feature") != "MonthlyCharges"]
            t.check("no critical drift alert for another column", calm == [], calm)
        except TimeoutError as e:
            t.check("ChurnFeatureDrift fires at Alertmanager", False,
                    "%s\n%s" % (e, prom.output()[-600:]))
except Exception as e:  # a broken step is a failure with its cause
    t.check("monitoring end to end", False, "%s: %s" % (type(e).__name__, e))
finally:
    for d in (prom, am):
        if d is not None:
            d.stop()
    if srv is not None:
        srv.stop()
    ws.cleanup()
t.finish()
