"""U-Net (product code) retrained with an extra synthetic kind 'tint' (texture-preserving discolouration), then the
product fit_ensemble beside the saved CAE and PatchCore (PatchCore refitted with current code)."""
import json, sys, time
import numpy as np, cv2
sys.path.insert(0, "/work/main")
from dataclasses import dataclass
from pathlib import Path
from qc_models.detectors import synthetic_anomalies as sa
from qc_models.detectors.unet import UNetDetector
from qc_models.detectors.patchcore import PatchCore
from qc_models.detectors.ensemble import fit_ensemble
from qc_models.registry import load_model_set
from qc_models.data.images import load_rgb
from qc_models.training import predict_in_batches
from qc_models.calibration import Calibrator
from qc_models.metrics import auroc
from qc_models.runtime import configure_torch, seed_everything

def _tint_anomaly(image, rng, source):
    h, w = image.shape[:2]
    region = sa.perlin_mask((h, w), rng, area_range=(0.003, 0.06))
    soft = cv2.GaussianBlur(region.astype(np.float32), (0, 0), max(1.0, 0.01 * min(h, w)))
    direction = rng.normal(size=3); direction /= np.linalg.norm(direction) + 1e-8
    gain = np.clip(1.0 + rng.uniform(0.15, 0.6) * direction * np.sqrt(3) * rng.choice([-1, 1]), 0.2, 2.0)
    gain = gain * rng.uniform(0.8, 1.2)
    content = image.astype(np.float32) * gain[None, None, :].astype(np.float32)
    alpha = (soft * rng.uniform(0.6, 1.0))[..., None]
    out = image.astype(np.float32) * (1 - alpha) + content * alpha
    return out, region & (soft > 0.3)

TAG, CAT, TINT = sys.argv[1], sys.argv[2], float(sys.argv[3])
SEED = int(sys.argv[4]) if len(sys.argv) > 4 else None
if TINT > 0:
    sa.KINDS["tint"] = TINT; sa._MAKERS["tint"] = _tint_anomaly
configure_torch()
root, models = Path(f"/tmp/w/{TAG}/data"), f"/tmp/w/{TAG}/models"
@dataclass
class M:
    detector: object
    calibrator: Calibrator
mset = load_model_set(models, CAT); su = mset.members["unet"]; tr = su.metadata["training"]
files = lambda key: [load_rgb(root / CAT / "train/good" / f) for f in tr[key]]
fit, stop, held = files("fit_files"), files("early_stopping_files"), [load_rgb(root / CAT / "train/good" / f) for f in sorted(tr["calibration_files"])]
tp = sorted((root / CAT / "test").glob("*/*.png")); t = np.array([p.parent.name for p in tp]); y = (t != "good").astype(int)
test = [load_rgb(p) for p in tp]
fresh = [load_rgb(p) for p in sorted(Path("/tmp/w/fresh", CAT, "train/good").glob("*.png"))[:300]]
seed_everything(tr["seed"]); t0 = time.time()
ucfg = su.detector.get_config()
if SEED is not None: ucfg["seed"] = SEED
un = UNetDetector(**ucfg).fit(fit, validation_images=stop); fs = time.time() - t0
cs, cm = predict_in_batches(un, held); ucal = Calibrator(0.01, un.score_upper_bound).fit(cs, cm)
sp = mset.members["patchcore"]; pcfg = {k: v for k, v in sp.detector.get_config().items() if k != "fine_weight"}
seed_everything(tr["seed"]); pc = PatchCore(**pcfg).fit(fit)
cs, cm = predict_in_batches(pc, held); pcal = Calibrator(0.01, pc.score_upper_bound).fit(cs, cm)
members = {k: M(v.detector, v.calibrator) for k, v in mset.members.items()}
members["unet"] = M(un, ucal); members["patchcore"] = M(pc, pcal)
raw = {k: (predict_in_batches(m.detector, test)[0], predict_in_batches(m.detector, fresh)[0] if fresh else np.zeros(0)) for k, m in members.items()}
seed_everything(tr["seed"]); ens, ecal = fit_ensemble(members, held, seed=tr["seed"])
et = ens.combine_scores({k: members[k].calibrator.standardise(raw[k][0]) for k in members})
ef = ens.combine_scores({k: members[k].calibrator.standardise(raw[k][1]) for k in members}) if fresh else np.zeros(0)
def per(s):
    return {k: round(auroc(np.r_[np.zeros((t == "good").sum()), np.ones((t == k).sum())], np.r_[s[t == "good"], s[t == k]]), 3) for k in sorted(set(t) - {"good"})}
mem = {k: {"auroc": auroc(y, raw[k][0]), "per": per(raw[k][0]), "frr_test": float(np.mean(m.calibrator.decide(raw[k][0][y == 0]))),
           "frr_fresh": float(np.mean(m.calibrator.decide(raw[k][1]))) if fresh else None,
           "recall": float(np.mean(m.calibrator.decide(raw[k][0][y == 1])))} for k, m in members.items()}
best = max(v["auroc"] for v in mem.values())
r = {"tint": TINT, "unet_fit_s": fs, "epochs": un.describe().get("epochs_trained"), "members": mem,
     "ensemble": {"auroc": auroc(y, et), "gap": auroc(y, et) - best, "per": per(et), "recall": float(np.mean(ecal.decide(et[y == 1]))),
                  "frr_test": float(np.mean(ecal.decide(et[y == 0]))), "frr_fresh": float(np.mean(ecal.decide(ef))) if fresh else None,
                  "weights": {k: round(v, 3) for k, v in ens.weights.items()}}}
u, e = mem["unet"], r["ensemble"]
ff = lambda v: "-" if v is None else f"{100*v:.1f}"
print(f"{TAG}/{CAT:9s} tint={TINT} seed={SEED} unet {u['auroc']:.3f} {u['per']} frr {ff(u['frr_test'])}/{ff(u['frr_fresh'])} fit {fs:.0f}s | "
      f"pc {mem['patchcore']['auroc']:.3f} | ens {e['auroc']:.3f} ({e['gap']:+.3f}) recall {e['recall']:.2f} frr {ff(e['frr_test'])}/{ff(e['frr_fresh'])} w {e['weights']}", flush=True)
json.dump(r, open(f"/tmp/w/s19/tint_{TAG}_{CAT}_{TINT}_{SEED}.json", "w"), default=float)
