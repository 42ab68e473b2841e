"""Offline: PatchCore's threshold calibrated on held-out images only (as now) vs held-out + cross-fitted scores of
its own fit images (half-bank models, each scoring the other half)."""
import json, sys, time
import numpy as np
sys.path.insert(0, "/work/main")
from pathlib import Path
from qc_models.detectors.patchcore import PatchCore
from qc_models.registry import load_model_set
from qc_models.data.images import load_rgb
from qc_models.calibration import Calibrator
from qc_models.metrics import auroc
from qc_models.runtime import configure_torch, seed_everything
configure_torch()
for spec in sys.argv[1].split(","):
    tag, cat = spec.split("/")
    root, models = Path(f"/tmp/w/{tag}/data"), f"/tmp/w/{tag}/models"
    mset = load_model_set(models, cat); saved = mset.members["patchcore"]; tr = saved.metadata["training"]
    cfg = {k: v for k, v in saved.detector.get_config().items() if k != "fine_weight"}
    fit = [load_rgb(root / cat / "train/good" / f) for f in tr["fit_files"]]
    held = [load_rgb(root / cat / "train/good" / f) for f in sorted(tr["calibration_files"])]
    tp = sorted((root / cat / "test").glob("*/*.png")); y = np.array([p.parent.name != "good" for p in tp], int)
    test = [load_rgb(p) for p in tp]
    fresh = [load_rgb(p) for p in sorted(Path("/tmp/w/fresh", cat, "train/good").glob("*.png"))[:300]]
    seed_everything(tr["seed"]); pc = PatchCore(**cfg).fit(fit)
    h = pc.predict(held).image_scores; s = pc.predict(test).image_scores; f = pc.predict(fresh).image_scores
    a, b = fit[0::2], fit[1::2]
    pa = PatchCore(**cfg).fit(a); pb = PatchCore(**cfg).fit(b)
    xb, xa = pa.predict(b).image_scores, pb.predict(a).image_scores
    hh = (pa.predict(held).image_scores + pb.predict(held).image_scores) / 2
    res = {}
    k = float(np.median(h / hh))
    for name, cal_scores in [("held", h), ("held+cross", np.r_[h, xa, xb]), ("held+cross*k", np.r_[h, k * xa, k * xb])]:
        c = Calibrator(0.01, pc.score_upper_bound).fit(cal_scores, None)
        res[name] = (float(np.mean(c.decide(s[y == 0]))), float(np.mean(c.decide(f))), float(np.mean(c.decide(s[y == 1]))))
    print(f"{spec:14s} auroc {auroc(y, s):.3f} half-bank/full on held x{np.median(hh / h):.3f} | " + " | ".join(
        f"{k}: frr test {100*v[0]:.1f} fresh {100*v[1]:.1f} recall {v[2]:.2f}" for k, v in res.items()), flush=True)
