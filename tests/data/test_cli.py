"""``qc demo-data`` and ``qc check``: files written, tables printed, exit codes 0 / 1 / 2."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from qc_models.cli import main


def test_demo_data_writes_the_requested_dataset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "demo"
    argv = ["demo-data", str(out), "--categories", "carpet", "metal_nut", "--size", "32",
            "--train", "2", "--test-good", "1", "--per-defect", "1", "--seed", "3"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "100.0%" in captured.err and "wrote 2 categories" in captured.out
    assert sorted(p.name for p in out.iterdir()) == ["carpet", "metal_nut"]
    assert len(list((out / "carpet" / "train" / "good").glob("*.png"))) == 2
    assert len(list((out / "metal_nut" / "ground_truth").rglob("*_mask.png"))) == 4
    assert main(["check", str(out)]) == 0
    assert "no problems found" in capsys.readouterr().out


def test_demo_data_usage_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo-data", str(tmp_path), "--categories", "spaceship"]) == 2
    assert "unknown categories: spaceship" in capsys.readouterr().err
    (tmp_path / "wood").mkdir()
    (tmp_path / "wood" / "mine.txt").write_text("keep")
    assert main(["demo-data", str(tmp_path), "--categories", "wood", "--size", "32", "--train", "1"]) == 2
    assert "refusing to overwrite" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main(["demo-data", str(tmp_path), "--size", "4"])
    assert info.value.code == 2


def test_check_reports_problems_with_exit_1(tmp_path: Path, tiny_dataset: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copytree(tiny_dataset / "wood", tmp_path / "wood")
    (tmp_path / "wood" / "train" / "good" / "002.png").write_bytes(b"")
    (tmp_path / "wood" / "ground_truth" / "scratch" / "000_mask.png").unlink()
    assert main(["check", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "wood/train/good/002.png" in out and "empty_file" in out
    assert "wood/test/scratch/000.png" in out and "missing_mask" in out
    assert "2 problem(s) in 1 category (wood)" in out
    assert main(["check", str(tmp_path), "--json"]) == 1
    rows = json.loads(capsys.readouterr().out)
    assert sorted(r["kind"] for r in rows) == ["empty_file", "missing_mask"]


def test_check_not_a_dataset_exits_2(tmp_path: Path, tiny_dataset: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(tmp_path)]) == 2
    assert "not a dataset" in capsys.readouterr().err
    assert main(["check", str(tiny_dataset), "--category", "zipper"]) == 2
    assert "no category 'zipper'" in capsys.readouterr().err
    assert main(["check", str(tiny_dataset), "--category", "carpet", "--quick"]) == 0
