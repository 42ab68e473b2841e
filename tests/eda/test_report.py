"""The whole EDA pass on the hand-made dataset (see conftest.hand_dataset) and a synthetic one."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from qc_models.data.layout import DatasetError
from qc_models.eda import ALL, run_eda


@pytest.fixture(scope="module")
def report(hand_dataset: Path):
    return run_eda(hand_dataset, heatmap_size=2)


def test_counts_and_imbalance(report) -> None:
    eda = report.categories["widget"]
    assert eda.counts.totals == {
        "train_good": 6, "test_good": 3, "test_defective": 4, "test": 7, "images": 13, "masks": 3, "defect_types": 2
    }
    assert eda.counts.imbalance["test_good_to_defective"] == 0.75
    assert eda.counts.imbalance["defect_type_max_to_min"] == 1.0


def test_per_image_rows(report) -> None:
    t = report.categories["widget"].image_stats.set_index("path")
    assert len(t) == 12  # the non-image file is not a row
    root = Path(report.root) / "widget"
    gray = t.loc[str(root / "train/good/005.png")]
    assert (gray["channels"], gray["mode"], gray["mean_g"], gray["std_r"]) == (1, "L", 105.0, 0.0)
    scratch = t.loc[str(root / "test/scratch/000.png")]
    assert (scratch["mean_r"], scratch["mean_g"], scratch["mean_b"]) == (90.0, 100.0, 110.0)
    assert scratch["brightness"] == pytest.approx(0.299 * 90 + 0.587 * 100 + 0.114 * 110)
    wide = t.loc[str(root / "test/good/002.png")]
    assert (wide["height"], wide["width"], wide["aspect_ratio"]) == (4, 8, 2.0)


def test_outliers_and_dimensions(report) -> None:
    eda = report.categories["widget"]
    t = eda.image_stats
    flagged = t.loc[t["intensity_outlier"], "path"].tolist()
    assert flagged == [str(Path(report.root) / "widget/test/good/001.png")]
    # brightness median 102.5, MAD 1.5 (see conftest)
    assert t.loc[t["intensity_outlier"], "brightness_z"].iloc[0] == pytest.approx(0.6745 * 147.5 / 1.5)
    assert t.loc[t["abnormal_dimensions"], "path"].tolist() == [str(Path(report.root) / "widget/test/good/002.png")]
    agg = eda.aggregates
    assert agg["modal_size"] == [4, 4] and agg["sizes"] == {"4x4": 11, "4x8": 1}
    assert agg["channels"] == {"1": 1, "3": 11} and agg["modes"] == {"L": 1, "RGB": 11}


def test_pooled_channel_statistics(report) -> None:
    agg = report.categories["widget"].aggregates
    values = [(v, 16) for v in (100, 101, 102, 103, 104, 105, 102, 250, 104)] + [(103, 32)]
    r = np.repeat([v for v, _ in values] + [90, 90], [n for _, n in values] + [16, 16])
    assert agg["pixels"] == 12 * 16 + 16
    assert agg["channel_mean"][0] == pytest.approx(r.mean())
    assert agg["channel_std"][0] == pytest.approx(r.std())


def test_unreadable_file_listed(report) -> None:
    bad = report.categories["widget"].unreadable
    assert [(Path(b["path"]).name, b["kind"]) for b in bad] == [("001.png", "not_an_image")]
    # found by the header-only integrity check and by the EDA's decode: reported once
    kinds = sorted(p["kind"] for p in report.problems if p["path"] == bad[0]["path"])
    assert kinds == ["missing_mask", "not_an_image"]  # (it also has no mask)


def test_histograms_per_class(report) -> None:
    h = report.categories["widget"].histograms
    assert h.keys() == ["test/dent", "test/good", "test/scratch", "train/good"]
    assert h.images("train/good") == 6 and h.images("test/dent") == 1
    c = h.counts("test/scratch")
    assert (c[0, 90], c[1, 100], c[2, 110]) == (32, 32, 32)
    assert h.counts("train/good")[0, 100:106].tolist() == [16] * 6
    assert h.normalised("test/good")[1, 103] == pytest.approx(32 / 64)


def test_heatmaps_areas_centroids(report) -> None:
    m = report.categories["widget"].masks
    assert m.counts() == {"dent": 1, "scratch": 2, ALL: 3}
    maps = m.heatmaps()
    # scratch: top-left 2x2 block (cell (0,0) full) and pixel (3,3) (a quarter of cell (1,1))
    np.testing.assert_allclose(maps["scratch"], [[0.5, 0.0], [0.0, 0.125]])
    np.testing.assert_allclose(maps["dent"], np.ones((2, 2)))
    np.testing.assert_allclose(maps[ALL], [[2 / 3, 1 / 3], [1 / 3, 1.25 / 3]])
    areas = m.mask_table().set_index("defect_type")["area_fraction"]
    assert sorted(areas["scratch"].tolist()) == pytest.approx([1 / 16, 4 / 16]) and areas["dent"] == 1.0
    cents = m.centroid_table()
    xy = sorted(zip(cents["x"].round(6), cents["y"].round(6)))
    assert xy == [(0.25, 0.25), (0.5, 0.5), (0.875, 0.875)]


def test_comparisons(report) -> None:
    comps = {c.name: c for c in report.categories["widget"].comparisons}
    assert set(comps) == {"good_vs_defective", "train_good_vs_test_good", "good_vs_dent", "good_vs_scratch"}
    gvd = comps["good_vs_defective"]
    assert (gvd.n_a, gvd.n_b) == (3, 3)
    row = gvd.table.set_index("feature").loc["mean_r"]
    assert row["mean_a"] == pytest.approx((102 + 250 + 103) / 3) and row["mean_b"] == pytest.approx((90 + 90 + 104) / 3)
    assert 0 <= row["ks_pvalue"] <= 1 and row["ks_statistic"] > 0
    assert np.isnan(comps["good_vs_dent"].table["ks_pvalue"]).all()  # one dent image: no test


def test_json_is_strict_and_complete(report) -> None:
    d = json.loads(report.to_json())  # to_json refuses NaN tokens, so this is strict JSON
    cat = d["categories"]["widget"]
    assert cat["heatmaps"]["size"] == [2, 2]
    assert cat["heatmaps"]["maps"]["scratch"]["values"] == [[0.5, 0.0], [0.0, 0.125]]
    assert len(cat["image_stats"]) == 12 and cat["intensity_outliers"][0]["path"].endswith("001.png")
    assert "image_stats" not in report.to_dict(per_image=False)["categories"]["widget"]


def test_workers_give_identical_results(hand_dataset: Path, report) -> None:
    threaded = run_eda(hand_dataset, heatmap_size=2, workers=3)
    assert threaded.to_dict() == report.to_dict()


def test_progress_is_monotonic_and_completes(hand_dataset: Path) -> None:
    seen: list[float] = []
    run_eda(hand_dataset, "widget", heatmap_size=2, progress=lambda msg, f: seen.append(f))
    assert seen[-1] == 1.0 and seen == sorted(seen) and all(0 <= f <= 1 for f in seen)


def test_not_a_dataset_and_unknown_category(tmp_path: Path, hand_dataset: Path) -> None:
    with pytest.raises(DatasetError, match="not a dataset"):
        run_eda(tmp_path)
    with pytest.raises(DatasetError, match="no category 'nope'"):
        run_eda(hand_dataset, "nope")


def test_synthetic_dataset_counts(tiny_dataset: Path) -> None:
    from qc_models.data.synthetic import defect_types
    from tests.fixtures_data import TINY_DATASET_ARGS as ARGS

    rep = run_eda(tiny_dataset, heatmap_size=8)
    assert len(rep.categories) >= 4
    for name, eda in rep.categories.items():
        n_types = len(defect_types(name))
        n_defective = ARGS["n_per_defect"] * n_types
        assert eda.counts.totals["train_good"] == ARGS["n_train"] and eda.counts.totals["test_good"] == ARGS["n_test_good"]
        assert eda.counts.totals["test_defective"] == n_defective and eda.masks.counts()[ALL] == n_defective
        assert not eda.unreadable and len(eda.image_stats) == eda.counts.totals["images"]
        assert eda.masks.heatmaps()[ALL].max() > 0  # defects were drawn somewhere
        size = ARGS["size"]
        assert eda.aggregates["sizes"] == {f"{size}x{size}": eda.counts.totals["images"]}
    if rep.integrity_checked:
        assert rep.problems == []
