"""Any churn CSV trains untouched: two files the project generates itself
in shapes unlike Telco's go from `churn init` through validate, train,
score and `churn serve` to one prediction with reasons, with no hand edits.

  plans  a telecom usage file whose first column is a repeated two-letter
         State, with an area code, yes/no plans and True/False churn, and
         no id column (the file that used to get State as its id);
  bank   a bank file with a row counter, a numeric CustomerId, a repeated
         high-cardinality Surname and an integer 0/1 target "Exited".

Each runs in its own directory, as a new user would, with the paths the
generated config names.
"""
import csv
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import CHURN, PASSWORDS, Server, Suite, Workspace  # noqa: E402

t = Suite("http_own_data")


def typed(row, schema):
    """One CSV row as a request body, values typed by the schema's kinds."""
    kinds = {c["name"]: c["kind"] for c in schema["columns"]}
    out = {}
    for k, v in row.items():
        kind = kinds.get(k)
        if kind in (None, "target"):
            continue  # a left-out column (RowNumber) or the label
        if kind in ("integer", "numeric"):
            out[k] = float(v) if "." in v else int(v)
        elif kind == "id" and v.isdigit():
            out[k] = int(v)
        else:
            out[k] = v
    return out


def run_shape(layout, rows, expect):
    ws = Workspace()
    old = os.getcwd()
    os.chdir(ws.dir)
    srv = None
    try:
        data = "%s.csv" % layout
        ws.sets = []
        ws.churn("simulate", "--layout", layout, "--rows", str(rows), "--seed", "5", "-o", data)
        p = ws.churn("init", data)
        t.check("%s: init writes a schema and config" % layout,
                os.path.exists("config/%s.schema.json" % layout) and
                os.path.exists("config/%s.json" % layout), p.stdout + p.stderr)
        schema = json.load(open("config/%s.schema.json" % layout))
        cols = {c["name"]: c for c in schema["columns"]}
        for name, check, what in expect:
            t.check("%s: %s" % (layout, what), check(cols, schema, p.stdout),
                    json.dumps(cols.get(name))[:300] + " " + p.stdout[-400:])
        cfg = ["--config", "config/%s.json" % layout]
        p = ws.churn("validate", *cfg, "--json")
        rep = json.loads(p.stdout)
        t.check("%s: validate accepts every row" % layout,
                rep["accepted"] == rows and rep["rejected"] == 0,
                "%s accepted, %s rejected" % (rep["accepted"], rep["rejected"]))
        p = ws.churn("train", *cfg, "--set", "train.folds=3", "--set",
                     "train.families=logreg,xgboost")
        t.check("%s: train needs no hand edits" % layout, "registered" in p.stdout, p.stderr)
        t.check("%s: train says only the F1 threshold was computed" % layout,
                "only the F1 threshold was computed" in p.stdout, p.stdout)
        res = json.load(open("var/%s/runs/1/result.json" % layout))
        auc = res["test"]["roc_auc"]
        t.check("%s: the model learned (test ROC AUC %.3f > 0.7)" % (layout, auc), auc > 0.7)
        t.check("%s: no value threshold without a revenue column" % layout,
                res["thresholds"]["value"] is None and len(res["notes"]) == 1, res["thresholds"])
        p = ws.churn("score", *cfg, "--model", "champion", "--in", data, "--out", "scores.csv",
                     "--explain", "2")
        with open("scores.csv", newline="") as f:
            scored = list(csv.DictReader(f))
        t.check("%s: score writes every row with reasons" % layout,
                len(scored) == rows and all(r["reason_1"] for r in scored[:50]),
                scored[0] if scored else p.stderr)
        ws.churn("users", "add", "service1", "--role", "service", *cfg,
                 stdin=PASSWORDS["service"] + "\n")
        srv = Server(ws, *cfg)
        tok = srv.token("service")
        with open(data, newline="") as f:
            row = next(csv.DictReader(f))
        st, doc, _ = srv.request("POST", "/v1/predict?k=3", typed(row, schema), token=tok)
        ok = st == 200 and 0 <= doc.get("probability", -1) <= 1 and len(doc.get("reasons", [])) == 3
        t.check("%s: served prediction with three reasons" % layout, ok, (st, doc))
        if ok:
            t.check("%s: reasons are plain language" % layout,
                    all(" churn risk" in r["text"] for r in doc["reasons"]), doc["reasons"])
            first = float(scored[0]["probability"])
            t.check("%s: served probability equals the batch score" % layout,
                    abs(doc["probability"] - first) < 1e-6, (doc["probability"], first))
    except Exception as e:  # a failed step is a failed test, with its output
        t.check("%s: end to end" % layout, False, e)
    finally:
        if srv is not None:
            srv.stop()
        os.chdir(old)
        ws.cleanup()


run_shape("plans", 4000, [
    ("State", lambda c, s, o: c["State"]["kind"] == "categorical" and
     len(c["State"]["categories"]) == 51, "State is categorical with its 51 codes"),
    ("State", lambda c, s, o: not any(x["kind"] == "id" for x in s["columns"]),
     "no id column is invented"),
    ("Area code", lambda c, s, o: c["Area code"]["kind"] == "integer" and
     "Area code: whole numbers with only 3 distinct values" in o,
     "few-valued area code kept as integer, with a note"),
    ("Churn", lambda c, s, o: c["Churn"]["kind"] == "target", "True/False target"),
    ("Voice mail plan", lambda c, s, o: c["Voice mail plan"]["kind"] == "binary" and
     not c["Voice mail plan"].get("pii"), "yes/no plan is binary, not personal data"),
])
run_shape("bank", 5000, [
    ("CustomerId", lambda c, s, o: c["CustomerId"]["kind"] == "id", "CustomerId is the id"),
    ("RowNumber", lambda c, s, o: "RowNumber" not in c and s.get("extra_columns") == "ignore",
     "the row counter is left out"),
    ("Surname", lambda c, s, o: c["Surname"]["kind"] == "categorical" and
     c["Surname"].get("on_unknown") == "keep" and len(c["Surname"]["categories"]) == 100 and
     c["Surname"].get("pii") is True, "Surname: top 100 + other, marked pii"),
    ("Exited", lambda c, s, o: c["Exited"]["kind"] == "target", "0/1 Exited is the target"),
])
t.finish()
