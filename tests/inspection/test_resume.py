"""Exactly-once resume after a crash: no duplicates, no gaps, consistent counters."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from db.schema import ImageResult, InspectionRun
from db.session import get_engine, session_scope
from qc_models.inspection import continue_run, run_inspection
from tests.inspection.helpers import FakeScorer, make_flat_folder

ROOT = Path(__file__).resolve().parents[2]


def _state(db_url, run_id):
    with session_scope(get_engine(db_url)) as s:
        run = s.get(InspectionRun, run_id)
        paths = list(s.execute(select(ImageResult.rel_path).where(ImageResult.run_id == run_id)).scalars())
        n_def = s.execute(
            select(func.count()).where(ImageResult.run_id == run_id, ImageResult.is_defective.is_(True))
        ).scalar_one()
    return run, paths, n_def


def test_scorer_crash_marks_failed_and_resume_completes(tmp_path, db_url):
    folder = make_flat_folder(tmp_path / "imgs", 22)
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_inspection(folder, db_url=db_url, scorer=FakeScorer(fail_after=2), batch_size=4)
    with session_scope(get_engine(db_url)) as s:
        run_id = s.execute(select(func.max(InspectionRun.id))).scalar_one()
    run, paths, n_def = _state(db_url, run_id)
    assert run.status == "failed" and "simulated crash" in run.error_text
    assert len(paths) == 8 and run.n_scored == 8 and run.n_defective == n_def  # two committed batches

    summary = continue_run(run_id, db_url=db_url, scorer=FakeScorer(), batch_size=4)
    run, paths, n_def = _state(db_url, run_id)
    assert summary.status == run.status == "completed" and run.error_text is None
    assert summary.n_new == 14
    assert sorted(paths) == sorted(p.name for p in folder.iterdir())  # no gaps
    assert len(paths) == len(set(paths)) == run.n_scored == 22  # no duplicates
    assert run.n_defective == n_def == 8  # i % 3 == 0 for i < 22


_CHILD = """
import sys
from tests.inspection.helpers import FakeScorer
from qc_models.inspection import run_inspection
run_inspection(sys.argv[1], db_url=sys.argv[2], batch_size=4, scorer=FakeScorer(delay=0.15),
               on_run_created=lambda rid: print(rid, flush=True))
"""


def test_sigkill_mid_run_leaves_a_consistent_db_and_resume_completes(tmp_path, db_url):
    folder = make_flat_folder(tmp_path / "imgs", 40)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "QC_TORCH_THREADS": "1"}
    child = subprocess.Popen([sys.executable, "-c", _CHILD, str(folder), db_url], cwd=ROOT, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        run_id = int(child.stdout.readline())
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            run, paths, _ = _state(db_url, run_id)
            if len(paths) >= 8:
                break
            time.sleep(0.05)
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait(30)
    run, paths, n_def = _state(db_url, run_id)
    assert run.status == "running"  # nobody could mark it: resume must handle this
    assert 8 <= len(paths) < 40 and len(paths) % 4 == 0  # whole batches only
    assert run.n_scored == len(paths) and run.n_defective == n_def  # counters match the rows

    n_before = len(paths)
    summary = continue_run(run_id, db_url=db_url, scorer=FakeScorer(), batch_size=4)
    run, paths, _ = _state(db_url, run_id)
    assert summary.status == "completed" and summary.n_new == 40 - n_before
    assert len(paths) == len(set(paths)) == 40 == run.n_scored
