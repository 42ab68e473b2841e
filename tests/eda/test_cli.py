"""``qc eda``: JSON schema, human summary and exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qc_models.cli import main

CATEGORY_KEYS = {
    "category": str, "counts": list, "totals": dict, "imbalance": dict, "aggregates": dict, "class_summary": list,
    "image_stats": list, "abnormal_dimensions": list, "intensity_outliers": list, "unreadable": list,
    "histograms": dict, "heatmaps": dict, "area_fraction": dict, "masks": list, "centroids": list, "comparisons": list,
}


def _is_number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict:
    rc = main(["eda", *argv, "--json"])
    out = capsys.readouterr().out
    assert rc == 0
    return json.loads(out)


def test_json_schema(hand_dataset: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = _run_json(capsys, str(hand_dataset), "--heatmap-size", "32")
    assert d["schema_version"] == 1 and d["root"] == str(hand_dataset)
    assert isinstance(d["integrity_checked"], bool) and isinstance(d["problems"], list)
    cat = d["categories"]["widget"]
    for key, typ in CATEGORY_KEYS.items():
        assert isinstance(cat[key], typ), key
    assert set(cat["counts"][0]) == {"split", "defect_type", "images", "masks"}
    assert all(isinstance(v, int) for v in cat["totals"].values())
    assert all(_is_number(v) for v in cat["aggregates"]["channel_mean"]) and len(cat["aggregates"]["channel_std"]) == 3
    row = cat["image_stats"][0]
    assert isinstance(row["path"], str) and isinstance(row["intensity_outlier"], bool)
    assert all(_is_number(row[k]) for k in ("height", "width", "channels", "mean_r", "std_b", "brightness_z"))
    hist = cat["histograms"]
    assert hist["bins"] == 256
    rgb = hist["classes"]["train/good"]["rgb"]
    assert len(rgb) == 3 and all(len(ch) == 256 for ch in rgb)
    assert sum(rgb[0]) == pytest.approx(1.0)
    heat = cat["heatmaps"]
    assert heat["size"] == [32, 32] and heat["json_size"] == [16, 16]  # downsampled for JSON
    values = heat["maps"]["all"]["values"]
    assert len(values) == 16 and all(len(r) == 16 and all(_is_number(v) for v in r) for r in values)
    assert heat["maps"]["all"]["masks"] == 3
    assert set(cat["area_fraction"]) == {"all", "dent", "scratch"} and cat["area_fraction"]["all"]["count"] == 3
    assert set(cat["centroids"][0]) == {"path", "defect_type", "x", "y", "area_fraction"}
    comp = cat["comparisons"][0]
    assert {"name", "group_a", "group_b", "n_a", "n_b", "features"} <= set(comp)
    feat = comp["features"][0]
    assert {"feature", "ks_statistic", "ks_pvalue", "wasserstein", "wasserstein_scaled"} <= set(feat)
    assert feat["ks_pvalue"] is None or _is_number(feat["ks_pvalue"])


def test_exit_zero_when_problems_found(hand_dataset: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = _run_json(capsys, str(hand_dataset), "--category", "widget")
    bad = str(hand_dataset / "widget" / "test" / "dent" / "001.png")
    assert [u["path"] for u in d["categories"]["widget"]["unreadable"]] == [bad]
    if d["integrity_checked"]:
        assert bad in {p["path"] for p in d["problems"]}
        assert all({"path", "kind", "message"} <= set(p) for p in d["problems"])


def test_skip_integrity_and_no_image_stats(hand_dataset: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = _run_json(capsys, str(hand_dataset), "--skip-integrity", "--no-image-stats")
    assert d["integrity_checked"] is False and d["problems"] == []
    assert "image_stats" not in d["categories"]["widget"]


def test_human_summary(hand_dataset: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eda", str(hand_dataset)]) == 0
    out = capsys.readouterr().out
    assert "[widget] train good 6, test good 3, test defective 4 (dent=2, scratch=2)" in out
    assert "intensity outliers 1" in out and "unreadable 1" in out


def test_exit_two_when_not_a_dataset(tmp_path: Path, hand_dataset: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eda", str(tmp_path), "--json"]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("error: ") and "not a dataset" in captured.err and captured.out == ""
    assert main(["eda", str(hand_dataset), "--category", "nope"]) == 2
    assert "no category 'nope'" in capsys.readouterr().err
