"""The background job registry: progress, results, failures, cancellation, one job per key."""

from __future__ import annotations

import threading

import pytest

from dashboard.jobs import CANCELLED, DONE, FAILED, JobConflictError, JobRegistry


def test_job_reports_progress_and_result() -> None:
    reg = JobRegistry()
    seen = threading.Event()
    release = threading.Event()

    def body(progress, stop):
        progress("half way", 0.5)
        seen.set()
        release.wait(5)
        return 42

    job = reg.submit("train", "train:carpet", "Train carpet", body)
    assert seen.wait(5)
    assert (job.status, job.progress, job.message) == ("running", 0.5, "half way")
    assert reg.active("train") == [job]
    gen = reg.generation
    release.set()
    reg.wait(job.id, timeout=5)
    assert job.status == DONE and job.result == 42 and job.progress == 1.0
    assert job.finished_at is not None and job.elapsed_s >= 0
    assert reg.generation == gen + 1
    assert reg.active() == []
    assert reg.latest("train", "train:carpet") is job


def test_failure_is_captured_not_raised() -> None:
    reg = JobRegistry()

    def body(progress, stop):
        raise ValueError("/data/x.png: not a recognised image file")

    job = reg.submit("inspect", "k", "bad", body)
    reg.wait(job.id, timeout=5)
    assert job.status == FAILED
    assert "not a recognised image" in job.error


def test_same_key_conflicts_until_finished() -> None:
    reg = JobRegistry()
    release = threading.Event()
    job = reg.submit("train", "train:carpet", "Train carpet", lambda p, s: release.wait(5))
    with pytest.raises(JobConflictError, match="Train carpet"):
        reg.submit("train", "train:carpet", "again", lambda p, s: None)
    other = reg.submit("train", "train:grid", "Train grid", lambda p, s: None)  # other keys are free
    release.set()
    reg.wait(job.id, 5)
    reg.wait(other.id, 5)
    again = reg.submit("train", "train:carpet", "again", lambda p, s: "ok")
    assert reg.wait(again.id, 5).result == "ok"


def test_cancel_sets_stop_event_and_status() -> None:
    reg = JobRegistry()
    started = threading.Event()

    def body(progress, stop):
        started.set()
        stop.wait(5)
        return "partial"

    job = reg.submit("inspect", "k", "run", body)
    assert started.wait(5)
    assert reg.cancel(job.id) is True
    reg.wait(job.id, 5)
    assert job.status == CANCELLED and job.result == "partial"
    assert reg.cancel(job.id) is False
    assert reg.cancel("nope") is False


def test_old_finished_jobs_are_pruned() -> None:
    reg = JobRegistry(keep_finished=2)
    ids = []
    for i in range(4):
        job = reg.submit("k", f"key{i}", f"job{i}", lambda p, s: None)
        reg.wait(job.id, 5)
        ids.append(job.id)
    reg.submit("k", "last", "last", lambda p, s: None)
    remaining = {j.id for j in reg.jobs()}
    assert ids[0] not in remaining and ids[-1] in remaining
    assert len(remaining) <= 3


def test_meta_is_shared_with_the_body() -> None:
    reg = JobRegistry()
    meta: dict = {}
    job = reg.submit("inspect", "k", "run", lambda p, s: meta.__setitem__("run_id", 7), meta=meta)
    reg.wait(job.id, 5)
    assert job.meta == {"run_id": 7}
