"""Which files a run inspects and what the folder layout says about them."""

import hashlib

import pytest

from qc_models.inspection import InspectionError, scan_folder
from qc_models.inspection.scanning import file_sha256
from tests.inspection.helpers import make_test_folder, write_image


def test_test_folder_gives_labels_category_and_skips_side_files(tmp_path):
    test = make_test_folder(tmp_path, n_good=2, defects={"scratch": 1})
    (test / "notes.txt").write_text("line 3")
    (test / ".hidden.png").write_bytes(b"")
    write_image(test / "loose.png")
    src = scan_folder(test)
    assert src.rel_paths == ["good/000.png", "good/001.png", "loose.png", "scratch/000.png"]
    assert src.n_skipped == 1
    assert src.category_hint == "widget"
    assert [src.known_defect_type(p) for p in src.rel_paths] == ["good", "good", None, "scratch"]


def test_category_folder_means_its_test_folder(tmp_path):
    test = make_test_folder(tmp_path, n_good=1, defects={"hole": 1})
    src = scan_folder(test.parent)
    assert src.root == test.resolve()
    assert len(src) == 2  # train/good is not inspected


def test_single_defect_folder_is_labelled_by_its_name(tmp_path):
    test = make_test_folder(tmp_path, n_good=1, defects={"hole": 2})
    src = scan_folder(test / "hole")
    assert {src.known_defect_type(p) for p in src.rel_paths} == {"hole"}
    assert src.category_hint == "widget"


def test_plain_folder_has_no_labels(tmp_path):
    write_image(tmp_path / "a" / "x.png")
    src = scan_folder(tmp_path)
    assert src.known_defect_type("a/x.png") is None
    assert src.category_hint is None


def test_missing_and_non_folder_are_clear_errors(tmp_path):
    with pytest.raises(InspectionError, match="does not exist"):
        scan_folder(tmp_path / "nope")
    f = tmp_path / "f.png"
    f.write_bytes(b"x")
    with pytest.raises(InspectionError, match="not a folder"):
        scan_folder(f)


def test_hash_is_sha256_of_the_bytes(tmp_path):
    f = tmp_path / "b.bin"
    f.write_bytes(b"abc" * 1000)
    assert file_sha256(f) == hashlib.sha256(b"abc" * 1000).hexdigest()
    assert file_sha256(tmp_path / "missing") is None
