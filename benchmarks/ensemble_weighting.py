"""How far can the ensemble's member weights be trusted? Measured on a trained registry, nothing retrained.

The ensemble weights each member by how well it separates the calibration good images from
synthetic anomalies made from them (:mod:`qc_models.detectors.ensemble`). That rests on 18-ish
held-out good images and on a generator the U-Net itself trains on, so this study asks, per
category of a registry the detector benchmark (or ``qc train``) filled:

* each member's separation per anomaly kind (what the weights rest on) beside its test AUROC
  (what the weights should predict);
* the saved ensemble's image AUROC and its gap to the best member;
* the weights' spread when the calibration images and the synthetic anomalies are resampled
  (bootstrap), and the gap to the best member each resample would give, as it is and with the
  weights averaged over inner resamples ("bagged");
* each member's standardised score on the test split's good images beside the calibration
  ones: a shift there (new lighting, texture never seen) is invisible to the weighting;
* the best weights in hindsight on the test split (a grid over the weight simplex), only to judge
  how much room there is: the product never fits anything on the test set.

    .venv/bin/python benchmarks/ensemble_weighting.py ROOT --models MODELS_DIR [--categories C ...] [--out FILE]

Prints JSON (also written to ``--out``).
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from qc_models.data import open_category
from qc_models.data.images import load_rgb
from qc_models.detectors.alignment import shows_objects
from qc_models.detectors.ensemble import (
    WEIGHT_POWER,
    member_outputs,
    members_working_size,
    synthetic_separation,
    synthetic_set,
    transform_scores,
    weights_from_auroc,
    working_copies,
)
from qc_models.detectors.synthetic_anomalies import KINDS
from qc_models.metrics import auroc
from qc_models.registry import load_model_set
from qc_models.registry.listing import registry_categories
from qc_models.runtime import configure_torch
from qc_models.training import calibration_files

#: Weight steps of the hindsight grid (weights are multiples of 1/GRID_STEPS).
GRID_STEPS = 20


def collect(root: Path, models_dir: Path, category: str, per_kind: int, seed: int) -> dict[str, Any]:
    """Every member's standardised scores on calibration good, test and per-kind synthetic images."""
    mset = load_model_set(models_dir, category)
    if mset.ensemble is None:
        raise SystemExit(f"error: {models_dir}/{category} has no usable ensemble; train with --model all first")
    names = list(mset.members)
    cal = sorted(set.intersection(*(set(calibration_files(m.metadata)) for m in mset.members.values())))
    good = [load_rgb(Path(root) / category / "train" / "good" / f) for f in cal]
    size = members_working_size(mset.members)
    working = good if size is None else working_copies(good, size)
    samples = open_category(root, category).samples("test")
    test = [load_rgb(s.path) for s in samples]
    scores = {n: member_outputs(mset.members[n], test)[0] for n in names}
    out: dict[str, Any] = {
        "names": names, "saved_weights": dict(mset.ensemble.detector.weights),
        "labels": np.array([s.label for s in samples]), "types": [s.defect_type for s in samples],
        "cal": {n: member_outputs(mset.members[n], working)[0] for n in names},
        "test": scores, "saved_ensemble": mset.ensemble.detector.combine_scores(scores),
        "syn": {}, "areas": {},
    }
    on_part = shows_objects(working)
    for j, kind in enumerate(KINDS):
        anomalous, areas = synthetic_set(working, seed=seed + j, per_image=per_kind, on_part=on_part, kinds=[kind])
        out["areas"][kind] = areas
        out["syn"][kind] = {n: member_outputs(mset.members[n], anomalous)[0] for n in names}
    return out


def ensemble_auroc(data: dict[str, Any], weights: dict[str, float]) -> float:
    """Image AUROC on the test split of the members' scores combined with ``weights`` as the ensemble does."""
    combined = sum(w * transform_scores(data["test"][n], "knee_log") for n, w in weights.items())
    return float(auroc(data["labels"], combined))


def resampled_weights(data: dict[str, Any], cal_idx: np.ndarray, syn_idx: np.ndarray,
                      kinds: np.ndarray) -> dict[str, float]:
    """Weights from one resample: calibration images ``cal_idx``, anomaly ``syn_idx[i]`` of kind ``kinds[i]``."""
    names = list(KINDS)
    areas = np.array([data["areas"][names[k]][i] for k, i in zip(kinds, syn_idx)])
    seps = {}
    for n in data["names"]:
        bad = np.array([data["syn"][names[k]][n][i] for k, i in zip(kinds, syn_idx)])
        seps[n] = synthetic_separation(data["cal"][n][cal_idx], bad, areas)
    return weights_from_auroc(seps, WEIGHT_POWER)


def bootstrap(data: dict[str, Any], n_boot: int, n_inner: int, n_synthetic: int, seed: int) -> dict[str, Any]:
    """Spread of the weights and of the gap to the best member when the evidence is resampled."""
    rng = np.random.default_rng(seed)
    p = np.array(list(KINDS.values()))
    p = p / p.sum()
    n_cal, n_kind = len(next(iter(data["cal"].values()))), len(next(iter(data["areas"].values())))
    best = max(auroc(data["labels"], data["test"][n]) for n in data["names"])
    plain, bagged, ws = [], [], []
    for _ in range(n_boot):
        cal_idx, kinds = rng.integers(0, n_cal, n_cal), rng.choice(len(p), size=n_synthetic, p=p)
        syn_idx = rng.integers(0, n_kind, n_synthetic)
        w = resampled_weights(data, cal_idx, syn_idx, kinds)
        ws.append([w[n] for n in data["names"]])
        plain.append(ensemble_auroc(data, w) - best)
        acc = dict.fromkeys(data["names"], 0.0)
        for _ in range(n_inner):
            pick = rng.integers(0, n_synthetic, n_synthetic)
            wi = resampled_weights(data, rng.choice(cal_idx, n_cal), syn_idx[pick], kinds[pick])
            for n in acc:
                acc[n] += wi[n] / n_inner
        if n_inner:
            bagged.append(ensemble_auroc(data, acc) - best)
    arr = np.array(ws)

    def summary(gaps: list[float]) -> dict[str, float] | None:
        return None if not gaps else {"mean": float(np.mean(gaps)), "p10": float(np.percentile(gaps, 10)),
                                      "p90": float(np.percentile(gaps, 90))}

    return {"n": n_boot, "inner": n_inner, "n_synthetic": n_synthetic,
            "weight_mean": dict(zip(data["names"], arr.mean(0).round(4).tolist())),
            "weight_sd": dict(zip(data["names"], arr.std(0).round(4).tolist())),
            "gap": summary(plain), "gap_bagged": summary(bagged)}


def hindsight(data: dict[str, Any]) -> dict[str, Any]:
    """Best weights on the test split over a grid, and how much of the grid keeps the gap within 0.01."""
    names = data["names"]
    best = max(auroc(data["labels"], data["test"][n]) for n in names)
    grid = [c for c in itertools.product(range(GRID_STEPS + 1), repeat=len(names)) if sum(c) == GRID_STEPS]
    scores = [ensemble_auroc(data, {n: c / GRID_STEPS for n, c in zip(names, cell)}) for cell in grid]
    top = int(np.argmax(scores))
    return {"best_auroc": float(scores[top]), "best_weights": {n: c / GRID_STEPS for n, c in zip(names, grid[top])},
            "share_within_0_01": float(np.mean(np.array(scores) >= best - 0.01))}


def study(root: Path, models_dir: Path, category: str, args: argparse.Namespace) -> dict[str, Any]:
    t0 = time.perf_counter()
    data = collect(root, models_dir, category, args.per_kind, args.seed)
    names, labels, types = data["names"], data["labels"], np.array(data["types"])
    member = {n: float(auroc(labels, data["test"][n])) for n in names}
    per_kind = {n: {k: float(auroc(np.r_[np.zeros(len(data["cal"][n])), np.ones(len(data["syn"][k][n]))],
                                   np.r_[data["cal"][n], data["syn"][k][n]])) for k in KINDS} for n in names}
    good = labels == 0
    per_defect = {n: {t: float(auroc(np.r_[np.zeros(good.sum()), np.ones((types == t).sum())],
                                     np.r_[data["test"][n][good], data["test"][n][types == t]]))
                      for t in sorted(set(types[~good]))} for n in names}
    # Test good images far above the calibration good ones: the weights cannot see that shift.
    shift = {n: {"calibration_p90_z": float(np.percentile(data["cal"][n], 90)),
                 "test_good_median_z": float(np.median(data["test"][n][good])),
                 "test_defective_median_z": float(np.median(data["test"][n][~good]))} for n in names}
    saved = float(auroc(labels, data["saved_ensemble"]))
    return {
        "members": names, "test_auroc": member, "saved_weights": data["saved_weights"],
        "saved_ensemble_auroc": saved, "saved_gap": saved - max(member.values()),
        "separation_per_kind": per_kind, "test_auroc_per_defect": per_defect,
        "calibration_images": len(data["cal"][names[0]]), "good_shift": shift,
        "bootstrap": bootstrap(data, args.bootstrap, args.inner, args.synthetic, args.seed),
        "hindsight": hindsight(data), "seconds": round(time.perf_counter() - t0, 1),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("root", type=Path, help="MVTec-layout dataset the registry was trained on")
    ap.add_argument("--models", type=Path, required=True, help="model registry (MODELS_DIR)")
    ap.add_argument("--categories", nargs="+", help="default: every category in the registry")
    ap.add_argument("--per-kind", type=int, default=3, help="synthetic anomalies of each kind per calibration image")
    ap.add_argument("--bootstrap", type=int, default=80, help="outer resamples")
    ap.add_argument("--inner", type=int, default=50, help="inner resamples for the bagged weights (0: none)")
    ap.add_argument("--synthetic", type=int, default=90, help="synthetic anomalies per resample (as the ensemble)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    configure_torch()
    categories = args.categories or registry_categories(args.models)
    if not categories:
        raise SystemExit(f"error: {args.models} holds no trained category")
    result = {"config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
              "results": {c: study(args.root, args.models, c, args) for c in categories}}
    text = json.dumps(result, indent=1)
    if args.out:
        args.out.write_text(text)
    print(text)
    return result


if __name__ == "__main__":
    sys.exit(main() and 0)
