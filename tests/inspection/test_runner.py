"""End-to-end runs against a real SQLite file with the stand-in scorer."""

import hashlib
import threading

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import func, select

from db.schema import ImageResult, InspectionRun, ModelVersion, run_models
from db.session import get_engine, session_scope
from qc_models.inspection import (
    InspectionError,
    continue_run,
    create_run,
    decode_grid,
    run_inspection,
)
from qc_models.inspection import runner as runner_mod
from tests.inspection.helpers import FakeScorer, make_flat_folder, make_test_folder


def _rows(db_url, run_id):
    with session_scope(get_engine(db_url)) as s:
        return list(s.execute(select(ImageResult).where(ImageResult.run_id == run_id).order_by(ImageResult.rel_path)).scalars())


def _run(db_url, run_id):
    with session_scope(get_engine(db_url)) as s:
        return s.get(InspectionRun, run_id)


def test_labelled_run_end_to_end(tmp_path, db_url):
    test = make_test_folder(tmp_path, n_good=4, defects={"scratch": 3, "hole": 2})
    messages = []
    summary = run_inspection(
        test, db_url=db_url, line="L1", shift="night", lot="lot-7", batch_size=4,
        scorer=FakeScorer(), progress=lambda m, f: messages.append((m, f)),
    )
    assert (summary.status, summary.n_images, summary.n_scored, summary.n_errors) == ("completed", 9, 9, 0)
    assert summary.n_defective == 5 and summary.defect_rate == pytest.approx(5 / 9)
    assert summary.category == "widget"  # from the scorer
    assert summary.per_defect_type == {
        "good": {"n_images": 4, "n_defective": 0, "n_errors": 0},
        "hole": {"n_images": 2, "n_defective": 2, "n_errors": 0},
        "scratch": {"n_images": 3, "n_defective": 3, "n_errors": 0},
    }
    assert messages[-1][1] == 1.0 and "images/s" in messages[-1][0] and "9/9" in messages[-1][0]

    rows = _rows(db_url, summary.run_id)
    assert [r.rel_path for r in rows][:2] == ["good/000.png", "good/001.png"]
    bad = next(r for r in rows if r.rel_path == "scratch/000.png")
    assert (bad.known_defect_type, bad.status, bad.is_defective) == ("scratch", "ok", True)
    assert (bad.bbox_x, bad.bbox_y, bad.bbox_w, bad.bbox_h) == (8, 10, 6, 6)
    assert bad.anomaly_area_fraction == pytest.approx(36 / 32**2)
    assert (bad.width, bad.height) == (32, 32)
    assert bad.content_hash == hashlib.sha256((test / "scratch/000.png").read_bytes()).hexdigest()
    assert (bad.cae_score, bad.cae_defective, bad.patchcore_raw) == (1.0, True, 10.0)
    assert bad.unet_score is None  # model absent from the set
    assert (bad.category, bad.line, bad.shift, bad.lot) == ("widget", "L1", "night", "lot-7")
    grid = decode_grid(bad.anomaly_grid)
    assert grid[10, 9] > 0.9 and grid[0, 0] < 0.3  # defect at rows 10-15, cols 8-13 of 32
    good = rows[0]
    assert (good.is_defective, good.bbox_x, good.known_defect_type) == (False, None, "good")

    run = _run(db_url, summary.run_id)
    assert run.status == "completed" and run.finished_at is not None and run.n_defective == 5
    assert run.source_folder == str(test.resolve()) and run.operator and run.host
    with session_scope(get_engine(db_url)) as s:
        versions = s.execute(select(ModelVersion.model_name, ModelVersion.version)).all()
        links = s.execute(select(func.count()).select_from(run_models)).scalar_one()
    assert sorted(versions) == [("cae", "v1"), ("ensemble", "v1"), ("patchcore", "v1")]
    assert links == 3


def test_model_versions_are_upserted_by_path(tmp_path, db_url):
    folder = make_flat_folder(tmp_path / "imgs", 3)
    a = run_inspection(folder, db_url=db_url, scorer=FakeScorer())
    b = run_inspection(folder, db_url=db_url, scorer=FakeScorer())
    assert a.run_id != b.run_id
    with session_scope(get_engine(db_url)) as s:
        assert s.execute(select(func.count()).select_from(ModelVersion)).scalar_one() == 3
        assert s.execute(select(func.count()).select_from(run_models)).scalar_one() == 6


def test_bad_files_become_error_rows_and_the_run_completes(tmp_path, db_url, monkeypatch):
    folder = make_flat_folder(tmp_path / "imgs", 4)
    (folder / "empty.png").write_bytes(b"")
    (folder / "text.jpg").write_text("not an image at all")
    good_bytes = (folder / "img_0001.png").read_bytes()
    (folder / "truncated.png").write_bytes(good_bytes[: len(good_bytes) // 2])
    Image.new("RGB", (64, 64)).save(folder / "huge.png")
    (folder / "readme.txt").write_text("skipped, not recorded")
    monkeypatch.setattr(runner_mod, "MAX_INSPECT_PIXELS", 2000)  # 32x32 passes, 64x64 is "huge"
    summary = run_inspection(folder, db_url=db_url, scorer=FakeScorer(), batch_size=3)
    assert summary.status == "completed"
    assert (summary.n_images, summary.n_scored, summary.n_errors, summary.n_skipped) == (8, 4, 4, 1)
    errors = {r.rel_path: r.error_text for r in _rows(db_url, summary.run_id) if r.status == "error"}
    assert set(errors) == {"empty.png", "text.jpg", "truncated.png", "huge.png"}
    assert errors["empty.png"].startswith("empty_file")
    assert errors["text.jpg"].startswith("not_an_image")
    assert errors["truncated.png"].startswith("corrupt")
    assert errors["huge.png"].startswith("decompression_bomb") and "64x64" in errors["huge.png"]
    rows = [r for r in _rows(db_url, summary.run_id) if r.status == "error"]
    assert all(r.is_defective is None and r.width is None and r.content_hash for r in rows)


def test_empty_folder_is_a_clear_error(tmp_path, db_url):
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(InspectionError, match="no images to inspect.*1 other file"):
        run_inspection(tmp_path, db_url=db_url, scorer=FakeScorer())


def test_commits_at_most_64_images_per_batch(tmp_path, db_url):
    folder = make_flat_folder(tmp_path / "imgs", 70, every_defective=1000)
    scorer = FakeScorer()
    summary = run_inspection(folder, db_url=db_url, scorer=scorer, batch_size=100)
    assert scorer.batch_sizes == [64, 6]
    assert summary.n_scored == 70 and summary.n_defective == 1


def test_create_then_continue_in_a_thread_and_stop_event(tmp_path, db_url):
    folder = make_flat_folder(tmp_path / "imgs", 12)
    scorer = FakeScorer()
    run_id = create_run(folder, db_url=db_url, scorer=scorer, lot="x")
    assert _run(db_url, run_id).status == "running" and _run(db_url, run_id).n_images == 12
    stop = threading.Event()
    box = {}

    def progress(message, fraction):
        stop.set()  # ask to stop after the first batch

    t = threading.Thread(target=lambda: box.update(s=continue_run(run_id, db_url=db_url, scorer=scorer,
                                                                  batch_size=4, progress=progress, stop_event=stop)))
    t.start()
    t.join(60)
    first = box["s"]
    assert first.status == "interrupted" and 4 <= first.n_scored < 12
    assert _run(db_url, run_id).status == "interrupted"
    done = continue_run(run_id, db_url=db_url, scorer=scorer, batch_size=4)
    assert done.status == "completed" and done.n_scored == 12 and done.n_new == 12 - first.n_scored
    assert len({r.rel_path for r in _rows(db_url, run_id)}) == len(_rows(db_url, run_id)) == 12
    again = continue_run(run_id, db_url=db_url, scorer=scorer)
    assert again.status == "completed" and again.n_new == 0


def test_resume_refuses_other_models_unknown_run_and_other_folder(tmp_path, db_url):
    folder = make_flat_folder(tmp_path / "imgs", 3)
    other = make_flat_folder(tmp_path / "other", 2)
    run_id = create_run(folder, db_url=db_url, scorer=FakeScorer())
    with pytest.raises(InspectionError, match="mix model versions"):
        continue_run(run_id, db_url=db_url, scorer=FakeScorer(version="v2"))
    with pytest.raises(InspectionError, match="no inspection run with id 999"):
        continue_run(999, db_url=db_url, scorer=FakeScorer())
    with pytest.raises(InspectionError, match="not .*other"):
        run_inspection(other, db_url=db_url, scorer=FakeScorer(), resume_run_id=run_id)


def test_maps_at_another_resolution_are_resized(tmp_path, db_url):
    folder = make_flat_folder(tmp_path / "imgs", 1, every_defective=1)

    class HalfMaps(FakeScorer):
        def score(self, images):
            out = super().score(images)
            for s in out:
                s.maps = {k: v[::2, ::2] for k, v in s.maps.items()}
            return out

    summary = run_inspection(folder, db_url=db_url, scorer=HalfMaps())
    row = _rows(db_url, summary.run_id)[0]
    assert (row.bbox_x, row.bbox_y) == (4, 4) and 4 <= row.bbox_w <= 6
    assert np.isclose(row.anomaly_area_fraction, 25 / 1024, atol=0.02)


def test_bad_batch_size_and_category_from_folder(tmp_path, db_url):
    test = make_test_folder(tmp_path, n_good=1, defects={"hole": 1})
    with pytest.raises(InspectionError, match="batch size must be at least 1"):
        run_inspection(test, db_url=db_url, scorer=FakeScorer(), batch_size=0)

    class NoCategory(FakeScorer):
        category = None

    summary = run_inspection(test, db_url=db_url, scorer=NoCategory())
    assert summary.category == "widget"  # <category>/test
    summary = run_inspection(test, db_url=db_url, scorer=NoCategory(), category="given")
    assert summary.category == "given"
