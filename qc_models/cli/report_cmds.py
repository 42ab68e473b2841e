"""`qc report` (quality report as CSV, XLSX or PDF) and `qc db` (migrate, inspect, add simulated results).

    qc report --db URL [--from DATE] [--to DATE] [--category C]... [--line L]... [--shift S]... [--lot L]...
              [--model ensemble|cae|unet|patchcore] [--subgroup run|hour|day|week] [--opportunities N|defect_types]
              [--format csv|xlsx|pdf] --out FILE
    qc db upgrade [--db URL]     create or migrate the schema (alembic upgrade head)
    qc db current [--db URL]     print the schema revision and the newest one
    qc db demo [--db URL] [--days N] [--images-per-run N] [--seed N]   add simulated runs (lots SIM-*)

``--to`` includes that whole day. Exit codes: 0 done, 2 bad input or database problem.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from qc_models.cli import CliError
from qc_models.config import Settings

FORMATS = ("csv", "xlsx", "pdf")


def _db_url(args: argparse.Namespace) -> str:
    return args.db or Settings.from_env().db_url


def _existing_engine(url: str):  # type: ignore[no-untyped-def]
    """Engine for a database that must already exist and be at the current schema."""
    from sqlalchemy import make_url

    from db.session import DatabaseError, ensure_current, get_engine

    try:
        parsed = make_url(url)
    except Exception as exc:
        raise CliError(f"--db {url!r} is not a database URL ({exc})") from exc
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        path = Path(parsed.database).expanduser()
        if not path.is_file():
            raise CliError(f"database {path} does not exist (run `qc inspect` or `qc db upgrade --db {url}` first)")
    try:
        return ensure_current(get_engine(url))
    except DatabaseError as exc:
        raise CliError(str(exc)) from exc


def _filters(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from db.filters import Filters

    try:
        return Filters(
            start=args.date_from, end=args.date_to, categories=args.category, lines=args.line,
            shifts=args.shift, lots=args.lot, model=args.model,
        )
    except ValueError as exc:
        raise CliError(str(exc)) from exc


def cmd_report(args: argparse.Namespace) -> int:
    """Build the report for the filters and write it in the requested format."""
    from db.session import DatabaseError
    from qc_models.reports import build_report, write_report

    fmt = args.format or Path(args.out).suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise CliError(f"cannot tell the report format from {args.out!r}; pass --format {'|'.join(FORMATS)}")
    filters = _filters(args)
    engine = _existing_engine(_db_url(args))
    try:
        report = build_report(engine, filters, subgroup=args.subgroup, opportunities_per_unit=args.opportunities)
        out = write_report(report, fmt, args.out)
    except DatabaseError as exc:
        raise CliError(str(exc)) from exc
    except OSError as exc:
        raise CliError(str(exc)) from exc
    for note in report.notes:
        print(f"note: {note}", file=sys.stderr)
    k = report.kpis
    print(f"wrote {out} ({fmt}): {int(k['inspections']):,} images inspected, "
          f"{int(k['defective']):,} defective, {int(k['runs'])} runs, {int(k['out_of_control'])} out-of-control points")
    return 0


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    """Create or migrate the schema to the newest revision."""
    from db.session import DatabaseError, describe_url, upgrade

    url = _db_url(args)
    try:
        revision = upgrade(url)
    except DatabaseError as exc:
        raise CliError(str(exc)) from exc
    print(f"database {describe_url(url)} is at schema revision {revision} (head)")
    return 0


def cmd_db_current(args: argparse.Namespace) -> int:
    """Print the database's schema revision; exit 1 when it is behind."""
    from db.session import DatabaseError, current_revision, describe_url, head_revision

    url = _db_url(args)
    try:
        current = current_revision(url)
    except DatabaseError as exc:
        raise CliError(str(exc)) from exc
    head = head_revision()
    print(f"database {describe_url(url)}: revision {current or '(empty)'}; newest {head}")
    return 0 if current == head else 1


def cmd_db_demo(args: argparse.Namespace) -> int:
    """Migrate, then add simulated runs and results (for trying the analytics without images).

    They are labelled (lots ``SIM-*``, ``simulated://`` folders, operator ``simulation``) and the
    message says so, so simulated history is never taken for real inspections.
    """
    from db.demo import SIMULATED_LOT_PREFIX, SIMULATED_OPERATOR, populate_demo_results
    from db.session import DatabaseError, describe_url, get_engine, upgrade

    url = _db_url(args)
    try:
        upgrade(url)
        summary = populate_demo_results(get_engine(url), days=args.days, images_per_run=args.images_per_run,
                                        seed=args.seed)
    except (DatabaseError, ValueError) as exc:
        raise CliError(str(exc)) from exc
    print(f"added {summary.n_runs} SIMULATED runs with {summary.n_results:,} results "
          f"({summary.start:%Y-%m-%d} to {summary.end:%Y-%m-%d}) to {describe_url(url)}; "
          f"they are not real inspections: lots {SIMULATED_LOT_PREFIX}*, operator '{SIMULATED_OPERATOR}'")
    return 0


def _opportunities(text: str) -> float | str:
    if text == "defect_types":
        return text
    try:
        value = float(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected a number > 0 or 'defect_types', got {text!r}") from exc
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return value


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``report`` and ``db`` to the ``qc`` command."""
    p = sub.add_parser("report", help="write a quality report (CSV, XLSX or PDF) from the inspection database",
                       description="Defect frequency, Pareto, p-chart, yield/DPMO, detection rates and runs for a "
                                   "selection of inspection results.")
    p.add_argument("--db", help="SQLAlchemy URL (default: QC_DB_URL or data/qc.db)")
    p.add_argument("--from", dest="date_from", metavar="DATE", help="first day (YYYY-MM-DD or ISO date-time, UTC)")
    p.add_argument("--to", dest="date_to", metavar="DATE", help="last day, included (YYYY-MM-DD, UTC)")
    p.add_argument("--category", action="append", default=[], help="repeat for several")
    p.add_argument("--line", action="append", default=[], help="repeat for several")
    p.add_argument("--shift", action="append", default=[], help="repeat for several")
    p.add_argument("--lot", action="append", default=[], help="repeat for several")
    p.add_argument("--model", default="ensemble", choices=("ensemble", "cae", "unet", "patchcore"),
                   help="whose OK/NG decision counts as defective (default: ensemble)")
    p.add_argument("--subgroup", default="day", choices=("run", "hour", "day", "week"), help="p-chart subgroup")
    p.add_argument("--opportunities", type=_opportunities, default=1.0, metavar="N|defect_types",
                   help="defect opportunities per image for DPMO (default 1; 'defect_types': the number of "
                        "known defect types of each category)")
    p.add_argument("--format", choices=FORMATS, help="default: from the --out suffix")
    p.add_argument("--out", required=True, help="output file")
    p.set_defaults(func=cmd_report)

    db = sub.add_parser("db", help="create/migrate the inspection database, or fill it with demo results")
    db_sub = db.add_subparsers(dest="db_command", metavar="ACTION")
    db_sub.required = True
    up = db_sub.add_parser("upgrade", help="create or migrate the schema (alembic upgrade head)")
    up.add_argument("--db", help="SQLAlchemy URL (default: QC_DB_URL or data/qc.db)")
    up.set_defaults(func=cmd_db_upgrade)
    cur = db_sub.add_parser("current", help="print the schema revision (exit 1 when behind)")
    cur.add_argument("--db", help="SQLAlchemy URL (default: QC_DB_URL or data/qc.db)")
    cur.set_defaults(func=cmd_db_current)
    demo = db_sub.add_parser("demo", help="add SIMULATED runs (days x shifts x lines x demo categories), "
                                          "labelled lot SIM-*, operator 'simulation'")
    demo.add_argument("--db", help="SQLAlchemy URL (default: QC_DB_URL or data/qc.db)")
    demo.add_argument("--days", type=_positive, default=30)
    demo.add_argument("--images-per-run", type=_positive, default=40)
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(func=cmd_db_demo)
