# Record of the offline study behind docs/results.md "The ensemble's threshold never lies above a part that every
# member rejects" (2026-12-07, session 16). Not product code; /tmp/w paths are that session's work folders.
# Step 1 of 2: cache each member's z-scores (step 2: ensemble_threshold_cap_study_2026-12-07_rules.py).
"""Cache each member's z-scores (held-out goods, the ensemble's synthetic anomalies, test, 300 fresh goods),
with the saved U-Net ("before") and the session-15 U-Net (precise BN + latest within 5 %, "after"), so that
ensemble calibration rules can be compared offline in numpy."""
import json, sys
import numpy as np, torch
sys.path.insert(0, "/work/main")
from dataclasses import dataclass
from pathlib import Path
import qc_models.detectors.learned as learned
from qc_models.detectors.unet import UNetDetector
from qc_models.detectors import ensemble as E
from qc_models.registry import load_model_set
from qc_models.data.images import load_rgb
from qc_models.training import split_held_out, detector_kwargs, predict_in_batches
from qc_models.calibration import Calibrator
from qc_models.runtime import configure_torch, seed_everything
root, cat, seed, stem, align, models, out = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4], json.loads(sys.argv[5]), sys.argv[6], sys.argv[7]
policy = "pbn_p30_late5"
configure_torch()
@dataclass
class M:
    detector: object
    calibrator: Calibrator
images = [load_rgb(p) for p in sorted((root / cat / "train/good").glob("*.png"))]
fit_idx, cal_idx, stop_idx = split_held_out(len(images), seed)
mset = load_model_set(models, cat)
tr = mset.members["cae"].metadata["training"]
held = [load_rgb(root / cat / "train/good" / f) for f in sorted(tr["calibration_files"])]
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
members = {k: M(v.detector, v.calibrator) for k, v in mset.members.items()}
members["unet_new"] = M(det, ucal)
size = E.members_working_size(members)
working = E.working_copies(held, size)
assert all(a is b for a, b in zip(working, held))
on_part = E.shows_objects(working)
anomalous, areas = E.synthetic_set(working, seed=tr["seed"] + E.SYNTHETIC_SEED_OFFSET, on_part=on_part)
arr = {"y": y, "areas": areas}
meta = {"cat": cat, "seed": seed, "epoch_new": e, "on_part": on_part}
for k, m in members.items():
    arr[f"{k}_good"] = E.member_outputs(m, held)[0]
    arr[f"{k}_synth"] = E.member_outputs(m, anomalous)[0]
    arr[f"{k}_test"] = m.calibrator.standardise(predict_in_batches(m.detector, test)[0])
    arr[f"{k}_fresh"] = m.calibrator.standardise(predict_in_batches(m.detector, fresh)[0])
    arr[f"{k}_zthr"] = np.array(float(m.calibrator.standardise(m.calibrator.threshold)))
    arr[f"{k}_zmax"] = np.array(float(m.calibrator.standardise(1.0))) if k.startswith("unet") else np.array(np.inf)
np.savez(out, **arr)
json.dump(meta, open(out.replace(".npz", ".json"), "w"))
print(cat, seed, "cached", flush=True)
