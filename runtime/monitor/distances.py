"""Distances between two versions' prediction distributions (runtime/contract/quality.py).

- jensen_shannon: the Jensen-Shannon distance (the square root of the divergence, base 2,
  0 to 1), as NannyML reports it for drift;
- psi: the population stability index, sum of (p - q) ln(p / q), with empty bins floored;
- wasserstein: the earth mover's distance divided by the stable values' standard deviation,
  so that a threshold means the same for prices and for probabilities;
- ks: the two-sample Kolmogorov-Smirnov statistic (the largest gap between the CDFs).

Classifier scores are probabilities: binned into SCORE_BINS equal bins of [0, 1], the same
for both versions, so that the distance does not depend on where one sample's quantiles
fall. Labels are compared as categories.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.spatial.distance import jensenshannon
from scipy.stats import ks_2samp, wasserstein_distance

SCORE_BINS = 10
# A bin one side never reaches would make PSI infinite; the usual floor.
PSI_FLOOR = 1e-4


def _from_shares(p: np.ndarray, q: np.ndarray, how: str) -> float:
    if how == "jensen_shannon":
        return float(jensenshannon(p, q, base=2))
    if how == "psi":
        p, q = np.maximum(p, PSI_FLOOR), np.maximum(q, PSI_FLOOR)
        return float(np.sum((p - q) * np.log(p / q)))
    raise ValueError(f"{how} compares continuous values, not binned shares")


def scores(new: pd.Series, stable: pd.Series, how: str) -> float:
    edges = np.linspace(0.0, 1.0, SCORE_BINS + 1)
    p = np.histogram(np.clip(new.to_numpy(float), 0, 1), edges)[0] / len(new)
    q = np.histogram(np.clip(stable.to_numpy(float), 0, 1), edges)[0] / len(stable)
    return _from_shares(p, q, how)


def categorical(new: pd.Series, stable: pd.Series, how: str) -> float:
    labels = sorted({*new.astype(str), *stable.astype(str)})
    p = new.astype(str).value_counts(normalize=True).reindex(labels, fill_value=0.0)
    q = stable.astype(str).value_counts(normalize=True).reindex(labels, fill_value=0.0)
    return _from_shares(p.to_numpy(float), q.to_numpy(float), how)


def continuous(new: pd.Series, stable: pd.Series, how: str) -> float:
    a, b = new.to_numpy(float), stable.to_numpy(float)
    if how == "ks":
        return float(ks_2samp(a, b).statistic)
    if how == "wasserstein":
        spread = float(np.std(b))
        # Constant stable values: any move is the whole scale of the change itself.
        return float(wasserstein_distance(a, b)) / (spread if spread > 0 else 1.0)
    raise ValueError(f"{how} compares binned shares, not continuous values")
