#!/usr/bin/python3
"""drift_ref.py -- scipy and numpy reference values for tests/unit/test_drift.c.

usage: /usr/bin/python3 tests/oracle/drift_ref.py JOBS

JOBS is a text file with one job per line: an operation and its arguments.
Numbers are in round-trip text; arrays are paths of files holding raw
float64 values in the machine's byte order (what C's fwrite of a double
array writes). For each job, one line goes to stdout: the results,
space-separated, in round-trip form (repr).

  ks A B        scipy.stats.ks_2samp(A, B, method='asymp'): D p
  kssf D N      scipy.stats.kstwo.sf(D, N)
  chi2sf X DOF  scipy.stats.chi2.sf(X, DOF)
  chi2 R C      scipy.stats.chi2_contingency([R, C], correction=False) on the
                table without the columns where both counts are 0: stat p dof
  js P Q        scipy.spatial.distance.jensenshannon(P, Q, base=2)
  w1 U V        scipy.stats.wasserstein_distance(U, V)
  psi EPS R C   the population stability index, from its definition
  bh P          Benjamini-Hochberg adjusted p-values, from the definition
  holm P        Holm-Bonferroni adjusted p-values, from the definition
  edges NB S    quantile edges: S[floor(k n / NB)], k = 1..NB-1, without values
                equal to the minimum or to the previous edge
  bins E V      counts of V per bin numpy.searchsorted(E, V, side='right')

The definitions here are written independently of src/lib/drift.c, from
docs/monitoring.md. Exit status 0 on success; a bad job is reported on
stderr with its line number and ends the run with status 1.
"""
import sys
import warnings

import numpy as np
import scipy.stats
import scipy.spatial.distance


def arr(path):
    return np.fromfile(path, dtype=np.float64)


def fmt(values):
    return " ".join(repr(float(v)) for v in values)


def psi(eps, r, c):
    r = np.maximum(r / r.sum(), eps)
    c = np.maximum(c / c.sum(), eps)
    return np.sum((c - r) * np.log(c / r))


def bh(p):
    k = len(p)
    order = np.argsort(p, kind="stable")
    q = k * p[order] / np.arange(1, k + 1)
    q = np.minimum(np.minimum.accumulate(q[::-1])[::-1], 1.0)
    out = np.empty(k)
    out[order] = q
    return out


def holm(p):
    k = len(p)
    order = np.argsort(p, kind="stable")
    q = np.minimum(1.0, (k - np.arange(k)) * p[order])
    q = np.maximum.accumulate(q)
    out = np.empty(k)
    out[order] = q
    return out


def edges(n_bins, s):
    n = len(s)
    out = []
    last = s[0]
    for k in range(1, n_bins):
        e = s[(k * n) // n_bins]
        if e > last:
            out.append(e)
            last = e
    return out


def bins(e, v):
    return np.bincount(np.searchsorted(e, v, side="right"), minlength=len(e) + 1)


def run(words):
    op = words[0]
    if op == "ks":
        r = scipy.stats.ks_2samp(arr(words[1]), arr(words[2]), method="asymp")
        return [r.statistic, r.pvalue]
    if op == "kssf":
        return [scipy.stats.kstwo.sf(float(words[1]), int(words[2]))]
    if op == "chi2sf":
        return [scipy.stats.chi2.sf(float(words[1]), float(words[2]))]
    if op == "chi2":
        table = np.array([arr(words[1]), arr(words[2])])
        table = table[:, table.sum(axis=0) > 0]
        stat, p, dof, _ = scipy.stats.chi2_contingency(table, correction=False)
        return [stat, p, dof]
    if op == "js":
        return [scipy.spatial.distance.jensenshannon(arr(words[1]), arr(words[2]), base=2)]
    if op == "w1":
        return [scipy.stats.wasserstein_distance(arr(words[1]), arr(words[2]))]
    if op == "psi":
        return [psi(float(words[1]), arr(words[2]), arr(words[3]))]
    if op == "bh":
        return bh(arr(words[1]))
    if op == "holm":
        return holm(arr(words[1]))
    if op == "edges":
        return edges(int(words[1]), arr(words[2]))
    if op == "bins":
        return bins(arr(words[1]), arr(words[2]))
    raise ValueError("unknown operation %r" % op)


def main():
    if len(sys.argv) != 2:
        sys.stderr.write("usage: drift_ref.py JOBS\n")
        return 2
    warnings.simplefilter("ignore")
    out = []
    with open(sys.argv[1]) as f:
        for no, line in enumerate(f, 1):
            words = line.split()
            if not words:
                continue
            try:
                out.append(fmt(run(words)))
            except Exception as e:  # report the job, not a traceback
                sys.stderr.write("drift_ref.py: line %d (%s): %s\n" % (no, words[0], e))
                return 1
    sys.stdout.write("\n".join(out) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
