"""Where PatchCore's pixel AUROC is lost: per type, interior vs border of masks, negatives from good vs defect images."""
import json, sys, glob
import numpy as np, cv2
sys.path.insert(0, "/work/main")
from pathlib import Path
from sklearn.metrics import roc_auc_score
from qc_models.registry.artifacts import load_model
from qc_models.data.images import load_rgb, load_mask
from qc_models.runtime import configure_torch
from qc_models import metrics as M

def auc(pos, neg):
    return roc_auc_score(np.r_[np.ones(len(pos)), np.zeros(len(neg))], np.r_[pos, neg])

def run(reg, data, cat, model="patchcore"):
    vd = sorted(glob.glob(f"{reg}/{cat}/{model}/*/"))[-1]
    tm = load_model(vd)
    paths = sorted((Path(data) / cat / "test").glob("*/*.png"))
    t = np.array([p.parent.name for p in paths])
    test = [load_rgb(p) for p in paths]
    masks = [np.zeros(test[0].shape[:2], bool) if p.parent.name == "good" else
             load_mask(Path(data) / cat / "ground_truth" / p.parent.name / (p.stem + "_mask.png")) for p in paths]
    pred = tm.detector.predict(test)
    pm, pk = M.resize_for_metrics(list(pred.anomaly_maps), masks)
    np.savez_compressed(f"/tmp/w/s18/maps_{cat}_{model}.npz", maps=pm.astype(np.float16), masks=pk, types=t, scores=pred.image_scores)
    allm, allk = pm.ravel(), pk.ravel()
    out = {"pixel": roc_auc_score(allk, allm)}
    good_neg = pm[t == "good"].ravel()
    sub = np.random.default_rng(0)
    gn = sub.choice(good_neg, 200000, replace=False)
    dn = pm[t != "good"][~pk[t != "good"]]; dn = sub.choice(dn, min(200000, dn.size), replace=False)
    pos = pm[pk]
    out["pos_vs_goodneg"] = auc(pos, gn); out["pos_vs_defneg"] = auc(pos, dn)
    k = np.ones((9, 9), np.uint8)
    inner = np.stack([cv2.erode(m.astype(np.uint8), k) > 0 for m in pk]); ring = pk & ~inner
    near = np.stack([cv2.dilate(m.astype(np.uint8), np.ones((17, 17), np.uint8)) > 0 for m in pk]) & ~pk
    out["inner_vs_good"] = auc(pm[inner], gn) if inner.any() else None
    out["ring_vs_good"] = auc(pm[ring], gn); out["frac_inner"] = float(inner.sum() / pk.sum())
    out["pos_vs_near"] = auc(pos, sub.choice(pm[near], min(200000, near.sum()), replace=False))
    # per-image median removed
    med = np.median(pm.reshape(len(pm), -1), axis=1)[:, None, None]
    out["pixel_minus_median"] = roc_auc_score(allk, (pm - med).ravel())
    per = {}
    for ty in sorted(set(t) - {"good"}):
        sel = (t == ty) | (t == "good")
        p_ty = pm[t == ty][pk[t == ty]]
        per[ty] = {"pixel": roc_auc_score(pk[sel].ravel(), pm[sel].ravel()), "pos_frac": float(pk[t == ty].mean()),
                   "pos_vs_good": auc(p_ty, gn), "n_pos": int(pk[t == ty].sum())}
    out["per"] = per
    return out

if __name__ == "__main__":
    configure_torch()
    tag, reg, data = sys.argv[1], sys.argv[2], sys.argv[3]
    model = sys.argv[5] if len(sys.argv) > 5 else "patchcore"
    res = {}
    for c in sys.argv[4].split(","):
        res[c] = run(reg, data, c, model)
        print(c, json.dumps(res[c], default=lambda x: round(x, 3)), flush=True)
    json.dump(res, open(f"/tmp/w/s18/pixdiag_{tag}_{model}.json", "w"), indent=1)
