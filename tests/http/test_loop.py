"""The closed loop, end to end, with nobody at the controls: a champion
serves simulated customers whose behaviour changes (the simulator's
`concept` scenario: same customers, but contracts no longer hold them),
their outcomes come back as feedback, and the server by itself

  1. sees the labels fall short of what the scores promise (monitoring's
     concept-drift diagnosis),
  2. queues and runs a retraining job on the feedback labels,
  3. registers the result as challenger because it beats the champion at
     the gate,
  4. canaries it through 5% -> 25% -> 100% with every gate passing, and
     promotes it;

then a deliberately broken candidate (trained on shuffled labels) is
rolled back at its first step by the realized-AUC gate (labels come
back within seconds here, so every step waits for them). Every client request
succeeds throughout, every step is in the audit chain, and `churn audit
verify` holds. The timeline is printed; bench/loop.sh runs the same with
larger numbers (CHURN_LOOP_SCALE) and docs/rollout.md quotes it.
"""
import csv
import json
import os
import random
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import Server, Suite, Workspace  # noqa: E402

SCALE = float(os.environ.get("CHURN_LOOP_SCALE", "1"))
BATCH = 200
t = Suite("http_loop")
t0 = time.time()
timeline = []


def mark(what):
    timeline.append((time.time() - t0, what))
    print("    %6.1f s  %s" % (time.time() - t0, what))


def rows(path):
    out = []
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            churned = row.pop("Churn") == "Yes"
            for k in ("tenure", "SeniorCitizen"):
                row[k] = int(row[k])
            for k in ("MonthlyCharges", "TotalCharges"):
                row[k] = float(row[k]) if row[k].strip() else None
            out.append((row, churned))
    return out


class Traffic:
    """Streams customers through the batch route and reports each
    outcome as feedback right after; counts every non-2xx answer."""

    def __init__(self, srv, tok, customers):
        self.srv, self.tok, self.customers = srv, tok, customers
        self.i = 0
        self.sent = self.failed = 0
        self.arms = {}
        self.stop = False
        self.errors = []
        self.lat = []  # seconds per batch request
        self.th = threading.Thread(target=self.run, daemon=True)

    def run(self):
        while not self.stop and self.i < len(self.customers):
            chunk = self.customers[self.i:self.i + BATCH]
            self.i += BATCH
            try:
                t1 = time.time()
                st, doc, _ = self.srv.request("POST", "/v1/predict/batch?k=0",
                                              [c for c, _ in chunk], token=self.tok)
                self.lat.append(time.time() - t1)
            except OSError as e:
                self.failed += len(chunk)
                self.errors.append(str(e))
                continue
            if st != 200:
                self.failed += len(chunk)
                self.errors.append((st, doc))
                continue
            self.sent += len(chunk)
            for p, (_, churned) in zip(doc["predictions"], chunk):
                self.arms[p["arm"]] = self.arms.get(p["arm"], 0) + 1
                st, d, _ = self.srv.request("POST", "/v1/feedback", {
                    "prediction_id": p["prediction_id"], "churned": churned,
                    "observed_date": "2026-12-01"}, token=self.tok)
                if st not in (200, 201):
                    self.failed += 1
                    self.errors.append((st, d))


def wait_for(what, fn, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(0.5)
    return None


ws = Workspace()
srv = traffic = None
try:
    n_train = int(5000 * SCALE)
    n_live = int(40000 * SCALE)
    ref = os.path.join(ws.dir, "reference.csv")
    live = os.path.join(ws.dir, "concept.csv")
    ws.churn("simulate", "--rows", str(n_train), "--seed", "1", "-o", ref)
    ws.churn("simulate", "--rows", str(n_live), "--seed", "2", "--drift", "concept",
             "--id-offset", str(n_train), "-o", live)
    fast = ["--set", "train.families=logreg", "--set", "train.folds=3"]
    ws.churn("train", "--data", ref, *fast)
    mark("champion v1 trained on %d reference customers" % n_train)
    ws.add_users()
    customers = rows(live)
    srv = Server(ws, *fast,
                 "--set", "monitor.interval_s=2", "--set", "monitor.window=%d" % int(20000 * SCALE),
                 "--set", "monitor.min_labels=2000",
                 "--set", "retrain.signals=concept,decay", "--set", "retrain.cooldown_s=3600",
                 "--set", "retrain.base_data=none", "--set", "retrain.min_labels=10000",
                 "--set", "retrain.margin=0", "--set", "retrain.labels_window=1d",
                 "--set", "rollout.eval_s=1", "--set", "rollout.min_requests=150",
                 "--set", "rollout.min_seconds=3", "--set", "rollout.min_labels=100",
                 "--set", "rollout.require_labels=1",
                 "--set", "rollout.steps=5,25,100")
    svc, sci = srv.token("service"), srv.token("scientist")
    traffic = Traffic(srv, svc, customers)
    traffic.th.start()
    mark("serving; concept-drift traffic with feedback starts")

    def diagnosis():
        st, doc, _ = srv.request("GET", "/v1/monitor/estimate", token=sci)
        if st != 200:
            return None
        for v in doc["result"]["versions"]:
            r = v.get("result") or {}
            if v["version"] == 1 and r.get("diagnosis") == "concept_drift":
                return r
        return None

    d = wait_for("concept drift", diagnosis, 240 * SCALE)
    t.check("monitoring diagnoses concept drift by itself", d is not None)
    if d:
        mark("monitoring: concept drift (estimated %.3f, realized %.3f on %d labels)"
             % (d["realized"]["estimated_on_labelled"]["roc_auc"], d["realized"]["roc_auc"]["value"],
                d["realized"]["labels"]))

    def job_done():
        st, jobs, _ = srv.request("GET", "/v1/jobs", token=sci)
        for j in jobs if st == 200 else []:
            if j["status"] in ("succeeded", "failed", "interrupted", "cancelled"):
                return j
        return None

    job = wait_for("retrain job", job_done, 240 * SCALE)
    t.check("a retraining job ran by itself (trigger %s) and succeeded"
            % (job or {}).get("trigger"), job is not None and job["status"] == "succeeded",
            job)
    if job and job["status"] == "succeeded":
        res = job["result"]
        mark("retrain job %d (%s): v%s, %.4f vs champion %.4f on %d label rows"
             % (job["id"], job["trigger"], res["version"], res["candidate_auc"],
                res["champion_auc"], res["label_rows"]))
        t.check("the retrained model passed the gate and was registered",
                res["version"] == 2 and res.get("rollout") is not None, res)

    def promoted():
        st, rs, _ = srv.request("GET", "/v1/rollouts", token=sci)
        seen = set()
        for r in rs if st == 200 else []:
            seen.add((r["id"], r["state"], r["step"]))
            if r["state"] in ("promoted", "rolled_back", "aborted"):
                return r
        return None

    steps_seen = []
    psi_seen = {}  # (rollout, gate): the largest value its checks showed

    def watch_steps():
        while not traffic.stop:
            st, rs, _ = srv.request("GET", "/v1/rollouts", token=sci)
            if st == 200 and rs:
                for ck in (rs[0].get("last_evaluation") or {}).get("checks") or []:
                    if ck["gate"] in ("arms_psi", "score_psi") and ck["value"] is not None:
                        k = (rs[0]["id"], ck["gate"])
                        psi_seen[k] = max(psi_seen.get(k, 0), ck["value"])
                key = (rs[0]["state"], rs[0]["step"])
                if not steps_seen or steps_seen[-1] != key:
                    steps_seen.append(key)
                    mark("rollout %d: %s step %d" % (rs[0]["id"], rs[0]["state"], rs[0]["step"]))
            time.sleep(0.3)

    watcher = threading.Thread(target=watch_steps, daemon=True)
    watcher.start()
    r = wait_for("promotion", promoted, 300 * SCALE)
    t.check("the canary went 5% -> 25% -> 100% and promoted v2",
            r is not None and r["state"] == "promoted" and
            [s for s in steps_seen if s[0] == "canary"] == [("canary", 0), ("canary", 1),
                                                           ("canary", 2)], (r, steps_seen))
    st, ready, _ = srv.request("GET", "/readyz")
    wait_for("champion swap", lambda: srv.request("GET", "/readyz")[1]["model"]["version"] == 2,
             10)
    st, ready, _ = srv.request("GET", "/readyz")
    t.check("the server now serves v2 as champion", ready["model"]["version"] == 2, ready)
    t.check("both arms answered customers during the canary",
            traffic.arms.get("candidate", 0) > 0 and traffic.arms.get("champion", 0) > 0,
            traffic.arms)

    # A broken candidate: trained on shuffled labels.
    bad = os.path.join(ws.dir, "shuffled.csv")
    with open(ref, newline="") as f:
        lines = f.read().splitlines()
    header, body = lines[0], lines[1:]
    labels = [ln.rsplit(",", 1)[1] for ln in body]
    random.Random(3).shuffle(labels)
    with open(bad, "w") as f:
        f.write(header + "\n" + "\n".join(ln.rsplit(",", 1)[0] + "," + lab
                                          for ln, lab in zip(body, labels)) + "\n")
    ws.churn("train", "--data", bad, *fast, "--reason", "deliberately broken")
    st, doc, _ = srv.request("POST", "/v1/rollouts", {"candidate": 3, "reason": "broken on purpose"},
                             token=sci)
    t.check("a rollout of the broken v3 starts", st == 201, (st, doc))
    mark("rollout of the broken v3 started")

    def rolled_back():
        st, r3, _ = srv.request("GET", "/v1/rollouts/%d" % doc["id"], token=sci)
        return r3 if st == 200 and r3["state"] != "canary" else None

    r3 = wait_for("rollback", rolled_back, 120 * SCALE)
    t.check("the broken candidate is rolled back at the 5%% step (%s)"
            % ((r3 or {}).get("last_evaluation") or {}).get("reason"),
            r3 is not None and r3["state"] == "rolled_back" and r3["step"] == 0, r3)
    if r3:
        mark("rollout %d rolled back at 5%%: %s" % (r3["id"], r3["last_evaluation"]["reason"]))
    traffic.stop = True
    traffic.th.join(60)
    t.check("zero failed client requests (%d predictions, as many feedback)" % traffic.sent, traffic.failed == 0 and traffic.sent > 0,
            traffic.errors[:3])
    st, text, _ = srv.request("GET", "/metrics")
    for line in ('churn_rollout_transitions_total{result="promoted"} 1',
                 'churn_rollout_transitions_total{result="rolled_back"} 1',
                 'churn_retrain_jobs_total{result="succeeded"} 1',
                 'churn_retrain_verdicts_total{verdict="registered"} 1',
                 'churn_rollout_candidate_percent 0'):
        t.check("/metrics: " + line, line in text.splitlines(),
                [ln for ln in text.splitlines() if ln.startswith(line.split("{")[0].split(" ")[0])])
    p = ws.churn("audit", "list", "--json")
    actions = [e["action"] for e in json.loads(p.stdout)]
    for a in ("rollout-start", "rollout-step", "promote", "rollout-promoted", "rollout-rollback"):
        t.check("audit has %s" % a, a in actions, actions[:30])
    p = ws.churn("audit", "verify", check=False)
    t.check("churn audit verify: the chain is intact", p.returncode == 0, p.stdout + p.stderr)
    lat = sorted(traffic.lat)
    print("timeline:\n" + "\n".join("  %6.1f s  %s" % e for e in timeline))
    print("largest score shifts the gates saw: " + ", ".join(
        "rollout %d %s %.3f" % (k[0], k[1], v) for k, v in sorted(psi_seen.items())))
    print("traffic: %d predictions in %d batches of %d, each followed by its feedback; "
          "batch latency p50 %.1f ms, p99 %.1f ms, max %.1f ms; %d failed"
          % (traffic.sent, len(lat), BATCH, 1e3 * lat[len(lat) // 2],
             1e3 * lat[min(len(lat) - 1, int(len(lat) * 0.99))], 1e3 * lat[-1], traffic.failed))
except Exception as e:  # a broken step is a failure with its cause
    t.check("closed loop", False, "%s: %s" % (type(e).__name__, e))
finally:
    if traffic is not None:
        traffic.stop = True
    if srv is not None:
        srv.stop()
        if t.failed:
            print(srv.output()[-3000:])
    ws.cleanup()
t.finish()
