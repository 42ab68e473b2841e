"""Do defective images differ from good ones, feature by feature (and train from test)?

A two-sample Kolmogorov-Smirnov test says whether two groups' distributions
differ; the Wasserstein distance says by how much, in the feature's own units and
scaled by the pooled std so features can be ranked against each other.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

#: Fewer samples than this in either group gives NaN statistics instead of a test.
MIN_GROUP = 2

COLUMNS = ["feature", "mean_a", "mean_b", "ks_statistic", "ks_pvalue", "wasserstein", "wasserstein_scaled"]


@dataclass(frozen=True)
class Comparison:
    """Feature-by-feature comparison of group ``a`` against group ``b``."""

    name: str
    group_a: str
    group_b: str
    n_a: int
    n_b: int
    table: pd.DataFrame  # columns: COLUMNS


def compare_features(a: pd.DataFrame, b: pd.DataFrame, features: Sequence[str]) -> pd.DataFrame:
    """KS statistic and p-value, Wasserstein distance (raw and / pooled std) per feature."""
    rows = []
    for f in features:
        xa = a[f].to_numpy(dtype=np.float64) if len(a) else np.zeros(0)
        xb = b[f].to_numpy(dtype=np.float64) if len(b) else np.zeros(0)
        xa, xb = xa[np.isfinite(xa)], xb[np.isfinite(xb)]
        mean_a = float(xa.mean()) if xa.size else np.nan
        mean_b = float(xb.mean()) if xb.size else np.nan
        if xa.size < MIN_GROUP or xb.size < MIN_GROUP:
            rows.append((f, mean_a, mean_b, np.nan, np.nan, np.nan, np.nan))
            continue
        ks = stats.ks_2samp(xa, xb)
        w = float(stats.wasserstein_distance(xa, xb))
        pooled = float(np.concatenate([xa, xb]).std())
        rows.append((f, mean_a, mean_b, float(ks.statistic), float(ks.pvalue), w, w / pooled if pooled > 0 else 0.0))
    return pd.DataFrame(rows, columns=COLUMNS)


def compare_groups(
    name: str, label_a: str, a: pd.DataFrame, label_b: str, b: pd.DataFrame, features: Sequence[str]
) -> Comparison:
    """A named :class:`Comparison` of two slices of the per-image table."""
    return Comparison(name, label_a, label_b, len(a), len(b), compare_features(a, b, features))
