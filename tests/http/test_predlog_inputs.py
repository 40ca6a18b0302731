"""The prediction log keeps the input values the model scored: predictions
through the real server (single, JSON batch and CSV batch, with missing
values and kept unknown categories) are read back from the store, and their
`inputs` blobs, decoded here from the format documented in docs/registry.md
(not with the library's decoder), are exactly the values sent.
"""
import json
import math
import os
import sqlite3
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import ROOT, Server, Suite, Workspace, customers  # noqa: E402

t = Suite("http_predlog_inputs")
SCHEMA = json.load(open(os.path.join(ROOT, "config", "telco.schema.json")))
POSITIVE = {"yes", "true", "1", "y", "t"}  # the schema's default yes/no texts
NEGATIVE = {"no", "false", "0", "n", "f"}


def decode(blob):
    """A blob as {column: value}: a float, a category name, ("unknown", text)
    or None when missing. Raises ValueError when malformed."""
    if not blob or blob[0] != 1:
        raise ValueError("format byte %r" % blob[:1])
    at, out = 1, {}
    for c in SCHEMA["columns"]:
        kind, name = c["kind"], c["name"]
        if kind in ("id", "target"):
            continue
        if kind == "categorical":
            (code,) = struct.unpack_from("<H", blob, at)
            at += 2
            if code == 0xFFFF:
                out[name] = None
            elif code == 0xFFFE:
                n = blob[at]
                if n > 64 or at + 1 + n > len(blob):
                    raise ValueError("bad unknown text length %d" % n)
                out[name] = ("unknown", blob[at + 1:at + 1 + n].decode("utf-8"))
                at += 1 + n
            else:
                out[name] = c["categories"][code]
        else:
            (v,) = struct.unpack_from("<d", blob, at)
            at += 8
            out[name] = None if math.isnan(v) else v
    if at != len(blob):
        raise ValueError("%d bytes after the last column" % (len(blob) - at))
    return out


def cut(text):
    """An unknown category's text as the log keeps it: at most 64 bytes,
    cut at a character boundary."""
    b = text.encode("utf-8")
    if len(b) <= 64:
        return text
    k = 64
    while b[k] & 0xC0 == 0x80:
        k -= 1
    return b[:k].decode("utf-8")


def expected(sent):
    """What the blob must hold for a customer sent as JSON (typed values) or
    as CSV text (every value a string)."""
    out = {}
    for c in SCHEMA["columns"]:
        kind, name = c["kind"], c["name"]
        if kind in ("id", "target"):
            continue
        v = sent[name]
        missing = c.get("missing", [""])
        if v is None or (isinstance(v, str) and v in missing) or \
                (kind != "categorical" and isinstance(v, str) and v.strip() == ""):
            out[name] = None
        elif kind == "categorical":
            out[name] = v if v in c["categories"] else ("unknown", cut(v))
        elif kind == "binary":
            if isinstance(v, bool):
                out[name] = 1.0 if v else 0.0
            elif isinstance(v, str):
                out[name] = 1.0 if v.strip().lower() in POSITIVE else 0.0
                assert v.strip().lower() in POSITIVE | NEGATIVE, v
            else:
                out[name] = float(v)
        else:
            out[name] = float(v)
    return out


ws = Workspace()
srv = None
try:
    data = ws.train(rows=1500, seed=13)
    ws.add_users()
    srv = Server(ws)
    tok = srv.token("service")
    people = customers(data, 12)
    sent = {}  # prediction id -> what was sent, in expected() form

    # A missing value (null) and a kept unknown category (PaymentMethod keeps
    # them), one of them longer than 64 bytes with a character across byte 64.
    one = dict(people[0])
    one["TotalCharges"] = None
    one["PaymentMethod"] = "Pay by phone \u00e9" + "\u00e9" * 40
    st, doc, _ = srv.request("POST", "/v1/predict", one, token=tok)
    t.check("single predict with a missing value and an unknown category",
            st == 200 and doc.get("warnings", [{}])[0].get("field") == "PaymentMethod",
            (st, doc))
    if st == 200:
        sent[doc["prediction_id"]] = expected(one)

    batch = [dict(p) for p in people[1:6]]
    batch[0]["PaymentMethod"] = "Bitcoin"
    batch[1]["TotalCharges"] = None
    batch[1]["gender"] = ""  # "" is a missing token: a missing category
    batch[2]["SeniorCitizen"] = 1
    batch[2]["Partner"] = True  # binary as a JSON boolean
    st, doc, _ = srv.request("POST", "/v1/predict/batch", batch, token=tok)
    t.check("JSON batch: 5 predictions", st == 200 and doc["count"] == 5
            and all("prediction_id" in p for p in doc["predictions"]), (st, doc))
    if st == 200:
        for p, b in zip(doc["predictions"], batch):
            sent[p["prediction_id"]] = expected(b)

    with open(data) as f:
        lines = f.read().splitlines()
    header = lines[0].split(",")
    rows = [ln.split(",") for ln in lines[7:12]]
    pay, total = header.index("PaymentMethod"), header.index("TotalCharges")
    rows[0][pay] = "Cheque \u00e0 l'ordre"  # unknown, kept, non-ASCII
    rows[1][total] = " "                     # a missing token
    rows[2][total] = ""
    csv_body = "\n".join([lines[0]] + [",".join(r) for r in rows]).encode()
    st, doc, _ = srv.request("POST", "/v1/predict/batch", raw=csv_body, ctype="text/csv",
                             token=tok)
    t.check("CSV batch: 5 predictions", st == 200 and doc["count"] == 5
            and all("prediction_id" in p for p in doc["predictions"]), (st, doc))
    if st == 200:
        for p, r in zip(doc["predictions"], rows):
            sent[p["prediction_id"]] = expected(dict(zip(header, r)))

    st, text, _ = srv.request("GET", "/metrics")
    t.check("metrics: churn_prediction_log_inputs_skipped_total 0",
            "churn_prediction_log_inputs_skipped_total 0\n" in text, text[-900:])
    rc = srv.stop()
    t.check("server stops cleanly, the log drained", rc == 0 and ", 0 dropped" in srv.output(),
            srv.output()[-400:])
    srv = None

    db = sqlite3.connect(os.path.join(ws.dir, "registry.db"))
    stored = {pid: blob for pid, blob in db.execute("SELECT id, inputs FROM predictions")}
    layout = db.execute("PRAGMA user_version").fetchone()[0]
    db.close()
    t.check("the store is at the current layout (6)", layout == 6, layout)
    t.check("all 11 predictions are in the store with inputs",
            len(sent) == 11 and all(stored.get(pid) for pid in sent),
            {pid: stored.get(pid) for pid in sent})
    for pid, want in sent.items():
        blob = stored.get(pid)
        try:
            got = decode(blob) if blob else None
        except ValueError as e:
            got = "malformed: %s" % e
        t.check("prediction %s: the stored inputs are the values sent" % pid[-6:],
                got == want, {"got": got, "want": want})
    unknowns = [v for w in sent.values() for v in w.values() if isinstance(v, tuple)]
    t.check("the cases include kept unknown categories, one cut to 64 bytes",
            len(unknowns) == 3 and any(len(u[1].encode()) in (63, 64) for u in unknowns),
            unknowns)
    t.check("the cases include missing numbers and a missing category",
            sum(w["TotalCharges"] is None for w in sent.values()) >= 4
            and any(w["gender"] is None for w in sent.values()), "")
finally:
    if srv is not None:
        srv.stop()
        if t.failed:
            print(srv.output()[-3000:])
    ws.cleanup()
t.finish()
