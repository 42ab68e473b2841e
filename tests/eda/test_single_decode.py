"""One decode per file: header-only integrity check plus the EDA's decode failures as problems."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import qc_models.data.integrity as integrity
from qc_models.eda import run_eda
from tests.eda.conftest import write_mask


def _noise(path: Path, seed: int, size: int = 32) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)).save(path)


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-300])  # drops IEND and the end of IDAT; the header still parses


@pytest.fixture(scope="module")
def damaged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Category ``part``: train/good 000-003 (002 truncated), test/good 000, test/crack 000-001
    with masks (001's mask truncated), test/crack/002.png empty (0 bytes, with a mask)."""
    root = tmp_path_factory.mktemp("damaged") / "data"
    cat = root / "part"
    for i in range(4):
        _noise(cat / "train" / "good" / f"{i:03d}.png", i)
    _truncate(cat / "train" / "good" / "002.png")
    _noise(cat / "test" / "good" / "000.png", 10)
    mask = np.zeros((32, 32), dtype=bool)
    mask[8:16, 4:20] = True
    for i in range(2):
        _noise(cat / "test" / "crack" / f"{i:03d}.png", 20 + i)
    write_mask(cat / "ground_truth" / "crack" / "000_mask.png", mask)
    (cat / "test" / "crack" / "002.png").write_bytes(b"")
    write_mask(cat / "ground_truth" / "crack" / "002_mask.png", mask)
    rng = np.random.default_rng(5)  # a noisy mask compresses badly, so truncation hits pixel data
    write_mask(cat / "ground_truth" / "crack" / "001_mask.png", rng.random((32, 32)) > 0.5)
    _truncate(cat / "ground_truth" / "crack" / "001_mask.png")
    return root


@pytest.fixture(scope="module")
def report(damaged: Path):
    return run_eda(damaged, heatmap_size=4)


def _kinds(report) -> list[tuple[str, str, str]]:
    root = Path(report.root)
    return sorted((str(Path(p["path"]).relative_to(root)), p["kind"], p["split"]) for p in report.problems)


def test_truncated_files_are_problems_exactly_once(report) -> None:
    assert report.integrity_checked
    assert _kinds(report) == [
        ("part/ground_truth/crack/001_mask.png", "corrupt", "test"),
        ("part/test/crack/002.png", "empty_file", "test"),  # found by both passes, reported once
        ("part/train/good/002.png", "corrupt", "train"),
    ]
    p = next(p for p in report.problems if p["path"].endswith("train/good/002.png"))
    assert p["category"] == "part" and "truncated" in p["message"]


def test_counts_unaffected_by_damage(report) -> None:
    eda = report.categories["part"]
    assert eda.counts.totals["train_good"] == 4 and eda.counts.totals["test_defective"] == 3
    assert eda.counts.totals["images"] == 8 and eda.counts.totals["masks"] == 3
    assert len(eda.image_stats) == 6  # the truncated and the empty image have no row
    assert eda.masks.counts()["crack"] == 1  # the truncated mask is left out of the heatmap
    assert sorted((Path(u["path"]).name, u["kind"]) for u in eda.unreadable) == [
        ("001_mask.png", "corrupt"), ("002.png", "corrupt"), ("002.png", "empty_file")
    ]


def test_integrity_check_reads_headers_only(damaged: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[bool] = []
    real = integrity.check_dataset

    def spy(*args, **kwargs):
        calls.append(kwargs.get("decode", True))
        return real(*args, **kwargs)

    monkeypatch.setattr("qc_models.eda.report.check_dataset", spy)
    run_eda(damaged, "part", heatmap_size=4)
    assert calls == [False]


def test_skip_integrity_keeps_problems_empty(damaged: Path) -> None:
    rep = run_eda(damaged, heatmap_size=4, check_integrity=False)
    assert rep.problems == [] and not rep.integrity_checked
    assert len(rep.categories["part"].unreadable) == 3
