"""Benchmark `qc inspect`: images/s end to end and peak RSS, flat in the number of images.

Generates one synthetic category (256 px), trains cae + unet + patchcore with the
"demo" profile (random-init backbone; or reuses ``--models``), writes ``--n-large``
distinct test-like images (flips, brightness jitter and noise of the generated test
images), then runs ``qc inspect`` as a subprocess on the first ``--n-small`` and on
all ``--n-large`` images. Peak RSS of each child comes from ``os.wait4`` (ru_maxrss),
so the two numbers are independent. Prints one JSON object.

    QC_TORCH_THREADS=2 .venv/bin/python benchmarks/inspect_benchmark.py [--models DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def make_images(test_dir: Path, out: Path, n: int, seed: int = 0) -> None:
    """``n`` distinct PNGs derived from the category's test images (labels kept in subfolders)."""
    from qc_models.data.images import load_rgb

    sources = sorted(p for p in test_dir.rglob("*.png"))
    if not sources:
        raise SystemExit(f"{test_dir}: no test images to derive benchmark images from")
    base = [(p.parent.name, load_rgb(p)) for p in sources]
    rng = np.random.default_rng(seed)
    for i in range(n):
        label, img = base[i % len(base)]
        img = img[:, ::-1] if rng.random() < 0.5 else img
        img = img[::-1] if rng.random() < 0.5 else img
        jitter = rng.normal(0, 3, size=img.shape) + rng.uniform(-8, 8)
        arr = np.clip(img.astype(np.float32) + jitter, 0, 255).astype(np.uint8)
        folder = out / label
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(arr).save(folder / f"{i:05d}.png", compress_level=1)


def link_subset(src: Path, dst: Path, n: int) -> None:
    """The first ``n`` images of ``src`` (sorted by name) hard-linked into ``dst``, same subfolders."""
    files = sorted(src.rglob("*.png"), key=lambda p: p.name)[:n]
    for f in files:
        target = dst / f.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.link(f, target)


def run_inspect(folder: Path, models: Path, db_url: str, category: str, batch_size: int) -> dict:
    """One ``qc inspect`` child process: its summary, wall time and peak RSS."""
    cmd = [sys.executable, "-m", "qc_models", "inspect", str(folder), "--models", str(models), "--db", db_url,
           "--category", category, "--batch-size", str(batch_size), "--json", "--quiet"]
    with tempfile.TemporaryFile("w+") as out_f, tempfile.TemporaryFile("w+") as err_f:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out_f, stderr=err_f, text=True)
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage (ru_maxrss in KiB on Linux)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out_f.seek(0)
        err_f.seek(0)
        out, err = out_f.read(), err_f.read()
    lines = [ln for ln in out.splitlines() if ln.strip()]
    if not lines:
        raise SystemExit(f"qc inspect produced no output:\n{err}")
    summary = json.loads(lines[-1])
    return {"summary": summary, "wall_s": wall, "maxrss_kb": usage.ru_maxrss, "stderr": err, "rc": proc.returncode}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", type=Path, help="reuse this model registry (default: train the demo profile)")
    p.add_argument("--category", default="bottle")
    p.add_argument("--work", type=Path, help="work folder to keep (default: a temp folder, removed)")
    p.add_argument("--n-small", type=int, default=200)
    p.add_argument("--n-large", type=int, default=1000)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--size", type=int, default=256)
    args = p.parse_args()

    from qc_models.data.synthetic import generate_dataset
    from qc_models.runtime import cpu_model

    work = args.work or Path(tempfile.mkdtemp(prefix="qc_inspect_bench_"))
    work.mkdir(parents=True, exist_ok=True)
    result: dict = {"benchmark": "inspect", "category": args.category, "image_size": args.size,
                    "batch_size": args.batch_size, "cpu": cpu_model(), "cpu_count": os.cpu_count(),
                    "torch_threads": os.environ.get("QC_TORCH_THREADS", "all cores")}
    try:
        t0 = time.perf_counter()
        data = generate_dataset(work / "data", categories=[args.category], size=args.size, seed=0)
        result["generate_s"] = round(time.perf_counter() - t0, 2)
        models = args.models
        if models is None:
            from qc_models.training import train_category

            models = work / "models"
            t0 = time.perf_counter()
            train_category(data, args.category, out=models, weights="none", profile="demo")
            result["train_s"] = round(time.perf_counter() - t0, 2)
        large, small = work / f"images_{args.n_large}", work / f"images_{args.n_small}"
        for d in (large, small):
            shutil.rmtree(d, ignore_errors=True)
        make_images(data / args.category / "test", large, args.n_large)
        link_subset(large, small, args.n_small)

        runs = {}
        for n, folder in ((args.n_small, small), (args.n_large, large)):
            db = work / f"bench_{n}.db"
            db.unlink(missing_ok=True)
            r = run_inspect(folder, models, f"sqlite:///{db}", args.category, args.batch_size)
            s = r["summary"]
            if s.get("status") != "completed" or s.get("n_scored") != n:
                raise SystemExit(f"inspection of {n} images did not complete: {s}\n{r['stderr'][-2000:]}")
            runs[n] = {
                "wall_s": round(r["wall_s"], 2),
                "run_seconds": s["seconds"],
                "images_per_s_end_to_end": round(n / r["wall_s"], 2),
                "images_per_s_inspection_loop": round(n / s["seconds"], 2) if s["seconds"] else None,
                "peak_rss_mb": round(r["maxrss_kb"] / 1024, 1) if r["maxrss_kb"] else None,
                "n_defective": s["n_defective"],
                "models": sorted(m["model"] for m in s["models"]),
            }
        result["runs"] = {str(k): v for k, v in runs.items()}
        big, little = runs[args.n_large], runs[args.n_small]
        result["images_per_s_end_to_end"] = big["images_per_s_end_to_end"]
        if big["peak_rss_mb"] and little["peak_rss_mb"]:
            growth = big["peak_rss_mb"] - little["peak_rss_mb"]
            result["peak_rss_mb"] = big["peak_rss_mb"]
            result["rss_growth_mb"] = round(growth, 1)
            result["rss_flat"] = bool(growth < max(50.0, 0.1 * little["peak_rss_mb"]))
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
