"""Prints XGBoost margins for a CSV of features, one per line.

Used by tests/unit/test_model_xgb.c to check that a booster saved by
churn (extracted from a saved model into a file of its own) is read by
Python's xgboost as it is, and scores like the C library does.

    python3 xgb_predict.py MODEL.json FEATURES.csv

FEATURES.csv has no header: one row per line, numbers separated by commas.
Margins (log-odds, output_margin=True) are printed with repr, which reads
back to the same double.
"""
import sys

import numpy as np
import xgboost


def main(argv):
    if len(argv) != 3:
        sys.stderr.write("usage: xgb_predict.py MODEL.json FEATURES.csv\n")
        return 2
    booster = xgboost.Booster(model_file=argv[1])
    x = np.loadtxt(argv[2], delimiter=",", dtype=np.float64, ndmin=2)
    margins = booster.predict(xgboost.DMatrix(x), output_margin=True)
    for v in margins:
        print(repr(float(v)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
