"""Record of the offline study behind docs/results.md "Each member's threshold kept below the ensemble's knee" (2026-12-07).

Not product code: run once per registry (seed-0 and seed-1 demo benchmarks, the hold-out benchmark) with the tree of
commit 7ba28af on ``sys.path``. It refits only the ensemble, on the sorted held-out images as training does, with
the product's ``member_scales`` switched off and the same scaling done per variant by widening each member's spread
to ``(threshold - median) / K`` (K=None = the ensemble before the change; K=10 = the product's cap). Usage:
``python ensemble_threshold_z_cap_study_2026-12-07.py TAG DATA_ROOT MODELS_DIR cat1,cat2 [FRESH_ROOT]``.
"""
import json, sys, time, numpy as np
from dataclasses import dataclass
from pathlib import Path
sys.path.insert(0, "/work/main")
from qc_models.registry import load_model_set
from qc_models.data.images import load_rgb
from qc_models.detectors.ensemble import fit_ensemble
import qc_models.detectors.ensemble as E
E.member_scales = lambda members, cap=None: {}  # the floor below does the same, per variant (K=None = before)
from qc_models import calibration as C
from qc_models.training import predict_in_batches
from qc_models.metrics import auroc
from qc_models.runtime import configure_torch
configure_torch()

VARIANTS = [None, 10.0, 6.0, 4.0]
_orig = C.Calibrator.standardise
K = None

def standardise(self, scores):
    self._check()
    spread = float(self.stats_.get("spread") or 0.0)
    if not spread > 0:
        spread = float(self.scale_)
    if K is not None:
        spread = max(spread, (self.threshold - self.location_) / K)
    return (np.asarray(scores, dtype=np.float64) - self.location_) / spread
C.Calibrator.standardise = standardise

@dataclass
class M:
    detector: object
    calibrator: C.Calibrator

tag, root, models, cats = sys.argv[1], Path(sys.argv[2]), sys.argv[3], sys.argv[4].split(",")
fresh_root = Path(sys.argv[5]) if len(sys.argv) > 5 else None
out = {}
for cat in cats:
    t0 = time.time()
    mset = load_model_set(models, cat)
    tr = mset.members["cae"].metadata["training"]
    good = root / cat / "train/good"
    held = [load_rgb(good / f) for f in sorted(tr["calibration_files"])]  # as training.fit_ensemble_for orders them
    test_paths = sorted((root / cat / "test").glob("*/*.png"))
    y = np.array([p.parent.name != "good" for p in test_paths], int)
    test = [load_rgb(p) for p in test_paths]
    fresh = []
    if fresh_root is not None and (fresh_root / cat / "train/good").is_dir():
        fresh = [load_rgb(p) for p in sorted((fresh_root / cat / "train/good").glob("*.png"))]
    members = {k: M(v.detector, v.calibrator) for k, v in mset.members.items()}
    raw = {k: {"test": predict_in_batches(m.detector, test)[0],
               **({"fresh": predict_in_batches(m.detector, fresh)[0]} if fresh else {})} for k, m in members.items()}
    res = {"members": {}}
    for k, m in members.items():
        c = m.calibrator
        s = raw[k]["test"]
        res["members"][k] = {"auroc": auroc(y, s), "recall": float(np.mean(c.decide(s[y == 1]))),
                             "frr_test": float(np.mean(c.decide(s[y == 0]))),
                             "z_threshold": float((c.threshold - c.location_) / (c.stats_.get("spread") or c.scale_)),
                             **({"frr_fresh": float(np.mean(c.decide(raw[k]["fresh"])))} if fresh else {})}
    best = max(v["auroc"] for v in res["members"].values())
    for kv in VARIANTS:
        K = kv
        ens, ecal = fit_ensemble(members, held, seed=tr["seed"])
        zt = {k: members[k].calibrator.standardise(raw[k]["test"]) for k in members}
        et = ens.combine_scores(zt)
        row = {"weights": {k: round(v, 3) for k, v in ens.weights.items()}, "auroc": auroc(y, et),
               "gap": auroc(y, et) - best, "recall": float(np.mean(ecal.decide(et[y == 1]))),
               "frr_test": float(np.mean(ecal.decide(et[y == 0]))), "threshold": ecal.threshold,
               "synthetic_detection_rate": ens.details["synthetic_detection_rate"]}
        if fresh:
            ef = ens.combine_scores({k: members[k].calibrator.standardise(raw[k]["fresh"]) for k in members})
            row["frr_fresh"] = float(np.mean(ecal.decide(ef)))
        res[f"K={kv}"] = row
        print(tag, cat, f"K={kv}", json.dumps({a: (round(b, 3) if isinstance(b, float) else b) for a, b in row.items()}), flush=True)
    print(tag, cat, "members", json.dumps({k: {a: round(b, 3) for a, b in v.items()} for k, v in res["members"].items()}), flush=True)
    out[cat] = res
    print(f"{tag} {cat} {time.time()-t0:.0f}s", flush=True)
    json.dump(out, open(f"/tmp/w/study/floor_{tag}.json", "w"), indent=1, default=float)
