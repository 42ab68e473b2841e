"""Two-sample feature tests between groups."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from qc_models.eda.compare import COLUMNS, compare_features, compare_groups


def test_identical_groups_do_not_differ() -> None:
    a = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0]})
    t = compare_features(a, a.copy(), ["x"])
    assert list(t.columns) == COLUMNS
    row = t.iloc[0]
    assert row["ks_statistic"] == 0.0 and row["ks_pvalue"] == pytest.approx(1.0) and row["wasserstein"] == 0.0


def test_disjoint_groups_differ_completely() -> None:
    a = pd.DataFrame({"x": [0.0, 1.0, 2.0], "c": [5.0, 5.0, 5.0]})
    b = pd.DataFrame({"x": [10.0, 11.0, 12.0], "c": [5.0, 5.0, 5.0]})
    t = compare_features(a, b, ["x", "c"]).set_index("feature")
    assert t.loc["x", "ks_statistic"] == 1.0
    assert t.loc["x", "wasserstein"] == pytest.approx(10.0)
    assert t.loc["x", "wasserstein_scaled"] == pytest.approx(10.0 / np.std([0, 1, 2, 10, 11, 12]))
    assert t.loc["x", "mean_a"] == 1.0 and t.loc["x", "mean_b"] == 11.0
    assert t.loc["c", "wasserstein_scaled"] == 0.0  # constant feature: no spread, no difference


def test_too_small_groups_give_nan_not_a_test() -> None:
    c = compare_groups("g", "a", pd.DataFrame({"x": [1.0]}), "b", pd.DataFrame({"x": [2.0, 3.0]}), ["x"])
    assert (c.n_a, c.n_b) == (1, 2)
    row = c.table.iloc[0]
    assert np.isnan(row["ks_pvalue"]) and row["mean_a"] == 1.0 and row["mean_b"] == 2.5
    empty = compare_features(pd.DataFrame({"x": []}), pd.DataFrame({"x": [1.0]}), ["x"])
    assert np.isnan(empty.iloc[0]["mean_a"])
