# Record of the offline study behind docs/results.md "How the U-Net's epoch is chosen" (2026-12-07, session 15).
# Not product code; run with the tree of the commit that added it on sys.path. Step: ensemble (train -> replay -> ensemble).
"""Second pass: the chosen policy's U-Net calibrated as training does, the ensemble refitted with it
(product code: fit_ensemble with member_scales) beside the saved CAE and PatchCore; before = saved members."""
import json, os, sys
import numpy as np, torch
sys.path.insert(0, "/work/main")
from dataclasses import dataclass
from pathlib import Path
import qc_models.detectors.learned as learned
from qc_models.detectors.unet import UNetDetector
from qc_models.detectors.ensemble import fit_ensemble
from qc_models.registry import load_model_set
from qc_models.data.images import load_rgb
from qc_models.training import split_held_out, detector_kwargs, predict_in_batches
from qc_models.calibration import Calibrator
from qc_models.metrics import auroc
from qc_models.runtime import configure_torch, seed_everything
root, cat, seed, stem, align, models, policy = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4], json.loads(sys.argv[5]), sys.argv[6], sys.argv[7]
configure_torch()

@dataclass
class M:
    detector: object
    calibrator: Calibrator

images = [load_rgb(p) for p in sorted((root / cat / "train/good").glob("*.png"))]
fit_idx, cal_idx, stop_idx = split_held_out(len(images), seed)
held = [images[i] for i in np.concatenate([cal_idx, stop_idx])]
mset = load_model_set(models, cat)
tr = mset.members["cae"].metadata["training"]
held_sorted = [load_rgb(root / cat / "train/good" / f) for f in sorted(tr["calibration_files"])]
test_paths = sorted((root / cat / "test").glob("*/*.png"))
y = np.array([p.parent.name != "good" for p in test_paths], int)
test = [load_rgb(p) for p in test_paths]
fresh = [load_rgb(p) for p in sorted(Path("/tmp/w/fresh", cat, "train/good").glob("*.png"))[:300]]
cap = {}
real = learned.recompute_batchnorm
def grab(model, batches):
    cap["norm"] = batches
    return real(model, batches)
learned.recompute_batchnorm = grab
kw = detector_kwargs("unet", "default", 256, None, "none", "resnet18", seed); kw["align"] = align; kw["epochs"] = 1; kw["norm_batches"] = 4
seed_everything(seed); det = UNetDetector(**kw)
det.fit([images[i] for i in fit_idx], validation_images=[images[i] for i in stop_idx])
snaps = torch.load(stem + ".pt", weights_only=True)
e = json.load(open(stem + "_policies2.json"))["policies"][policy]["epoch"]
det.net_.load_state_dict(snaps[e - 1]); real(det.net_, cap["norm"]); det.net_.eval()
cs, cm = predict_in_batches(det, held)
ucal = Calibrator(0.01, 1.0).fit(cs, cm)

def evaluate(members):
    raw = {k: (predict_in_batches(m.detector, test)[0], predict_in_batches(m.detector, fresh)[0]) for k, m in members.items()}
    ens, ecal = fit_ensemble(members, held_sorted, seed=tr["seed"])
    et = ens.combine_scores({k: members[k].calibrator.standardise(raw[k][0]) for k in members})
    ef = ens.combine_scores({k: members[k].calibrator.standardise(raw[k][1]) for k in members})
    mem = {k: {"auroc": auroc(y, raw[k][0]), "frr_test": float(np.mean(m.calibrator.decide(raw[k][0][y == 0]))),
               "frr_fresh": float(np.mean(m.calibrator.decide(raw[k][1]))), "recall": float(np.mean(m.calibrator.decide(raw[k][0][y == 1])))}
           for k, m in members.items()}
    best = max(v["auroc"] for v in mem.values())
    return {"members": mem, "ensemble": {"auroc": auroc(y, et), "gap": auroc(y, et) - best, "recall": float(np.mean(ecal.decide(et[y == 1]))),
            "frr_test": float(np.mean(ecal.decide(et[y == 0]))), "frr_fresh": float(np.mean(ecal.decide(ef))),
            "weights": {k: round(v, 3) for k, v in ens.weights.items()}, "member_scales": getattr(ens, "member_scales", None)}}

before = {k: M(v.detector, v.calibrator) for k, v in mset.members.items()}
after = dict(before, unet=M(det, ucal))
res = {"epoch": e, "policy": policy, "before": evaluate(before), "after": evaluate(after)}
for k in ("before", "after"):
    r = res[k]
    print(f"{stem.split('/')[-1]:14s} {k:6s} unet {r['members']['unet']['auroc']:.3f} {r['members']['unet']['frr_test']*100:.1f}/{r['members']['unet']['frr_fresh']*100:.1f}% "
          f"| ens {r['ensemble']['auroc']:.3f} ({r['ensemble']['gap']:+.3f}) recall {r['ensemble']['recall']:.2f} frr {r['ensemble']['frr_test']*100:.1f}/{r['ensemble']['frr_fresh']*100:.1f}% w {r['ensemble']['weights']}", flush=True)
json.dump(res, open(stem + f"_ens_{policy}.json", "w"), default=float)
