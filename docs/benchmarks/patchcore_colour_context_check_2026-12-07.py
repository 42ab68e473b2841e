import json, sys
import numpy as np
sys.path.insert(0, "/work/main")
from pathlib import Path
from qc_models.detectors.patchcore import PatchCore
from qc_models.registry import load_model_set
from qc_models.data.images import load_rgb, load_mask
from qc_models import metrics as M
from qc_models.runtime import configure_torch, seed_everything
configure_torch()
over = json.loads(sys.argv[1]); res = {}
for spec in sys.argv[2:]:
    tag, cat = spec.split(":")
    root = Path(f"/tmp/w/{tag}/data"); saved = load_model_set(f"/tmp/w/{tag}/models", cat).members["patchcore"]; tr = saved.metadata["training"]
    cfg = {k: v for k, v in saved.detector.get_config().items() if k != "fine_weight"}; cfg.update(over)
    fit = [load_rgb(root / cat / "train/good" / f) for f in tr["fit_files"]]
    tp = sorted((root / cat / "test").glob("*/*.png")); t = np.array([p.parent.name for p in tp]); y = t != "good"
    masks = [None if p.parent.name == "good" else load_mask(root / cat / "ground_truth" / p.parent.name / (p.stem + "_mask.png")) for p in tp]
    seed_everything(tr["seed"]); pc = PatchCore(**cfg).fit(fit)
    pr = pc.predict([load_rgb(p) for p in tp])
    pm, pk = M.resize_for_metrics(pr.anomaly_maps, masks)
    per = {k: round(M.pixel_auroc(pk[(t == k) | (t == "good")], pm[(t == k) | (t == "good")]), 3) for k in sorted(set(t) - {"good"})}
    res[spec] = {"image": M.auroc(y, pr.image_scores), "pixel": M.pixel_auroc(pk, pm), "pixel_per": per}
    print(spec, over, round(res[spec]["image"], 3), round(res[spec]["pixel"], 3), per, flush=True)
json.dump(res, open(f"/tmp/w/s19/ctx_{list(over.values())[0] if over else 'base'}.json", "w"), indent=1)
