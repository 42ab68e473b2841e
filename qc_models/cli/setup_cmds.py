"""`qc demo-setup`: make the demo ready — dataset, trained and evaluated models, a database with real runs.

Each step runs only when its result is missing, so the dashboard launcher can call it
every time and a second launch starts in seconds.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from qc_models.config import Settings


def _say(message: str) -> None:
    print(f"[demo-setup] {message}", file=sys.stderr, flush=True)


def _stderr_progress(prefix: str):
    """A progress callback printing at most every 3 s (and at 100 %), so long steps stay visibly alive."""
    last = {"t": 0.0}

    def progress(message: str, fraction: float) -> None:
        now = time.monotonic()
        if now - last["t"] >= 3.0 or fraction >= 1.0:
            last["t"] = now
            _say(f"{prefix}: {fraction * 100:5.1f}% {message}")

    return progress


def ensure_dataset(data_dir: Path) -> list[str]:
    """Generate the synthetic demo dataset unless ``data_dir`` already holds one."""
    from qc_models.data.layout import DatasetError, list_categories

    try:
        return list_categories(data_dir)
    except DatasetError:
        pass
    from qc_models.data.synthetic import generate_dataset

    _say(f"generating the synthetic demo dataset in {data_dir}")
    generate_dataset(data_dir, progress=_stderr_progress("dataset"))
    return list_categories(data_dir)


def ensure_models(data_dir: Path, models_dir: Path, categories: list[str]) -> None:
    """Train the demo profile of every model for categories that have none yet."""
    from qc_models.registry import list_versions
    from qc_models.training import train_category

    for category in categories:
        have = {v.model for v in list_versions(models_dir, category=category)}
        missing = [m for m in ("cae", "unet", "patchcore") if m not in have]
        if not missing and "ensemble" in have:
            continue
        _say(f"training {', '.join(missing) or 'ensemble'} for '{category}' (demo profile, untrained backbone)")
        train_category(
            data_dir,
            category,
            models=tuple(missing) if missing else ("cae", "unet", "patchcore"),
            out=models_dir,
            weights="none",
            profile="demo",
            progress=_stderr_progress(category),
        )


def ensure_metrics(data_dir: Path, models_dir: Path, categories: list[str]) -> None:
    """Evaluate each category's in-use models on its test split once, so the Models page and
    ``qc models`` show test metrics on first launch (about 10 s per demo category)."""
    from qc_models.cli.model_cmds import user_errors
    from qc_models.evaluation import run_evaluation
    from qc_models.registry import list_versions

    for category in categories:
        newest: dict[str, bool] = {}
        for v in list_versions(models_dir, category=category):  # newest first
            newest.setdefault(v.model, v.error is None and bool(v.metrics))
        if not newest or all(newest.values()):
            continue
        _say(f"evaluating {category}'s models on its test split")
        try:
            run_evaluation(data_dir, category, models_dir, progress=_stderr_progress(f"evaluate {category}"))
        except user_errors() as exc:  # metrics are a convenience: the dashboard must still start
            _say(f"could not evaluate {category}: {exc}; the Models page's Evaluate button retries")


def ensure_runs(data_dir: Path, models_dir: Path, db_url: str, categories: list[str]) -> None:
    """Inspect each demo category's test folder once so the analytics pages have real results."""
    from db.queries import count_runs
    from db.session import get_engine, upgrade
    from qc_models.inspection import run_inspection

    upgrade(db_url)
    if count_runs(get_engine(db_url)) > 0:
        return
    lines, shifts = ("line-1", "line-2"), ("day", "night")
    for i, category in enumerate(categories):
        _say(f"inspecting {category}/test into the database")
        run_inspection(
            data_dir / category / "test",
            models_dir=models_dir,
            db_url=db_url,
            category=category,
            line=lines[i % 2],
            shift=shifts[(i // 2) % 2],
            lot=f"demo-{i + 1:03d}",
            progress=_stderr_progress(f"inspect {category}"),
        )


def cmd_demo_setup(args: argparse.Namespace) -> int:
    """Make the demo ready: generate the dataset, train and evaluate the demo models and inspect each
    category's test folder into the database, each step only when its result is missing."""
    settings = Settings.from_env()
    data_dir = Path(args.data or settings.data_dir)
    models_dir = Path(args.models or settings.models_dir)
    db_url = args.db or settings.db_url
    categories = ensure_dataset(data_dir)
    ensure_models(data_dir, models_dir, categories)
    if not args.skip_evaluation:
        ensure_metrics(data_dir, models_dir, categories)
    if not args.skip_inspection:
        ensure_runs(data_dir, models_dir, db_url, categories)
    _say(f"ready: data={data_dir} models={models_dir} db={db_url}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo-setup",
        help="generate demo data, train and evaluate demo models and fill the database when missing",
        description=cmd_demo_setup.__doc__,
    )
    p.add_argument("--data", help="dataset root (default: QC_DATA_DIR)")
    p.add_argument("--models", help="model registry (default: QC_MODELS_DIR)")
    p.add_argument("--db", help="database URL (default: QC_DB_URL)")
    p.add_argument("--skip-evaluation", action="store_true", help="do not evaluate the models on the test splits")
    p.add_argument("--skip-inspection", action="store_true", help="do not create demo inspection runs")
    p.set_defaults(func=cmd_demo_setup)
