"""Saved U-Nets scored with flip test-time augmentation (probabilities averaged over flips), no retraining."""
import json, sys
import numpy as np, torch
sys.path.insert(0, "/work/main")
from pathlib import Path
from qc_models.registry import load_model_set
from qc_models.data.images import load_rgb
from qc_models.detectors import map_ops
from qc_models.detectors.base import images_to_tensor
from qc_models.metrics import auroc
from qc_models.runtime import configure_torch
configure_torch()
res = {}
for spec in sys.argv[1:]:
    tag, cat = spec.split(":")
    root = Path(f"/tmp/w/{tag}/data"); m = load_model_set(f"/tmp/w/{tag}/models", cat).members["unet"]; d = m.detector
    tp = sorted((root / cat / "test").glob("*/*.png")); t = np.array([p.parent.name for p in tp]); y = t != "good"
    x = images_to_tensor([load_rgb(p) for p in tp], d.image_size, normalize=True)
    def probs(flip):
        with torch.no_grad():
            out = []
            for s in range(0, len(x), 32):
                xb = x[s:s + 32]
                xb = xb.flip(flip) if flip else xb
                p = torch.sigmoid(d.net_(xb))
                out.append(p.flip(flip) if flip else p)
            return torch.cat(out)
    P = {name: probs(f) for name, f in [("id", None), ("h", [-1]), ("v", [-2]), ("hv", [-1, -2])]}
    out = {}
    for name, keys in [("plain", ["id"]), ("h", ["h"]), ("tta2", ["id", "h"]), ("tta4", ["id", "h", "v", "hv"])]:
        pm = torch.stack([P[k] for k in keys]).mean(0)
        s = map_ops.gaussian_blur(pm, d.smoothing_sigma).amax(dim=(-2, -1)).numpy()
        out[name] = auroc(y, s)
    res[spec] = out
    print(spec, {k: round(v, 3) for k, v in out.items()}, "flips trained:", d.flips_, flush=True)
json.dump(res, open("/tmp/w/s19/unet_tta.json", "w"), indent=1)
