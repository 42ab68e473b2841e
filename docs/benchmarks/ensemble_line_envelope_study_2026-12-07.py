"""The ensemble refitted (product fit_ensemble) with PatchCore refitted at fine_weight=W and calibrated as training
does, beside the saved CAE and U-Net; 'before' (saved members, current code) is session 16's ens_*.json."""
import json, sys, time
import numpy as np
sys.path.insert(0, "/work/main")
from dataclasses import dataclass
from pathlib import Path
from qc_models.detectors.patchcore import PatchCore
from qc_models.detectors.ensemble import fit_ensemble
from qc_models.registry import load_model_set
from qc_models.data.images import load_rgb
from qc_models.training import predict_in_batches
from qc_models.calibration import Calibrator
from qc_models.metrics import auroc
from qc_models.runtime import configure_torch, seed_everything
tag, cat, W = sys.argv[1], sys.argv[2], (None if sys.argv[3] == "default" else float(sys.argv[3]))
configure_torch()
root, models = Path(f"/tmp/w/{tag}/data"), f"/tmp/w/{tag}/models"

@dataclass
class M:
    detector: object
    calibrator: Calibrator

mset = load_model_set(models, cat)
saved = mset.members["patchcore"]
tr = saved.metadata["training"]
cfg = {k: v for k, v in saved.detector.get_config().items() if k != "fine_weight"}
fit = [load_rgb(root / cat / "train/good" / f) for f in tr["fit_files"]]
held = [load_rgb(root / cat / "train/good" / f) for f in sorted(tr["calibration_files"])]
test_paths = sorted((root / cat / "test").glob("*/*.png"))
y = np.array([p.parent.name != "good" for p in test_paths], int)
test = [load_rgb(p) for p in test_paths]
fresh = [load_rgb(p) for p in sorted(Path("/tmp/w/fresh", cat, "train/good").glob("*.png"))[:300]]
seed_everything(tr["seed"])
t0 = time.time(); pc = PatchCore(**cfg, fine_weight=W).fit(fit); fit_s = time.time() - t0
cs, cm = predict_in_batches(pc, held)
pcal = Calibrator(0.01, pc.score_upper_bound).fit(cs, cm)
members = {k: M(v.detector, v.calibrator) for k, v in mset.members.items()}
members["patchcore"] = M(pc, pcal)
raw = {k: (predict_in_batches(m.detector, test)[0], predict_in_batches(m.detector, fresh)[0]) for k, m in members.items()}
ens, ecal = fit_ensemble(members, held, seed=tr["seed"])
et = ens.combine_scores({k: members[k].calibrator.standardise(raw[k][0]) for k in members})
ef = ens.combine_scores({k: members[k].calibrator.standardise(raw[k][1]) for k in members})
mem = {k: {"auroc": auroc(y, raw[k][0]), "frr_test": float(np.mean(m.calibrator.decide(raw[k][0][y == 0]))),
           "frr_fresh": float(np.mean(m.calibrator.decide(raw[k][1]))), "recall": float(np.mean(m.calibrator.decide(raw[k][0][y == 1])))}
       for k, m in members.items()}
best = max(v["auroc"] for v in mem.values())
r = {"W": W, "fine_weight": pc.fine_weight, "envelope": pc.describe()["fine_envelope"], "fit_s": fit_s, "members": mem, "ensemble": {"auroc": auroc(y, et), "gap": auroc(y, et) - best,
     "recall": float(np.mean(ecal.decide(et[y == 1]))), "frr_test": float(np.mean(ecal.decide(et[y == 0]))),
     "frr_fresh": float(np.mean(ecal.decide(ef))), "weights": {k: round(v, 3) for k, v in ens.weights.items()}}}
p = r["members"]["patchcore"]; e = r["ensemble"]
print(f"{tag}/{cat:10s} W={W} pc {p['auroc']:.3f} frr {100*p['frr_test']:.1f}/{100*p['frr_fresh']:.1f}% recall {p['recall']:.2f} | "
      f"ens {e['auroc']:.3f} ({e['gap']:+.3f}) recall {e['recall']:.2f} frr {100*e['frr_test']:.1f}/{100*e['frr_fresh']:.1f}% w {e['weights']}", flush=True)
json.dump(r, open(f"/tmp/w/s18/ensenv_{tag}_{cat}_{W}.json", "w"), default=float)
