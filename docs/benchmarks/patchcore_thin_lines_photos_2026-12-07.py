"""PatchCore at fine_weight 0 / 0.1 / 0.25 on the real texture photographs of benchmarks/photo_texture_check.py
(scikit-image brick, grass, gravel; draws 0 and 1). Run as: python THIS 0,0.1,0.25 (photos in /tmp/w/s17/skw/photos)."""
import sys, json
sys.path.insert(0, "/work/main"); sys.path.insert(0, "/work/main/benchmarks")
import numpy as np
import photo_texture_check as ptc
from qc_models.runtime import configure_torch
from pathlib import Path
ws = [float(w) for w in sys.argv[1].split(",")]
ptc.EMBEDDINGS = {f"fine {w}": {"fine_weight": w} for w in ws}
configure_torch()
folder = Path("/tmp/w/s17/skw/photos"); foreign = ptc.load_gray(folder / "camera.png")
runs = {}
for t in ptc.TEXTURES:
    for s in (0, 1):
        runs[f"{t}/{s}"] = r = ptc.one_draw(ptc.load_gray(folder / f"{t}.png"), foreign, s)
        print(t, s, {k: (round(v["image_auroc"], 3), round(v["pixel_auroc"], 3), {d: round(x, 3) for d, x in v["per_defect_image_auroc"].items()}) for k, v in r.items()}, flush=True)
for name in ptc.EMBEDDINGS:
    print(name, "mean image", round(np.mean([r[name]["image_auroc"] for r in runs.values()]), 3), "pixel", round(np.mean([r[name]["pixel_auroc"] for r in runs.values()]), 3), flush=True)
json.dump(runs, open("/tmp/w/s17/photo_fine.json", "w"), indent=1)
