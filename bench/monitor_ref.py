"""The numpy/scipy reference for bench/monitor.sh: PSI plus a
Kolmogorov-Smirnov (numbers, the score) or chi-square (categories) test of
every column dumped by build/bench/monitor, against the same reference
profile, timed on arrays already in memory (loading is not timed).

usage: /usr/bin/python3 bench/monitor_ref.py DUMPDIR
Prints the seconds of the best of 3 runs, and the PSI of each column so a
reader can compare them with churn's.
"""
import json
import os
import sys
import time

import numpy as np
from scipy import stats

EPS = 1e-4


def psi(ref, cur):
    r = np.maximum(ref / ref.sum(), EPS)
    c = np.maximum(cur / cur.sum(), EPS)
    return float(np.sum((c - r) * np.log(c / r)))


def main(d):
    prof = json.load(open(os.path.join(d, "profile.json")))
    cols = []
    for line in open(os.path.join(d, "columns.txt")):
        fname, kind, name = line.rstrip("\n").split("\t")
        dtype = np.int32 if kind == "cat" else np.float64
        data = np.fromfile(os.path.join(d, fname), dtype=dtype)
        p = prof["score"] if kind == "score" else prof["columns"][name]
        cols.append((name, kind, data, p))

    def run():
        out = {}
        for name, kind, data, p in cols:
            if kind == "cat":
                levels = list(p["counts"].keys())
                ref = np.array([p["counts"][k] for k in levels] + [p["n_other"], p["n_missing"]],
                               dtype=float)
                idx = np.where(data >= 0, data, np.where(data == -2, len(levels), len(levels) + 1))
                cur = np.bincount(idx, minlength=len(levels) + 2).astype(float)
                keep = (ref + cur) > 0
                chi2 = stats.chi2_contingency(np.vstack([ref[keep], cur[keep]]), correction=False)
                out[name] = (psi(ref, cur), chi2[1])
            else:
                edges = np.array(p["edges"], dtype=float)
                ref = np.array(p["counts"] + [p.get("n_missing", 0)], dtype=float)
                miss = np.isnan(data)
                vals = data[~miss]
                cur = np.bincount(np.searchsorted(edges, vals, side="right"),
                                  minlength=len(edges) + 1).astype(float)
                cur = np.append(cur, miss.sum())
                ks = stats.ks_2samp(np.array(p["sample"]), vals, method="asymp")
                out[name] = (psi(ref, cur), ks.pvalue)
        return out

    best = 1e9
    for _ in range(3):
        t0 = time.perf_counter()
        out = run()
        best = min(best, time.perf_counter() - t0)
    n = len(cols[0][2])
    print("numpy/scipy PSI + KS/chi-square, %d rows x %d columns: %.3f s" % (n, len(cols), best))
    for name, (v, pv) in out.items():
        print("  %-20s PSI %.6f  p %.3g" % (name, v, pv))


if __name__ == "__main__":
    main(sys.argv[1])
