"""``qc eda``: exploratory data analysis of a dataset root, as JSON or a short summary.

``qc eda ROOT [--category C] [--json]`` streams every image once (memory does
not grow with the dataset) and reports counts and class imbalance, per-image and
pooled image statistics, dimension and intensity outliers, RGB histograms per
class, mask heatmaps, defect area fractions and centroids, good-vs-defective and
train-vs-test feature tests, and the integrity problems (header checks plus the
files the EDA could not decode; each file is decoded once).

With ``--json`` one JSON document is printed to stdout. Top level::

    {"schema_version": 1, "root": str, "integrity_checked": bool,
     "problems": [{"path", "kind", "message"}],
     "categories": {"<category>": {"category", "counts", "totals", "imbalance", "aggregates",
                    "class_summary", "image_stats", "abnormal_dimensions", "intensity_outliers",
                    "unreadable", "histograms", "heatmaps", "area_fraction", "masks", "centroids",
                    "comparisons"}}}

The full per-key schema is in :mod:`qc_models.eda.serialise`. Exit codes: 0 when
the analysis ran (also when problems were found: they are data, not failures),
2 when ROOT is not a dataset or the category does not exist.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

from qc_models.cli import CliError
from qc_models.config import Settings
from qc_models.data.layout import DatasetError

if TYPE_CHECKING:
    from qc_models.eda.report import EdaReport


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``eda`` sub-command."""
    p = subparsers.add_parser("eda", help="exploratory data analysis of a dataset (counts, stats, heatmaps, tests)")
    p.add_argument("root", nargs="?", type=Path, help="dataset root in the MVTec AD layout (default: QC_DATA_DIR)")
    p.add_argument("--category", help="analyse only this category")
    p.add_argument("--json", action="store_true", help="print the full analysis as one JSON document")
    p.add_argument("--no-image-stats", action="store_true", help="leave the per-image table out of the JSON")
    p.add_argument("--skip-integrity", action="store_true", help="do not run the integrity check")
    p.add_argument("--heatmap-size", type=_positive, default=64, help="mask heatmap resolution (default 64)")
    p.add_argument("--workers", type=_positive, default=1, help="decoding threads (default 1)")
    p.set_defaults(func=cmd_eda)


def _stderr_progress(message: str, fraction: float) -> None:
    sys.stderr.write(f"\r{fraction:6.1%} {message[:70]:<70}")
    if fraction >= 1.0:
        sys.stderr.write("\n")
    sys.stderr.flush()


def _fmt(value: float | None, spec: str = ".2f") -> str:
    return "n/a" if value is None else format(value, spec)


def _print_summary(report: EdaReport) -> None:
    print(f"dataset: {report.root}")
    for name, eda in report.categories.items():
        tot, imb, agg = eda.counts.totals, eda.counts.imbalance, eda.aggregates
        per_type = ", ".join(
            f"{r.defect_type}={r.images}" for r in eda.counts.table.itertuples() if r.split == "test" and r.defect_type != "good"
        )
        print(f"\n[{name}] train good {tot['train_good']}, test good {tot['test_good']}, "
              f"test defective {tot['test_defective']} ({per_type or 'none'})")
        print(f"  good:defective (test) {_fmt(imb['test_good_to_defective'])}, "
              f"largest/smallest defect type {_fmt(imb['defect_type_max_to_min'])}")
        mean = ", ".join(f"{v:.1f}" for v in agg["channel_mean"])
        std = ", ".join(f"{v:.1f}" for v in agg["channel_std"])
        print(f"  sizes {agg['sizes']}, modes {agg['modes']}, RGB mean ({mean}), std ({std})")
        print(f"  abnormal dimensions {agg['abnormal_dimension_count']}, intensity outliers "
              f"{agg['intensity_outlier_count']}, unreadable {len(eda.unreadable)}")
        counts = eda.masks.counts()
        areas = eda.masks.mask_table()["area_fraction"]
        print(f"  masks {counts['all']}, mean defect area {_fmt(areas.mean() if len(areas) else None, '.2%')}")
        gvd = next(c for c in eda.comparisons if c.name == "good_vs_defective").table.dropna()
        if len(gvd):
            top = gvd.sort_values("wasserstein_scaled", ascending=False).head(3)
            desc = ", ".join(f"{r.feature} (KS p={r.ks_pvalue:.2g})" for r in top.itertuples())
            print(f"  most different good vs defective: {desc}")
    if not report.integrity_checked:
        print("\nintegrity: not checked")
    else:
        kinds = Counter(p["kind"] for p in report.problems)
        print(f"\nintegrity problems: {len(report.problems)}" + (f" ({dict(sorted(kinds.items()))})" if kinds else ""))
        for p in report.problems[:10]:
            print(f"  {p['kind']}: {p['path']}: {p['message']}")
        if len(report.problems) > 10:
            print(f"  ... {len(report.problems) - 10} more (use --json)")


def cmd_eda(args: argparse.Namespace) -> int:
    """Run the EDA and print it; problems found in the data still exit 0."""
    from qc_models.eda import run_eda  # heavy imports only when the command runs

    root = args.root if args.root is not None else Settings.from_env().data_dir
    progress = _stderr_progress if (not args.json and sys.stderr.isatty()) else None
    try:
        report = run_eda(
            root,
            args.category,
            heatmap_size=args.heatmap_size,
            check_integrity=not args.skip_integrity,
            workers=args.workers,
            progress=progress,
        )
    except DatasetError as exc:
        raise CliError(str(exc)) from exc
    if args.json:
        print(report.to_json(per_image=not args.no_image_stats))
    else:
        _print_summary(report)
    return 0
