"""``qc demo-data`` (write the synthetic dataset) and ``qc check`` (dataset integrity report).

``qc demo-data [OUT] [--categories ...] [--size 256] [--seed 0] [--train N]
[--test-good N] [--per-defect N] [--workers N]`` writes an MVTec-layout dataset (default OUT:
``QC_DATA_DIR``), progress on stderr. ``qc check [ROOT] [--category C] [--quick]
[--json]`` prints one row per problem (file, kind, message) and a summary.
Exit codes: 0 clean / written, 1 problems found, 2 bad usage or ROOT not a dataset.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

from qc_models.cli import CliError
from qc_models.config import Settings
from qc_models.data.layout import DatasetError


def _at_least(low: int):  # noqa: ANN202 - argparse type factory
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
        return value

    return parse


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``demo-data`` and ``check`` sub-commands."""
    from qc_models.data.synthetic import DEFAULT_N_TRAIN

    p = subparsers.add_parser("demo-data", help="write the synthetic demo dataset (MVTec AD layout)")
    p.add_argument("out", nargs="?", type=Path, help="output folder (default: QC_DATA_DIR)")
    p.add_argument("--categories", nargs="+", metavar="NAME", help="categories to generate (default: all)")
    p.add_argument("--size", type=_at_least(16), default=256, help="image side in pixels (default 256)")
    p.add_argument("--seed", type=int, default=0, help="random seed; same seed, same files (default 0)")
    p.add_argument("--train", type=_at_least(1), default=DEFAULT_N_TRAIN,
                   help=f"good training images per category (default {DEFAULT_N_TRAIN})")
    p.add_argument("--test-good", type=_at_least(0), default=20, help="good test images per category (default 20)")
    p.add_argument("--per-defect", type=_at_least(0), default=10, help="test images per defect type (default 10)")
    p.add_argument("--workers", type=_at_least(1), default=1, help="rendering threads; files are identical (default 1)")
    p.set_defaults(func=cmd_demo_data)

    c = subparsers.add_parser("check", help="integrity check of a dataset: corrupt files, mask pairing, sizes")
    c.add_argument("root", nargs="?", type=Path, help="dataset root in the MVTec AD layout (default: QC_DATA_DIR)")
    c.add_argument("--category", help="check only this category")
    c.add_argument("--quick", action="store_true", help="read headers only (misses truncated files)")
    c.add_argument("--json", action="store_true", help="print the problems as a JSON list")
    c.set_defaults(func=cmd_check)


def _progress(message: str, fraction: float) -> None:
    sys.stderr.write(f"\r{fraction:6.1%} {message[:60]:<60}")
    if fraction >= 1.0:
        sys.stderr.write("\n")
    sys.stderr.flush()


def cmd_demo_data(args: argparse.Namespace) -> int:
    """Generate the dataset; exit 2 on unknown categories or a folder that is not ours."""
    from qc_models.data.synthetic import CATEGORIES, DEMO_CATEGORIES, generate_dataset
    from qc_models.data.synthetic_holdout import HOLDOUT_CATEGORIES

    out = args.out or Settings.from_env().data_dir
    unknown = [c for c in args.categories or [] if c not in CATEGORIES]
    if unknown:
        raise CliError(
            f"unknown categories: {', '.join(unknown)} "
            f"(demo: {', '.join(DEMO_CATEGORIES)}; hold-out: {', '.join(HOLDOUT_CATEGORIES)})"
        )
    start = time.perf_counter()
    try:
        generate_dataset(
            out,
            categories=args.categories,
            size=args.size,
            seed=args.seed,
            n_train=args.train,
            n_test_good=args.test_good,
            n_per_defect=args.per_defect,
            progress=_progress,
            workers=args.workers,
        )
    except (DatasetError, ValueError, OSError) as exc:
        raise CliError(str(exc)) from exc
    names = args.categories or list(DEMO_CATEGORIES)
    noun = "category" if len(names) == 1 else "categories"
    print(f"wrote {len(names)} {noun} ({', '.join(names)}) to {out} in {time.perf_counter() - start:.1f} s")
    return 0


def _relative(path: str, root: Path) -> str:
    try:
        return str(Path(path).relative_to(root))
    except ValueError:
        return path


def format_table(rows: list[tuple[str, str, str]], headers: tuple[str, str, str]) -> str:
    """Plain-text table with the last column left unpadded (messages can be long)."""
    widths = [max(len(headers[i]), *(len(r[i]) for r in rows)) for i in range(2)]
    lines = [f"{headers[0]:<{widths[0]}}  {headers[1]:<{widths[1]}}  {headers[2]}"]
    lines.append(f"{'-' * widths[0]}  {'-' * widths[1]}  {'-' * len(headers[2])}")
    lines += [f"{a:<{widths[0]}}  {b:<{widths[1]}}  {c}" for a, b, c in rows]
    return "\n".join(lines)


def cmd_check(args: argparse.Namespace) -> int:
    """Print the integrity report; exit 1 when problems were found, 2 when ROOT is not a dataset."""
    from qc_models.data.integrity import check_dataset

    root = args.root or Settings.from_env().data_dir
    show = _progress if sys.stderr.isatty() else None
    try:
        problems = check_dataset(root, category=args.category, progress=show, decode=not args.quick)
    except DatasetError as exc:
        raise CliError(str(exc)) from exc
    if args.json:
        print(json.dumps([p.to_dict() for p in problems], indent=2))
        return 1 if problems else 0
    if not problems:
        print(f"{root}: no problems found")
        return 0
    rows = [(_relative(p.path, Path(root)), p.kind, p.message) for p in problems]
    print(format_table(rows, ("file", "kind", "message")))
    kinds = Counter(p.kind for p in problems)
    cats = sorted({p.category for p in problems if p.category})
    summary = ", ".join(f"{k} {n}" for k, n in sorted(kinds.items()))
    print(f"\n{len(problems)} problem(s) in {len(cats)} categor{'y' if len(cats) == 1 else 'ies'} "
          f"({', '.join(cats)}): {summary}")
    return 1
