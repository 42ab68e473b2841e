"""The real-photograph check's own parts: its defects change exactly their region, missing photos are named."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

_SPEC = importlib.util.spec_from_file_location(
    "photo_texture_check", Path(__file__).resolve().parents[2] / "benchmarks" / "photo_texture_check.py")
check = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(check)


@pytest.mark.parametrize("kind", check.DEFECTS)
def test_each_defect_changes_its_region_and_nothing_else(kind: str) -> None:
    rng = np.random.default_rng(0)
    photo = rng.integers(60, 200, (512, 512), dtype=np.uint8)
    foreign = np.zeros((512, 512), np.uint8)  # far from the texture: a visible patch
    img = check.crops(photo, rng, 1, 0, 256)[0]
    out, mask = check.add_defect(img, kind, rng, foreign)
    assert out.shape == img.shape == (256, 256, 3) and out.dtype == np.uint8 and mask.shape == (256, 256)
    assert 0.0005 < mask.mean() < 0.1  # a local defect
    changed = np.abs(out.astype(int) - img.astype(int)).max(axis=2) > 0
    # A soft-edged stain (blur sigma 2, 17-px kernel) may bleed 8 px past its region; the others stay inside.
    region = cv2.dilate(mask.astype(np.uint8), np.ones((17, 17), np.uint8)).astype(bool) if kind == "stain" else mask
    assert not (changed & ~region).any()
    assert changed[mask].mean() > 0.5


def test_crops_come_from_the_given_columns_at_native_resolution() -> None:
    photo = np.tile(np.arange(512, dtype=np.uint16)[None, :] // 2, (512, 1)).astype(np.uint8)  # value = column // 2
    for c in check.crops(photo, np.random.default_rng(1), 5, 256, 512):
        assert c.shape == (256, 256, 3) and c.min() >= 128 and np.ptp(c[0, :, 0]) == 127  # right half, no resizing


def test_missing_photographs_are_named(tmp_path: Path) -> None:
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "brick.png")
    with pytest.raises(SystemExit, match="lacks grass.png, gravel.png, camera.png"):
        check.photos_folder(str(tmp_path))


def test_written_dataset_is_an_mvtec_layout_the_product_reads(tmp_path: Path) -> None:
    from qc_models.data import load_mask, open_category

    rng = np.random.default_rng(2)
    for name in (*check.TEXTURES, "camera"):
        Image.fromarray(rng.integers(60, 200, (512, 512), dtype=np.uint8)).save(tmp_path / f"{name}.png")
    root = check.write_dataset(tmp_path, tmp_path / "data", n_train=3, n_good=2, per_defect=1)
    for texture in check.TEXTURES:
        samples = list(open_category(root, texture).samples("test"))
        assert sorted({s.defect_type for s in samples}) == sorted(("good", *check.DEFECTS))
        assert len(list(open_category(root, texture).samples("train"))) == 3
        for s in samples:
            assert (s.mask_path is None) == (s.defect_type == "good")
            if s.mask_path is not None:
                assert load_mask(s.mask_path).any()
