"""Benchmark the detectors: accuracy, training time, scoring speed and memory per category.

Generates the synthetic demo data (4 categories, 256 px, 120 good training images
by default, plus test sets), trains cae, unet and patchcore per category with
:func:`qc_models.training.train_category` (which also builds the ensemble), then
evaluates with :func:`qc_models.evaluation.run_evaluation` and times scoring of
the test images per model. Prints one JSON object (also written under
``benchmarks/results/`` unless ``--no-save``):

``results[category][model]``: image_auroc (and its DeLong 95 % CI), recall at
the threshold, pixel_auroc, aupro, fit_seconds, images_per_second, peak_rss_mb
(process RSS sampled while that model trained or scored), false_reject_rate (test
good images rejected at the calibrated threshold; target 1%, must be <= 5%), plus
``checks`` against the targets.

    QC_TORCH_THREADS=2 nohup .venv/bin/python benchmarks/detector_benchmark.py > bench.json 2> bench.log &
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TARGETS = {
    "patchcore": {"image_auroc": 0.95, "pixel_auroc": 0.98, "fit_seconds": 30.0, "images_per_second": 10.0},
    "cae": {"image_auroc": 0.75, "fit_seconds": 300.0, "images_per_second": 20.0},
    "unet": {"image_auroc": 0.80, "fit_seconds": 300.0, "images_per_second": 20.0},
}
MAX_TEST_FRR = 0.05


class RssSampler:
    """Peak resident memory per phase label, sampled every ``interval`` seconds in a thread."""

    def __init__(self, interval: float = 0.1) -> None:
        import psutil

        self._proc = psutil.Process()
        self.label = "setup"
        self.peaks: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(interval,), daemon=True)

    def _run(self, interval: float) -> None:
        while not self._stop.is_set():
            self.sample()
            time.sleep(interval)

    def sample(self) -> None:
        rss = self._proc.memory_info().rss / 2**20
        self.peaks[self.label] = max(self.peaks.get(self.label, 0.0), rss)

    def __enter__(self) -> "RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _scoring_speed(mset: Any, images: list, sampler: RssSampler, category: str) -> dict[str, float]:
    """Images per second of each member's predict (batches of 16) and of the whole set with the ensemble."""
    out = {}
    for name, model in mset.members.items():
        sampler.label = f"{category}/{name}"
        model.detector.predict(images[:2])  # warm-up (lazy init, allocator)
        t0 = time.perf_counter()
        for s in range(0, len(images), 16):
            model.detector.predict(images[s : s + 16])
        out[name] = len(images) / (time.perf_counter() - t0)
    if mset.ensemble is not None:
        sampler.label = f"{category}/ensemble"
        t0 = time.perf_counter()
        mset.score(images, batch_size=16)
        out["ensemble"] = len(images) / (time.perf_counter() - t0)
    return out


def _side_folders(work: Path, kind: str, categories: list[str], args: argparse.Namespace, seed: int, n_good: int,
                  n_per_defect: int, masks: bool) -> dict[str, Path]:
    """Per category, a labelled folder drawn from the generator with another seed (never the test split).

    ``kind`` "labelled" is a defect folder for the U-Net (``qc train --defects``: defects plus
    ``ground_truth/``); "validation" is a ``qc train --validation`` folder (``good/`` plus defects).
    They stand for the handful of real, labelled parts a line usually has on file.
    """
    from qc_models.data.synthetic import generate_dataset

    folders = {c: work / kind / c for c in categories}
    missing = [c for c, f in folders.items() if not f.is_dir()]
    if missing:
        src = generate_dataset(work / f"{kind}_src", missing, size=args.size, seed=seed, n_train=1,
                               n_test_good=n_good, n_per_defect=n_per_defect)
        for c in missing:
            folders[c].parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(src / c / "test"), folders[c])
            if masks:
                shutil.move(str(src / c / "ground_truth"), folders[c] / "ground_truth")
        shutil.rmtree(src)
    return folders


def run(args: argparse.Namespace) -> dict[str, Any]:
    from qc_models.data import load_rgb, open_category
    from qc_models.data.synthetic import DEMO_CATEGORIES, generate_dataset
    from qc_models.evaluation import run_evaluation
    from qc_models.registry import load_model_set, read_metadata
    from qc_models.runtime import configure_torch, machine_description
    from qc_models.training import train_category

    configure_torch()

    work = Path(args.workdir or tempfile.mkdtemp(prefix="qc_detbench_"))
    data, models_dir = work / "data", work / "models"
    categories = args.categories or list(DEMO_CATEGORIES)
    t0 = time.perf_counter()
    if not (data / categories[0]).is_dir():
        generate_dataset(data, categories, size=args.size, seed=args.seed, n_train=args.n_train,
                         n_test_good=args.n_test_good, n_per_defect=args.n_per_defect)
    gen_seconds = time.perf_counter() - t0
    _log(f"dataset ready in {gen_seconds:.1f}s at {data}")
    labelled = (_side_folders(work, "labelled", categories, args, args.seed + 1, 0, args.labelled_defects, True)
                if args.labelled_defects else {})
    validation = (_side_folders(work, "validation", categories, args, args.seed + 2, args.validation,
                                max(1, args.validation // 3), False) if args.validation else {})
    results: dict[str, Any] = {}
    with RssSampler() as sampler:
        for category in categories:
            def progress(msg: str, frac: float, category: str = category) -> None:
                head = msg.split(":", 1)[0]
                if "/" in head:
                    sampler.label = head
            t_cat = time.perf_counter()
            paths = train_category(data, category, models=tuple(args.models), out=models_dir, weights=args.weights,
                                   size=args.size, epochs=args.epochs, seed=args.seed, profile=args.profile,
                                   defects_dir=labelled.get(category), validation_dir=validation.get(category),
                                   progress=progress)
            _log(f"{category}: trained {sorted(paths)} in {time.perf_counter() - t_cat:.1f}s")
            mset = load_model_set(models_dir, category)
            ev = run_evaluation(data, category, models_dir, model_set=mset)
            test_images = [load_rgb(s.path) for s in open_category(data, category).samples("test")]
            speed = _scoring_speed(mset, test_images, sampler, category)
            cat_res = {}
            for name, m in ev.metrics.items():
                meta = read_metadata(paths[name]) if name in paths else {}
                cat_res[name] = {
                    "image_auroc": m["image_auroc"],
                    "image_auroc_ci95": m.get("image_auroc_ci95"),
                    "recall": m["recall"],
                    "pixel_auroc": m["pixel_auroc"],
                    "aupro": m["aupro"],
                    "f1": m["f1"],
                    "false_reject_rate": m["false_reject_rate"],
                    "fit_seconds": meta.get("training", {}).get("fit_seconds"),
                    "images_per_second": round(speed.get(name, float("nan")), 2),
                    "peak_rss_mb": round(sampler.peaks.get(f"{category}/{name}", float("nan")), 1),
                }
                if "ensemble" in meta:  # which members it trusts, and on what evidence
                    cat_res[name]["weights"] = {k: round(v, 3) for k, v in meta["ensemble"]["weights"].items()}
                    cat_res[name]["validation_auroc"] = meta["ensemble"].get("details", {}).get("validation_auroc")
            results[category] = cat_res
            _log(f"{category}: " + json.dumps({k: round(v['image_auroc'] or 0, 3) for k, v in cat_res.items()}))
    return {
        "config": {"size": args.size, "n_train": args.n_train, "n_test_good": args.n_test_good,
                   "n_per_defect": args.n_per_defect, "profile": args.profile, "weights": args.weights,
                   "epochs": args.epochs, "seed": args.seed, "models": list(args.models),
                   "labelled_defects_per_type": args.labelled_defects,
                   "validation_good": args.validation, "validation_per_defect": max(1, args.validation // 3)
                   if args.validation else 0},
        "machine": {**machine_description(), "load_average": [round(x, 2) for x in os.getloadavg()]},
        "dataset_seconds": round(gen_seconds, 1),
        "results": results,
        "checks": checks(results),
        "workdir": str(work),
    }


def checks(results: dict[str, Any]) -> dict[str, Any]:
    """Which targets each category/model meets (None when the value is missing)."""
    out: dict[str, Any] = {}
    for category, models in results.items():
        c: dict[str, Any] = {}
        for name, r in models.items():
            t = TARGETS.get(name, {})
            got = {
                key: (None if r.get(key) is None else (r[key] <= lim if key == "fit_seconds" else r[key] >= lim))
                for key, lim in t.items()
            }
            got["false_reject_rate"] = None if r["false_reject_rate"] is None else r["false_reject_rate"] <= MAX_TEST_FRR
            c[name] = got
        singles = [r["image_auroc"] for n, r in models.items() if n != "ensemble" and r["image_auroc"] is not None]
        if "ensemble" in models and singles:
            c["ensemble"]["within_0.01_of_best"] = models["ensemble"]["image_auroc"] >= max(singles) - 0.01
        out[category] = c
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workdir", help="keep data and models here (reused when present)")
    p.add_argument("--categories", nargs="+")
    p.add_argument("--models", nargs="+", default=["cae", "unet", "patchcore"])
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--n-train", type=int, default=120)
    p.add_argument("--n-test-good", type=int, default=20)
    p.add_argument("--n-per-defect", type=int, default=10)
    p.add_argument("--profile", default="default", choices=("default", "demo"))
    p.add_argument("--weights", default="none")
    p.add_argument("--epochs", type=int)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--labelled-defects", type=int, default=0, metavar="N",
                   help="also give the U-Net N labelled defects per type (another seed, never the test split)")
    p.add_argument("--validation", type=int, default=0, metavar="N",
                   help="also give a labelled validation folder: N good and N/3 defects per type (another seed)")
    p.add_argument("--no-save", action="store_true")
    args = p.parse_args()
    report = run(args)
    text = json.dumps(report, indent=2)
    print(text)
    if not args.no_save:
        out = ROOT / "benchmarks" / "results"
        out.mkdir(parents=True, exist_ok=True)
        (out / f"detector_benchmark_{time.strftime('%Y%m%dT%H%M%S')}.json").write_text(text + "\n")


if __name__ == "__main__":
    main()
