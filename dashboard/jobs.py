"""Background jobs that outlive a page view: training and batch inspection.

A Streamlit script reruns on every click and stops when the user navigates away,
so long work runs in a daemon thread owned by a process-wide :class:`JobRegistry`
(held in ``st.cache_resource``). Pages only read a job's progress snapshot and
poll it from an ``st.fragment(run_every=...)``; nothing here imports Streamlit,
so the registry is tested like any other Python object.
"""

from __future__ import annotations

import logging
import threading
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

log = logging.getLogger(__name__)

#: ``progress(message, fraction)``: the same callback the library's long functions take.
ProgressCallback = Callable[[str, float], None]
#: A job body: receives the progress callback and a stop event it should honour between steps.
JobFunction = Callable[[ProgressCallback, threading.Event], Any]

RUNNING = "running"
DONE = "done"
FAILED = "failed"
CANCELLED = "cancelled"


class JobConflictError(RuntimeError):
    """A job with the same key is still running (e.g. training the same category twice)."""


@dataclass
class Job:
    """One unit of background work and its live progress (written by the worker thread)."""

    id: str
    kind: str
    key: str
    label: str
    status: str = RUNNING
    progress: float = 0.0
    message: str = "starting"
    started_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    finished_at: datetime | None = None
    result: Any = None
    error: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)  # facts the body publishes early (e.g. a run id)
    stop_event: threading.Event = field(default_factory=threading.Event, repr=False)
    thread: threading.Thread | None = field(default=None, repr=False)

    @property
    def finished(self) -> bool:
        return self.status != RUNNING

    @property
    def elapsed_s(self) -> float:
        end = self.finished_at or datetime.now(timezone.utc)
        return (end - self.started_at).total_seconds()


class JobRegistry:
    """Thread-safe registry of background jobs, at most one running job per key.

    ``generation`` increases whenever a job finishes, so cached query results can
    use it as part of their key and refresh as soon as new rows were written.
    """

    def __init__(self, keep_finished: int = 50) -> None:
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._keep_finished = keep_finished
        self._generation = 0

    @property
    def generation(self) -> int:
        return self._generation

    def submit(self, kind: str, key: str, label: str, fn: JobFunction, meta: dict[str, Any] | None = None) -> Job:
        """Start ``fn`` in a daemon thread; raises :class:`JobConflictError` if ``key`` is busy.

        ``meta`` becomes ``job.meta``: the body may write into the same dict (e.g. the
        inspection run id as soon as it exists) and pages read it while the job runs.
        """
        with self._lock:
            busy = [j for j in self._jobs.values() if j.key == key and not j.finished]
            if busy:
                raise JobConflictError(f"'{busy[0].label}' is still running (started {busy[0].started_at:%H:%M:%S})")
            job = Job(id=uuid.uuid4().hex[:12], kind=kind, key=key, label=label, meta=meta if meta is not None else {})
            self._jobs[job.id] = job
            self._prune()
        job.thread = threading.Thread(target=self._run, args=(job, fn), name=f"qc-job-{kind}-{job.id}", daemon=True)
        job.thread.start()
        return job

    def _run(self, job: Job, fn: JobFunction) -> None:
        def progress(message: str, fraction: float) -> None:
            job.message = str(message)
            job.progress = min(1.0, max(0.0, float(fraction)))

        status, error = DONE, None
        try:
            job.result = fn(progress, job.stop_event)
            if job.stop_event.is_set():
                status = CANCELLED
        except Exception as exc:  # noqa: BLE001 - a failing job must never kill the app
            log.error("job %s (%s) failed:\n%s", job.id, job.label, traceback.format_exc())
            status, error = FAILED, str(exc) or type(exc).__name__
        # Bump the generation before publishing the status: whoever sees the job
        # finished also sees fresh cache keys for the rows it wrote.
        job.finished_at = datetime.now(timezone.utc)
        with self._lock:
            self._generation += 1
        job.error = error
        if status == DONE:
            job.progress, job.message = 1.0, "finished"
        else:
            job.message = "stopped on request" if status == CANCELLED else "failed"
        job.status = status

    def _prune(self) -> None:
        finished = [j for j in self._jobs.values() if j.finished]
        finished.sort(key=lambda j: j.started_at)
        for job in finished[: max(0, len(finished) - self._keep_finished)]:
            del self._jobs[job.id]

    def get(self, job_id: str | None) -> Job | None:
        if job_id is None:
            return None
        with self._lock:
            return self._jobs.get(job_id)

    def jobs(self, kind: str | None = None) -> list[Job]:
        """All known jobs of ``kind`` (or every kind), newest first."""
        with self._lock:
            out = [j for j in self._jobs.values() if kind is None or j.kind == kind]
        return sorted(out, key=lambda j: j.started_at, reverse=True)

    def active(self, kind: str | None = None) -> list[Job]:
        return [j for j in self.jobs(kind) if not j.finished]

    def latest(self, kind: str, key: str | None = None) -> Job | None:
        """The newest job of ``kind`` (and ``key`` when given), running or not."""
        for job in self.jobs(kind):
            if key is None or job.key == key:
                return job
        return None

    def cancel(self, job_id: str) -> bool:
        """Ask a running job to stop at its next check; False if unknown or already finished."""
        job = self.get(job_id)
        if job is None or job.finished:
            return False
        job.stop_event.set()
        job.message = "stopping…"
        return True

    def wait(self, job_id: str, timeout: float | None = None) -> Job:
        """Block until the job's thread ends (tests and scripts; pages poll instead)."""
        job = self.get(job_id)
        if job is None:
            raise KeyError(f"unknown job {job_id}")
        if job.thread is not None:
            job.thread.join(timeout)
        return job
