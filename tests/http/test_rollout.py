"""Rollouts, jobs and the Alertmanager hook through the real server:

  - /v1/rollouts: bad bodies are refused with the field, one rollout at a
    time (409), roles (an analyst reads, cannot start), pause, resume and
    abort audited and checked against the state (409 out of turn);
  - shadow mode: the champion answers every request, the candidate scores
    the same inputs off the request path (counted in /metrics, shown in the
    evaluation);
  - a canary split is sticky: a customer keeps its arm on every request,
    and the share of customers on the candidate is near the step's;
  - kill -9 in the middle of a canary step and of a retraining job: after a
    restart the rollout carries on where it was, the job is marked
    interrupted, a new one can run, and `churn models check` finds the
    store consistent;
  - /v1/jobs: start, list, show, cancel, 404 and 400 with reasons;
  - POST /v1/hooks/alertmanager: off without a secret (404), 401 for a
    missing or wrong one, a firing alert named in retrain.hook_alerts queues
    a job, resolved or other alerts do not, bad bodies get 400.
"""
import json
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import Server, Suite, Workspace, customers  # noqa: E402

t = Suite("http_rollout")


def wait_for(fn, timeout, step=0.2):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(step)
    return None


def metric(srv, name):
    st, text, _ = srv.request("GET", "/metrics")
    total = 0.0
    for ln in text.splitlines():
        if ln.startswith(name + "{") or ln.startswith(name + " "):
            total += float(ln.rsplit(" ", 1)[1])
    return total


ws = Workspace()
srv = None
try:
    ws.train(rows=3000, seed=31)                    # v1, champion
    ws.train(rows=3000, seed=32)                    # v2, challenger
    ws.add_users()
    sim = os.path.join(ws.dir, "live.csv")
    ws.churn("simulate", "--rows", "2000", "--seed", "33", "--id-offset", "500000", "-o", sim)
    people = customers(sim, 2000)
    slow = ["--set", "rollout.eval_s=1", "--set", "rollout.min_requests=50",
            "--set", "rollout.min_seconds=3600"]
    srv = Server(ws, *slow)
    svc, sci, ana, adm = (srv.token(r) for r in ("service", "scientist", "analyst", "admin"))

    def post(path, body, tok=sci):
        return srv.request("POST", path, body, token=tok)

    def predict(batch):
        st, doc, _ = srv.request("POST", "/v1/predict/batch?k=0", batch, token=svc)
        if st != 200:
            raise RuntimeError("batch: %s %s" % (st, doc))
        return doc["predictions"]

    # ---- validation and roles ------------------------------------------------
    for body, field in (({}, "candidate"), ({"candidate": "v9"}, "candidate"),
                        ({"candidate": 2, "steps": "5"}, "steps"),
                        ({"candidate": 2, "steps": ["a"]}, "steps"),
                        ({"candidate": 2, "shadow": "yes"}, "shadow"),
                        ({"candidate": 2, "reason": 7}, "reason")):
        st, doc, _ = post("/v1/rollouts", body)
        t.check("POST /v1/rollouts %s: 4xx naming %s" % (json.dumps(body), field),
                st in (400, 404) and (doc.get("field") == field or field in doc["message"]),
                (st, doc))
    for body in ({"candidate": 2, "steps": [50, 20, 100]}, {"candidate": 2, "steps": [5, 25]},
                 {"candidate": 1}, {"candidate": 2, "gates": {"max_p99_ratio": -1}}):
        st, doc, _ = post("/v1/rollouts", body)
        t.check("POST /v1/rollouts %s: refused with a reason" % json.dumps(body),
                st in (400, 409) and doc.get("message"), (st, doc))
    st, doc, _ = srv.request("POST", "/v1/rollouts", {"candidate": 2}, token=ana)
    t.check("an analyst may not start a rollout (403)", st == 403, (st, doc))
    st, doc, _ = srv.request("GET", "/v1/rollouts", token=ana)
    t.check("an analyst may read rollouts", st == 200 and doc == [], (st, doc))
    st, doc, _ = srv.request("POST", "/v1/rollouts", {"candidate": 2}, token=svc)
    t.check("a service may not start a rollout (403)", st == 403, (st, doc))

    # ---- shadow ----------------------------------------------------------------
    st, ro, _ = post("/v1/rollouts", {"candidate": "challenger", "shadow": True,
                                      "reason": "shadow first"})
    t.check("a shadow rollout of the challenger starts (201)",
            st == 201 and ro["state"] == "shadow" and ro["candidate"] == 2, (st, ro))
    st, doc, _ = post("/v1/rollouts", {"candidate": 2})
    t.check("a second rollout while one runs: 409", st == 409, (st, doc))
    wait_for(lambda: "candidate v2 loaded" in srv.output(), 10)
    arms = {}
    for i in range(0, 600, 100):
        for p in predict(people[i:i + 100]):
            arms[p["arm"]] = arms.get(p["arm"], 0) + 1
    t.check("in shadow mode the champion answers everything", arms == {"champion": 600}, arms)
    scored = wait_for(lambda: metric(srv, "churn_shadow_scored_total") >= 600 or None, 10)
    t.check("the candidate shadow-scored every request off the path (%s)"
            % metric(srv, "churn_shadow_scored_total"), scored is not None)

    def evaluated():
        st, r, _ = srv.request("GET", "/v1/rollouts/%d" % ro["id"], token=ana)
        ev = r.get("last_evaluation") if st == 200 else None
        return ev if ev and ev["arms"]["shadow"]["predictions"] >= 600 else None

    ev = wait_for(evaluated, 15)
    t.check("the evaluation shows both arms on the same 600 requests",
            ev is not None and ev["arms"]["champion"]["predictions"] >= 600, ev)
    if ev:
        gates = {c["gate"]: c["result"] for c in ev["checks"]}
        t.check("shadow: latency and errors are n/a, the step waits for min_seconds",
                gates.get("p99_latency") == "n/a" and gates.get("min_seconds") == "wait" and
                ev["verdict"] == "wait", ev["checks"])

    # ---- pause, resume, abort ----------------------------------------------------
    st, doc, _ = post("/v1/rollouts/%d/resume" % ro["id"], {})
    t.check("resume of a running rollout: 409", st == 409, (st, doc))
    st, doc, _ = post("/v1/rollouts/%d/pause" % ro["id"], {"reason": "lunch"})
    t.check("pause: 200, state paused", st == 200 and doc["state"] == "paused", (st, doc))
    st, doc, _ = post("/v1/rollouts/%d/pause" % ro["id"], {})
    t.check("pause twice: 409", st == 409, (st, doc))
    st, doc, _ = post("/v1/rollouts/%d/resume" % ro["id"], {})
    t.check("resume: back to shadow", st == 200 and doc["state"] == "shadow", (st, doc))
    st, doc, _ = post("/v1/rollouts/%d/abort" % ro["id"], {"reason": "enough"})
    t.check("abort: 200, state aborted", st == 200 and doc["state"] == "aborted", (st, doc))
    st, doc, _ = post("/v1/rollouts/%d/abort" % ro["id"], {})
    t.check("abort an ended rollout: 409", st == 409, (st, doc))
    st, doc, _ = srv.request("GET", "/v1/rollouts/999", token=ana)
    t.check("an unknown rollout: 404", st == 404, (st, doc))
    st, ready, _ = srv.request("GET", "/readyz")
    t.check("the champion is still v1", ready["model"]["version"] == 1, ready)

    # ---- a sticky canary, then kill -9 in the middle of it ----------------------
    st, ro, _ = post("/v1/rollouts", {"candidate": 2, "steps": [30, 100]})
    t.check("a 30% canary starts", st == 201 and ro["state"] == "canary", (st, ro))
    wait_for(lambda: srv.output().count("candidate v2 loaded") >= 2, 10)
    time.sleep(1.2)  # the request path sees the split after the next controller pass
    first = {}
    for i in range(0, 2000, 200):
        for c, p in zip(people[i:i + 200], predict(people[i:i + 200])):
            first[c["customerID"]] = p["arm"]
    again = {}
    for i in range(0, 1000, 200):
        for c, p in zip(people[i:i + 200], predict(people[i:i + 200])):
            again[c["customerID"]] = p["arm"]
    share = sum(1 for v in first.values() if v == "candidate") / len(first)
    t.check("about 30%% of customers are on the candidate (%.3f of 2000)" % share,
            0.26 <= share <= 0.34, share)
    t.check("every customer kept its arm on a second request",
            all(first[k] == v for k, v in again.items()), None)

    srv.stop(signal.SIGKILL)
    srv = Server(ws, *slow)
    svc, sci, ana = (srv.token(r) for r in ("service", "scientist", "analyst"))
    st, doc, _ = srv.request("GET", "/v1/rollouts/%d" % ro["id"], token=ana)
    t.check("after kill -9 the rollout is still a canary at its step",
            st == 200 and doc["state"] == "canary" and doc["step"] == 0, (st, doc))
    wait_for(lambda: "candidate v2 loaded" in srv.output(), 10)
    time.sleep(1.2)
    after = {}
    for i in range(0, 1000, 200):
        for c, p in zip(people[i:i + 200], predict(people[i:i + 200])):
            after[c["customerID"]] = p["arm"]
    t.check("and the restarted server splits the same customers the same way",
            all(first[k] == v for k, v in after.items()),
            sum(first[k] != v for k, v in after.items()))
    p = ws.churn("models", "check", check=False)
    t.check("churn models check after kill -9: registry ok",
            p.returncode == 0 and "registry ok" in p.stdout, p.stdout + p.stderr)
    st, doc, _ = post("/v1/rollouts/%d/abort" % ro["id"], {})
    t.check("the canary is aborted", st == 200 and doc["state"] == "aborted", (st, doc))
    srv.stop()

    # ---- jobs, then kill -9 in the middle of a retraining job --------------------
    base = os.path.join(ws.dir, "base.csv")
    ws.churn("simulate", "--rows", "150000", "--seed", "34", "-o", base)
    secret = os.path.join(ws.dir, "hook.secret")
    with open(secret, "w") as f:
        f.write("s3cret-s3cret-s3cret-0123\n")
    short = os.path.join(ws.dir, "short.secret")
    with open(short, "w") as f:
        f.write("too-short\n")
    jobs_cfg = ["--set", "data.path=" + base, "--set", "train.families=logreg,xgboost",
                "--set", "train.folds=3", "--set", "retrain.min_labels=100",
                "--set", "retrain.cooldown_s=3600", "--set", "retrain.hook_secret_file=" + secret]
    srv = Server(ws, *jobs_cfg)
    svc, sci, ana = (srv.token(r) for r in ("service", "scientist", "analyst"))
    ids = [p["prediction_id"] for p in predict(people[:400])]
    with open(sim) as f:
        churned = [ln.rstrip().endswith("Yes") for ln in f.readlines()[1:401]]
    for pid, y in zip(ids, churned):
        srv.request("POST", "/v1/feedback", {"prediction_id": pid, "churned": y,
                                             "observed_date": "2026-12-01"}, token=svc)
    for body, code in (({"kind": "sweep"}, 400), ([1], 400)):
        st, doc, _ = post("/v1/jobs", body)
        t.check("POST /v1/jobs %s: %d" % (json.dumps(body), code), st == code, (st, doc))
    st, doc, _ = srv.request("POST", "/v1/jobs", {"kind": "retrain"}, token=ana)
    t.check("an analyst may not start a job (403)", st == 403, (st, doc))
    st, doc, _ = srv.request("GET", "/v1/jobs/77", token=ana)
    t.check("an unknown job: 404", st == 404, (st, doc))
    st, job, _ = post("/v1/jobs", {"kind": "retrain"})
    t.check("POST /v1/jobs: a retraining job is queued (202)",
            st == 202 and job["status"] in ("queued", "running") and job["trigger"] == "manual",
            (st, job))
    st, doc, _ = post("/v1/jobs", {"kind": "retrain"})
    t.check("a second one while it runs: 409 with the reason", st == 409, (st, doc))

    def running():
        st, j, _ = srv.request("GET", "/v1/jobs/%d" % job["id"], token=ana)
        return j if st == 200 and j["status"] == "running" and (j.get("result") or {}).get(
            "run_id") and j.get("progress", 0) > 0.1 else None

    j = wait_for(running, 30, 0.05)
    t.check("the job runs and reports progress (%s at %.0f%%)"
            % ((j or {}).get("stage"), 100 * (j or {}).get("progress", 0)), j is not None, j)
    srv.stop(signal.SIGKILL)
    srv = Server(ws, *jobs_cfg)
    svc, sci, ana = (srv.token(r) for r in ("service", "scientist", "analyst"))
    st, j, _ = srv.request("GET", "/v1/jobs/%d" % job["id"], token=ana)
    t.check("after kill -9 the job is marked interrupted",
            st == 200 and j["status"] == "interrupted", (st, j))
    p = ws.churn("models", "check", check=False)
    t.check("churn models check after kill -9 mid-retrain: registry ok",
            p.returncode == 0 and "registry ok" in p.stdout, p.stdout + p.stderr)
    p = ws.churn("runs", "list", "--json", check=False)
    runs = json.loads(p.stdout) if p.returncode == 0 else []
    killed = [r for r in runs if j and r["id"] == j["result"]["run_id"]]
    t.check("the run the job had begun ended as failed, interrupted",
            len(killed) == 1 and killed[0]["status"] == "failed" and
            killed[0]["summary"]["reason"] == "interrupted", killed)
    t.check("no run is left 'running'", not any(r["status"] == "running" for r in runs),
            runs[-2:])
    st, job2, _ = post("/v1/jobs", {})
    t.check("a new job can be queued", st == 202, (st, job2))
    st, doc, _ = post("/v1/jobs/%d/cancel" % job2["id"], {})
    t.check("cancel: 202, the job asked to stop",
            st == 202 and (doc["status"] == "cancelled" or doc["cancel_requested"] is True),
            (st, doc))
    done = wait_for(lambda: srv.request("GET", "/v1/jobs/%d" % job2["id"], token=ana)[1]
                    if srv.request("GET", "/v1/jobs/%d" % job2["id"], token=ana)[1]["status"]
                    == "cancelled" else None, 60)
    t.check("the cancelled job ends as cancelled", done is not None, done)
    st, doc, _ = post("/v1/jobs/%d/cancel" % job2["id"], {})
    t.check("cancel an ended job: 409", st == 409, (st, doc))
    st, jobs, _ = srv.request("GET", "/v1/jobs?limit=10", token=ana)
    t.check("GET /v1/jobs lists them newest first",
            st == 200 and [x["id"] for x in jobs][:2] == [job2["id"], job["id"]], jobs)
    st, doc, _ = srv.request("GET", "/v1/jobs?limit=0", token=ana)
    t.check("GET /v1/jobs?limit=0: 400", st == 400, (st, doc))

    # ---- the Alertmanager hook -----------------------------------------------------
    hook = "/v1/hooks/alertmanager"

    def firing(name, status="firing"):
        return {"version": "4", "status": status, "receiver": "churn",
                "alerts": [{"status": status, "labels": {"alertname": name, "severity": "page"},
                            "annotations": {}, "startsAt": "2026-12-01T00:00:00Z"}]}

    good = {"Authorization": "Bearer s3cret-s3cret-s3cret-0123"}
    st, doc, _ = srv.request("POST", hook, firing("ChurnModelDecay"))
    t.check("hook without a secret: 401", st == 401, (st, doc))
    st, doc, _ = srv.request("POST", hook, firing("ChurnModelDecay"),
                             headers={"Authorization": "Bearer s3cret-s3cret-s3cret-0124"})
    t.check("hook with a wrong secret: 401", st == 401, (st, doc))
    st, doc, _ = srv.request("POST", hook, raw=b"{not json", headers=good)
    t.check("hook with a bad body: 400", st == 400, (st, doc))
    st, doc, _ = srv.request("POST", hook, {"alerts": "x"}, headers=good)
    t.check("hook without an alerts list: 400", st == 400, (st, doc))
    st, doc, _ = srv.request("POST", hook, firing("ChurnModelDecay", "resolved"), headers=good)
    t.check("a resolved alert queues nothing", st == 200 and doc["queued"] is False, (st, doc))
    st, doc, _ = srv.request("POST", hook, firing("ChurnServerDown"), headers=good)
    t.check("an alert not in retrain.hook_alerts queues nothing",
            st == 200 and doc["queued"] is False, (st, doc))
    st, doc, _ = srv.request("POST", hook, firing("ChurnModelDecay"), headers=good)
    t.check("a firing ChurnModelDecay within the cool-down queues nothing, and says why",
            st == 200 and doc["queued"] is False and "cooldown" in doc["reason"], (st, doc))
    srv.stop()
    srv = Server(ws, *jobs_cfg[:-4], "--set", "retrain.cooldown_s=0",
                 "--set", "retrain.hook_secret_file=" + secret, "--set", "train.families=logreg")
    st, doc, _ = srv.request("POST", hook, firing("ChurnModelDecay"), headers=good)
    t.check("a firing ChurnModelDecay queues a retraining job (202)",
            st == 202 and doc["queued"] is True and doc["trigger"] == "alertmanager:ChurnModelDecay",
            (st, doc))
    if st == 202:
        ana = srv.token("analyst")
        fin = wait_for(lambda: (lambda j: j if j["status"] not in ("queued", "running") else None)(
            srv.request("GET", "/v1/jobs/%d" % doc["job"], token=ana)[1]), 120, 0.5)
        t.check("the hook's job runs to an end (%s)" % (fin or {}).get("status"),
                fin is not None and fin["status"] == "succeeded", fin)
    srv.stop()
    srv = Server(ws, "--set", "retrain.hook_secret_file=" + short)
    st, doc, _ = srv.request("POST", hook, firing("ChurnModelDecay"),
                             headers={"Authorization": "Bearer too-short"})
    t.check("a secret under 16 characters leaves the hook off (404)", st == 404, (st, doc))
    srv.stop()
    srv = None
    p = ws.churn("audit", "verify", check=False)
    t.check("the audit chain holds", p.returncode == 0, p.stdout + p.stderr)
except Exception as e:  # a broken step is a failure with its cause
    t.check("rollout and jobs suite", False, "%s: %s" % (type(e).__name__, e))
finally:
    if srv is not None:
        srv.stop()
        if t.failed:
            print(srv.output()[-3000:])
    ws.cleanup()
t.finish()
