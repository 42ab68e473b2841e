"""PatchCore anomaly maps with a grey closing of the patch grid (session 20): pixel AUROC / AUPRO per variant.

Run: python patchcore_map_closing_2026-12-07.py OUT.json REGISTRY:DATA:cat1,cat2 ...
"""
import importlib.util, json, sys, glob
from pathlib import Path
import numpy as np, torch.nn.functional as F
sys.path.insert(0, "/work/main")
from qc_models.registry.artifacts import load_model
from qc_models.data.images import load_rgb, load_mask
from qc_models.runtime import configure_torch
from qc_models import metrics as M

# the grid extraction and map rebuilding of session 19's study, unchanged
_spec = importlib.util.spec_from_file_location(
    "postprocessing", Path(__file__).with_name("patchcore_map_postprocessing_2026-12-07.py"))
_post = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_post)
grids, erode, maps_of = _post.grids, _post.erode, _post.maps_of

def dilate(g, k):
    return F.max_pool2d(F.pad(g, (k // 2,) * 4, mode="replicate"), k, stride=1)

def close(g, k):
    return erode(dilate(g, k), k)

VARIANTS = {
    "base": lambda g: g,
    "close3": lambda g: close(g, 3),
    "close5": lambda g: close(g, 5),
    "close9": lambda g: close(g, 9),
}

def run(reg, data, cat):
    vd = sorted(glob.glob(f"{reg}/{cat}/patchcore/*/"))[-1]
    pc = load_model(vd).detector
    paths = sorted((Path(data) / cat / "test").glob("*/*.png"))
    t = np.array([p.parent.name for p in paths])
    test = [load_rgb(p) for p in paths]
    masks = [None if p.parent.name == "good" else
             load_mask(Path(data) / cat / "ground_truth" / p.parent.name / (p.stem + "_mask.png")) for p in paths]
    g, imgs, poses = grids(pc, test)
    res = {}
    print(cat, "grid", tuple(g.shape), flush=True)
    specs = [(n, f, 4.0, "bilinear") for n, f in VARIANTS.items()]
    for name, f, s, mode in specs:
        pm, pk = M.resize_for_metrics(maps_of(pc, g, imgs, poses, f, s, mode), masks)
        r = {"pixel": M.pixel_auroc(pk, pm), "aupro": M.aupro(pk, pm)}
        per = {}
        for ty in sorted(set(t) - {"good"}):
            sel = (t == ty) | (t == "good")
            per[ty] = round(M.pixel_auroc(pk[sel], pm[sel]), 3)
        r["per"] = per
        res[name] = r
        print(f"{cat:9s} {name:13s} pixel {r['pixel']:.4f} aupro {r['aupro']:.3f} {per}", flush=True)
    return res

if __name__ == "__main__":
    configure_torch()
    out = {}
    for spec in sys.argv[2:]:
        reg, data, cats = spec.split(":")
        for c in cats.split(","):
            out[f"{reg}:{c}"] = run(reg, data, c)
    json.dump(out, open(sys.argv[1], "w"), indent=1)
