"""check_dataset / check_image: one broken-data case per problem kind, each naming the file."""

from __future__ import annotations

import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from qc_models.data.integrity import KINDS, Problem, check_dataset, check_image
from qc_models.data.layout import DatasetError


@pytest.fixture()
def ds(tmp_path: Path, tiny_dataset: Path) -> Path:
    """A private copy of two categories of the tiny dataset, to break."""
    for category in ("wood", "bottle"):
        shutil.copytree(tiny_dataset / category, tmp_path / category)
    return tmp_path


def _only(problems: list[Problem], kind: str) -> Problem:
    assert [p.kind for p in problems] == [kind], problems
    return problems[0]


def _save(path: Path, array: np.ndarray) -> None:
    Image.fromarray(array).save(path)


def test_generated_dataset_is_clean(tiny_dataset: Path) -> None:
    seen: list[float] = []
    assert check_dataset(tiny_dataset, progress=lambda m, f: seen.append(f)) == []
    assert seen[-1] == 1.0


def test_truncated_png_is_corrupt(ds: Path) -> None:
    path = ds / "wood" / "train" / "good" / "003.png"
    path.write_bytes(path.read_bytes()[:200])
    p = _only(check_dataset(ds), "corrupt")
    assert p.path == str(path) and (p.category, p.split) == ("wood", "train")
    assert check_dataset(ds, decode=False) == [], "header-only mode cannot see truncation"


def test_random_bytes_and_text_file(ds: Path) -> None:
    noise = ds / "wood" / "test" / "good" / "noise.png"
    noise.write_bytes(bytes(np.random.default_rng(0).integers(0, 256, 300, dtype=np.uint8)))
    notes = ds / "wood" / "train" / "good" / "notes.txt"
    notes.write_text("shift 2 notes")
    problems = check_dataset(ds, category="wood")
    assert {(p.path, p.kind) for p in problems} == {(str(noise), "not_an_image"), (str(notes), "not_an_image")}


def test_zero_byte_file(ds: Path) -> None:
    path = ds / "bottle" / "test" / "good" / "000.png"
    path.write_bytes(b"")
    assert _only(check_dataset(ds), "empty_file").path == str(path)


def test_missing_mask(ds: Path) -> None:
    (ds / "wood" / "ground_truth" / "crack" / "001_mask.png").unlink()
    p = _only(check_dataset(ds), "missing_mask")
    assert p.path == str(ds / "wood" / "test" / "crack" / "001.png") and "001_mask.png" in p.message


def test_orphan_mask(ds: Path) -> None:
    (ds / "bottle" / "test" / "broken_small" / "002.png").unlink()
    p = _only(check_dataset(ds), "orphan_mask")
    assert p.path == str(ds / "bottle" / "ground_truth" / "broken_small" / "002_mask.png")


def test_mask_of_wrong_size(ds: Path) -> None:
    mask = ds / "wood" / "ground_truth" / "hole" / "000_mask.png"
    _save(mask, np.zeros((32, 64), np.uint8))
    p = _only(check_dataset(ds), "mask_size_mismatch")
    assert p.path == str(mask) and "64x32" in p.message and "64x64" in p.message


def test_abnormal_dimensions(ds: Path) -> None:
    tiny = ds / "wood" / "train" / "good" / "000.png"
    _save(tiny, np.zeros((16, 16, 3), np.uint8))
    odd = ds / "wood" / "train" / "good" / "001.png"
    _save(odd, np.zeros((80, 80, 3), np.uint8))
    thin = ds / "bottle" / "test" / "good" / "001.png"
    _save(thin, np.zeros((40, 900, 3), np.uint8))
    problems = check_dataset(ds)
    assert {p.path for p in problems} == {str(tiny), str(odd), str(thin)}
    assert all(p.kind == "abnormal_dimensions" for p in problems)
    messages = {Path(p.path).name + p.category: p.message for p in problems}
    assert "smaller than 32" in messages["000.pngwood"] and "64x64" in messages["001.pngwood"]
    assert "aspect ratio" in messages["001.pngbottle"]


def test_empty_folders(ds: Path) -> None:
    for f in (ds / "wood" / "train" / "good").iterdir():
        f.unlink()
    (ds / "bottle" / "test" / "crack").mkdir()
    problems = check_dataset(ds)
    assert {(p.path, p.kind) for p in problems} == {
        (str(ds / "wood" / "train" / "good"), "empty_folder"),
        (str(ds / "bottle" / "test" / "crack"), "empty_folder"),
    }


def _bomb_png(path: Path) -> None:
    ihdr = struct.pack(">IIBBBBB", 60_000, 60_000, 8, 2, 0, 0, 0)
    chunk = lambda tag, data: struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))  # noqa: E731
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 99)) + chunk(b"IEND", b""))


def test_decompression_bomb(ds: Path) -> None:
    path = ds / "bottle" / "train" / "good" / "005.png"
    _bomb_png(path)
    assert _only(check_dataset(ds), "decompression_bomb").path == str(path)
    assert [p.kind for p in check_dataset(ds, max_pixels=1000)].count("decompression_bomb") > 20


def test_check_image_for_batch_inspection(tmp_path: Path) -> None:
    good = tmp_path / "ok.png"
    _save(good, np.zeros((48, 48, 3), np.uint8))
    assert check_image(good) is None
    gray16 = tmp_path / "g16.tif"
    Image.fromarray(np.zeros((40, 40), np.uint16)).save(gray16)
    assert check_image(gray16) is None
    for name, content, kind in (("a.png", b"", "empty_file"), ("b.txt", b"x", "not_an_image"), ("c.bmp", b"BMxx", "not_an_image")):
        (tmp_path / name).write_bytes(content)
        problem = check_image(tmp_path / name)
        assert problem is not None and problem.kind == kind and problem.path == str(tmp_path / name)
    bomb = tmp_path / "bomb.png"
    _bomb_png(bomb)
    assert check_image(bomb).kind == "decompression_bomb"
    assert check_image(tmp_path / "gone.png").kind == "missing"


def test_problem_is_json_able_and_kinds_are_documented(ds: Path) -> None:
    (ds / "wood" / "train" / "good" / "000.png").write_bytes(b"")
    d = check_dataset(ds)[0].to_dict()
    assert d == {"path": str(ds / "wood" / "train" / "good" / "000.png"), "kind": "empty_file",
                 "message": "file is empty (0 bytes)", "category": "wood", "split": "train"}
    assert {"corrupt", "not_an_image", "empty_file", "decompression_bomb", "missing_mask", "orphan_mask",
            "mask_size_mismatch", "abnormal_dimensions", "empty_folder"} <= set(KINDS)


def test_not_a_dataset_raises(tmp_path: Path, ds: Path) -> None:
    with pytest.raises(DatasetError):
        check_dataset(tmp_path / "nothing")
    with pytest.raises(DatasetError, match="no category"):
        check_dataset(ds, category="carpet")
