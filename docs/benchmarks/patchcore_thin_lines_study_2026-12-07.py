"""Offline: the product PatchCore with fine_weight in {0, ...} refitted on each saved registry's fit files (saved
config otherwise); image / pixel / per-type AUROC on the test split."""
import json, sys, glob, time
import numpy as np
sys.path.insert(0, "/work/main")
from pathlib import Path
from sklearn.metrics import roc_auc_score
from qc_models.detectors.patchcore import PatchCore
from qc_models.data.images import load_rgb, load_mask
from qc_models.runtime import configure_torch
from qc_models import metrics as M

def run(reg, data, cat, weights):
    meta = json.load(open(sorted(glob.glob(f"{reg}/{cat}/patchcore/*/model.json"))[-1]))
    cfg = {k: v for k, v in meta["config"].items() if k != "fine_weight"}
    train = [load_rgb(Path(data) / cat / "train/good" / f) for f in meta["training"]["fit_files"]]
    paths = sorted((Path(data) / cat / "test").glob("*/*.png"))
    test = [load_rgb(p) for p in paths]; t = np.array([p.parent.name for p in paths]); y = (t != "good").astype(int)
    masks = [np.zeros(test[0].shape[:2], bool) if p.parent.name == "good" else
             load_mask(Path(data) / cat / "ground_truth" / p.parent.name / (p.stem + "_mask.png")) for p in paths]
    out = {}
    for w in weights:
        t0 = time.time(); pc = PatchCore(**cfg, fine_weight=w).fit(train); fs = time.time() - t0
        t0 = time.time(); pred = pc.predict(test); ps = len(test) / (time.time() - t0)
        s = pred.image_scores
        pm, pk = M.resize_for_metrics(list(pred.anomaly_maps), masks)
        pix = roc_auc_score(np.concatenate([k.ravel() for k in pk]), np.concatenate([m.ravel() for m in pm]))
        per = {str(k): round(roc_auc_score(np.r_[np.zeros((t == 'good').sum()), np.ones((t == k).sum())], np.r_[s[t == 'good'], s[t == k]]), 3) for k in sorted(set(t) - {'good'})}
        out[str(w)] = {"image": roc_auc_score(y, s), "pixel": pix, "per": per, "fit_s": round(fs, 1), "img_s": round(ps, 1)}
        print(f"{cat:10s} w={w:<5} image {out[str(w)]['image']:.3f} pixel {pix:.3f} fit {fs:.1f}s {ps:.1f} img/s {per}", flush=True)
    return out

if __name__ == "__main__":
    configure_torch()
    weights = [float(w) for w in sys.argv[1].split(",")]
    res = {}
    for tag, cats in (("s0", "carpet,wood,bottle,metal_nut"), ("s1", "carpet,wood,bottle,metal_nut"), ("hob", "tile,leather,screw,capsule")):
        for c in cats.split(","):
            res[f"{tag}/{c}"] = run(f"/tmp/w/{tag}/models", f"/tmp/w/{tag}/data", c, weights)
            json.dump(res, open("/tmp/w/s17/fine2.json", "w"), indent=1)
