"""EDA throughput and memory on >= 2,000 synthetic 512x512 images; prints one JSON object.

Usage: ``python benchmarks/eda_benchmark.py [--data DIR] [--workers N]``. The dataset
is generated once into ``--data`` (default ``<QC_HOME>/bench/eda_512``) and reused
while its parameters match. Generation runs in a child process so the measured
process only ever holds the EDA. Memory must not grow with the number of images:
peak RSS (``ru_maxrss``) and current RSS are recorded when the progress bar passes
25 %, 50 % and 100 %; ``peak_rss_mb_at_half`` vs ``peak_rss_mb`` shows the growth
over the second half of the run.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SIZE = 512
PARAMS = {"size": SIZE, "seed": 0, "n_train": 400, "n_test_good": 60, "n_per_defect": 25}
STAMP = "eda_benchmark.json"


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # kilobytes on Linux


def _current_rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def ensure_dataset(data: Path) -> None:
    """Generate the dataset in a child process unless ``data`` already holds it."""
    stamp = data / STAMP
    if stamp.is_file() and json.loads(stamp.read_text(encoding="utf-8")) == PARAMS:
        return
    subprocess.run([sys.executable, __file__, "--generate-only", "--data", str(data)], check=True)


def generate(data: Path) -> None:
    from qc_models.data.synthetic import generate_dataset

    def progress(msg: str, frac: float) -> None:
        print(f"\rgenerating {frac:6.1%} {msg:<40}", end="", file=sys.stderr, flush=True)

    generate_dataset(data, progress=progress, workers=os.cpu_count() or 1, **PARAMS)
    print(file=sys.stderr)
    (data / STAMP).write_text(json.dumps(PARAMS), encoding="utf-8")


def measure(data: Path, workers: int) -> dict:
    from qc_models.eda import run_eda
    from qc_models.eda.report import INTEGRITY_SHARE

    marks: dict[str, dict[str, float]] = {}
    integrity_end: list[float] = []

    def progress(msg: str, frac: float) -> None:
        if frac <= INTEGRITY_SHARE:
            integrity_end[:] = [time.perf_counter()]
        for label, at in (("25%", 0.25), ("50%", 0.5), ("100%", 1.0)):
            if frac >= at and label not in marks:
                marks[label] = {"peak_rss_mb": round(_peak_rss_mb(), 1), "rss_mb": round(_current_rss_mb(), 1)}

    start_rss = _current_rss_mb()
    t0 = time.perf_counter()
    report = run_eda(data, workers=workers, progress=progress)
    seconds = time.perf_counter() - t0
    t1 = time.perf_counter()
    text = report.to_json()
    json_seconds = time.perf_counter() - t1
    images = sum(len(c.image_stats) for c in report.categories.values())
    return {
        "images": images,
        "size": SIZE,
        "categories": len(report.categories),
        "workers": workers,
        "integrity_checked": report.integrity_checked,
        "seconds": round(seconds, 2),
        "images_per_second": round(images / seconds, 1),
        "integrity_seconds": round(integrity_end[0] - t0, 2) if report.integrity_checked and integrity_end else None,
        "peak_rss_mb": round(_peak_rss_mb(), 1),
        "peak_rss_mb_at_half": marks.get("50%", {}).get("peak_rss_mb"),
        "rss_mb_before": round(start_rss, 1),
        "rss_marks": marks,
        "json_seconds": round(json_seconds, 2),
        "json_mb": round(len(text) / 2**20, 2),
    }


def main() -> None:
    from qc_models.config import default_home

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=default_home() / "bench" / "eda_512", help="dataset cache folder")
    parser.add_argument("--workers", type=int, default=1, help="decoding threads for the EDA")
    parser.add_argument("--generate-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.generate_only:
        generate(args.data)
        return
    ensure_dataset(args.data)
    print(json.dumps(measure(args.data, args.workers)))


if __name__ == "__main__":
    main()
