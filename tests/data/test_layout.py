"""Layout discovery on generated data: categories, splits, defect types, mask pairing by stem."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from qc_models.data.layout import DatasetError, list_categories, open_category


@pytest.fixture()
def wood(tmp_path: Path, tiny_dataset: Path) -> Path:
    """A private copy of the tiny dataset's wood category (tests delete files)."""
    shutil.copytree(tiny_dataset / "wood", tmp_path / "wood")
    return tmp_path


def test_splits_types_and_labels(tiny_dataset: Path) -> None:
    layout = open_category(tiny_dataset, "bottle")
    assert layout.defect_types() == ["broken_large", "broken_small", "contamination"]
    test = layout.samples("test")
    assert {s.defect_type for s in test} == {"good", "broken_large", "broken_small", "contamination"}
    assert all((s.label == 1) == (s.mask_path is not None) for s in test)
    assert all(s.split == "train" and s.mask_path is None for s in layout.samples("train"))
    assert len(layout.samples()) == len(layout.samples("train")) + len(test)


def test_masks_pair_by_stem_after_an_image_is_deleted(wood: Path) -> None:
    (wood / "wood" / "test" / "crack" / "001.png").unlink()
    cracks = [s for s in open_category(wood, "wood").samples("test") if s.defect_type == "crack"]
    assert [s.path.name for s in cracks] == ["000.png", "002.png"]
    assert [s.mask_path.name for s in cracks] == ["000_mask.png", "002_mask.png"]


def test_missing_mask_gives_none_and_others_stay_paired(wood: Path) -> None:
    (wood / "wood" / "ground_truth" / "hole" / "000_mask.png").unlink()
    holes = [s for s in open_category(wood, "wood").samples("test") if s.defect_type == "hole"]
    assert holes[0].mask_path is None
    assert [s.mask_path.name for s in holes[1:]] == ["001_mask.png", "002_mask.png"]


def test_non_image_files_are_left_out(wood: Path) -> None:
    (wood / "wood" / "train" / "good" / "readme.txt").write_text("x")
    (wood / "wood" / "train" / "good" / ".hidden.png").write_bytes(b"")
    names = [s.path.name for s in open_category(wood, "wood").samples("train")]
    assert "readme.txt" not in names and ".hidden.png" not in names and len(names) == 12


def test_not_a_dataset_and_unknown_category(tmp_path: Path, tiny_dataset: Path) -> None:
    with pytest.raises(DatasetError, match="not a dataset"):
        list_categories(tmp_path)
    with pytest.raises(DatasetError, match="not a directory"):
        list_categories(tmp_path / "missing")
    with pytest.raises(DatasetError, match="no category 'zipper'"):
        open_category(tiny_dataset, "zipper")
