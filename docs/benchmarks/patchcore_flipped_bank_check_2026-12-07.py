"""PatchCore memory bank from the fit images plus their flips (textures): image / pixel AUROC (session 20).

Run: python patchcore_flipped_bank_check_2026-12-07.py none|h|hv TAG:CATEGORY ...  (registry /tmp/w/TAG/{data,models})
"""
import json, sys, time
import numpy as np
sys.path.insert(0, "/work/main")
from pathlib import Path
from qc_models.detectors.patchcore import PatchCore
from qc_models.registry import load_model_set
from qc_models.data.images import load_rgb, load_mask
from qc_models import metrics as M
from qc_models.runtime import configure_torch, seed_everything
configure_torch()
mode = sys.argv[1]; res = {}
for spec in sys.argv[2:]:
    tag, cat = spec.split(":")
    root = Path(f"/tmp/w/{tag}/data"); saved = load_model_set(f"/tmp/w/{tag}/models", cat).members["patchcore"]; tr = saved.metadata["training"]
    cfg = saved.detector.get_config()
    fit = [load_rgb(root / cat / "train/good" / f) for f in tr["fit_files"]]
    if mode in ("h", "hv"):
        fit = fit + [np.ascontiguousarray(x[:, ::-1]) for x in fit[: len(fit)]]
    if mode == "hv":
        fit = fit + [np.ascontiguousarray(x[::-1]) for x in fit[: len(fit) // 2]]
    tp = sorted((root / cat / "test").glob("*/*.png")); t = np.array([p.parent.name for p in tp]); y = t != "good"
    masks = [None if p.parent.name == "good" else load_mask(root / cat / "ground_truth" / p.parent.name / (p.stem + "_mask.png")) for p in tp]
    t0 = time.time(); seed_everything(tr["seed"]); pc = PatchCore(**cfg).fit(fit); fs = time.time() - t0
    pr = pc.predict([load_rgb(p) for p in tp])
    pm, pk = M.resize_for_metrics(pr.anomaly_maps, masks)
    per = {k: round(M.pixel_auroc(pk[(t == k) | (t == "good")], pm[(t == k) | (t == "good")]), 3) for k in sorted(set(t) - {"good"})}
    res[spec] = {"image": M.auroc(y, pr.image_scores), "pixel": M.pixel_auroc(pk, pm), "pixel_per": per, "fit_s": fs, "n_fit": len(fit)}
    print(spec, mode, len(fit), f"fit {fs:.1f}s", round(res[spec]["image"], 3), round(res[spec]["pixel"], 3), per, flush=True)
json.dump(res, open(f"flipbank_{mode}.json", "w"), indent=1)
