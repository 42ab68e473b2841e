"""`qc inspect`: batch-inspect a folder of images into the database (resumable, exactly once).

Prints ``run_id: N`` (or ``{"run_id": N}`` with ``--json``) as soon as the run
exists, progress on stderr, and a summary at the end (one JSON object on the
last line with ``--json``). The first Ctrl-C finishes the current batch and
marks the run ``interrupted``; a second one stops at once. Either way the run
is completed later with ``--resume RUN_ID``.

Exit codes: 0 run completed, 1 run completed but some files were unreadable
(error rows) or the run failed, 2 bad input (missing/empty folder, unknown run,
database or model problems), 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import shlex
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from qc_models.cli import CliError
from qc_models.config import Settings


def _progress_printer(stream: Any = None, min_interval_s: float = 1.0) -> Callable[[str, float], None]:
    """Progress lines on stderr: rewritten in place on a terminal, throttled lines otherwise."""
    stream = stream or sys.stderr
    tty = bool(getattr(stream, "isatty", lambda: False)())
    last = {"t": 0.0}

    def progress(message: str, fraction: float) -> None:
        now = time.monotonic()
        if fraction < 1.0 and now - last["t"] < (0.2 if tty else min_interval_s):
            return
        last["t"] = now
        text = f"[{fraction * 100:5.1f}%] {message}"
        if tty:
            stream.write("\r" + text.ljust(79) + ("\n" if fraction >= 1.0 else ""))
        else:
            stream.write(text + "\n")
        stream.flush()

    return progress


def _resume_hint(args: argparse.Namespace, run_id: int) -> str:
    parts = ["qc", "inspect", str(args.folder), "--models", str(args.models), "--db", str(args.db), "--resume", str(run_id)]
    return " ".join(shlex.quote(p) for p in parts)


def _human_summary(summary: dict[str, Any]) -> str:
    rate = summary["defect_rate"]
    lines = [
        f"run {summary['run_id']} {summary['status']}: {summary['source_folder']}"
        + (f" (category {summary['category']})" if summary["category"] else ""),
        f"  images: {summary['n_images']}  scored: {summary['n_scored']}  errors: {summary['n_errors']}  "
        f"defective: {summary['n_defective']}  defect rate: {'-' if rate is None else f'{rate:.1%}'}",
        f"  time: {summary['seconds']:.1f} s"
        + (f"  (skipped {summary['n_skipped']} non-image file(s))" if summary["n_skipped"] else ""),
    ]
    per_type = summary["per_defect_type"]
    if per_type:
        lines.append("  known defect types (flagged defective / images):")
        for name, c in per_type.items():
            lines.append(f"    {name:<20} {c['n_defective']:>6} / {c['n_images']:<6}" + (f" ({c['n_errors']} errors)" if c["n_errors"] else ""))
    return "\n".join(lines)


def _emit(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def cmd_inspect(args: argparse.Namespace, scorer: Any = None) -> int:
    """Inspect every image under FOLDER with the newest models and store the results."""
    from db.session import DatabaseError
    from qc_models.inspection import InspectionError, run_inspection
    from qc_models.registry import ModelError

    settings = Settings.from_env()
    args.models = Path(args.models) if args.models else settings.models_dir
    args.db = args.db or settings.db_url
    if args.batch_size < 1:
        raise CliError(f"--batch-size must be at least 1, got {args.batch_size}")
    if not Path(args.folder).exists():
        raise CliError(f"{args.folder}: folder does not exist")
    if scorer is None and args.resume is None and not Path(args.models).is_dir():
        raise CliError(f"{args.models}: model registry folder does not exist (train models first: qc train ...)")

    state: dict[str, Any] = {"run_id": None}
    stop = threading.Event()

    def created(run_id: int) -> None:
        state["run_id"] = run_id
        _emit(json.dumps({"run_id": run_id}) if args.json else f"run_id: {run_id}")

    def on_sigint(signum: int, frame: Any) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        print("\nstopping after the current batch (Ctrl-C again to stop now)", file=sys.stderr, flush=True)

    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, on_sigint) if in_main else None
    try:
        summary = run_inspection(
            args.folder,
            models_dir=args.models,
            db_url=args.db,
            category=args.category,
            line=args.line,
            shift=args.shift,
            lot=args.lot,
            resume_run_id=args.resume,
            batch_size=args.batch_size,
            progress=None if args.quiet else _progress_printer(),
            scorer=scorer,
            stop_event=stop,
            on_run_created=created,
        )
    except KeyboardInterrupt:
        if state["run_id"] is None:
            raise
        summary = None
    except (InspectionError, DatabaseError, ModelError) as exc:
        mid_run = isinstance(exc, DatabaseError) and state["run_id"] is not None
        hint = f"\nresume it with: {_resume_hint(args, state['run_id'])}" if mid_run else ""
        raise CliError(f"{exc}{hint}") from exc
    except Exception as exc:
        if state["run_id"] is None:
            raise
        raise CliError(
            f"run {state['run_id']} failed: {type(exc).__name__}: {exc}\n"
            f"resume it with: {_resume_hint(args, state['run_id'])}",
            exit_code=1,
        ) from exc
    finally:
        if in_main:
            signal.signal(signal.SIGINT, previous)

    if summary is None or summary.status == "interrupted":
        run_id = state["run_id"]
        print(f"interrupted: run {run_id} marked 'interrupted'; resume with:\n  {_resume_hint(args, run_id)}", file=sys.stderr)
        if args.json and summary is not None:
            _emit(json.dumps(summary.to_dict()))
        return 130
    for warning in summary.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    data = summary.to_dict()
    _emit(json.dumps(data) if args.json else _human_summary(data))
    return 1 if summary.n_errors else 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "inspect",
        help="batch-inspect a folder of images into the database (resumable)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("folder", help="folder of images (searched recursively); a test/ folder with good/ and "
                   "defect-type subfolders stores the known labels")
    p.add_argument("--models", help="model registry folder (default: QC_MODELS_DIR)")
    p.add_argument("--db", help="database URL (default: QC_DB_URL)")
    p.add_argument("--category", help="product category (default: the registry's only one, or <category>/test)")
    p.add_argument("--line", help="production line label stored with the results")
    p.add_argument("--shift", help="shift label stored with the results")
    p.add_argument("--lot", help="lot / batch label stored with the results")
    p.add_argument("--resume", type=int, metavar="RUN_ID", help="finish an interrupted or crashed run")
    p.add_argument("--batch-size", type=int, default=32, help="images scored together (default 32)")
    p.add_argument("--json", action="store_true", help='first line {"run_id": N}, last line the JSON summary')
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    p.set_defaults(func=cmd_inspect)
