# Record of an offline check in docs/results.md, session 16 section (2026-12-07). Not product code;
# /tmp/w paths are that session's work folders (the benchmark registries and 300 fresh goods per category).
"""Offline: U-Net image score as the mean of the top fraction of its smoothed probability map instead of its maximum."""
import json, sys
import numpy as np, torch
sys.path.insert(0, "/work/main")
from pathlib import Path
from qc_models.registry import load_model_set
from qc_models.data.images import load_rgb
from qc_models.detectors import map_ops
from qc_models.calibration import Calibrator
from qc_models.metrics import auroc
from qc_models.runtime import configure_torch
configure_torch()
FR = [0.0, 0.0005, 0.001, 0.002, 0.005, 0.01]
res = {}
for reg, cats in [("s0", "carpet wood bottle metal_nut"), ("s1", "carpet wood bottle metal_nut"), ("hob", "tile leather screw capsule")]:
    root = Path(f"/tmp/w/{reg}/data")
    for cat in cats.split():
        det = load_model_set(f"/tmp/w/{reg}/models", cat).members["unet"]
        m = det.detector
        files = det.metadata["training"]["calibration_files"]
        def scores(images):
            out = {f: [] for f in FR}
            for s in range(0, len(images), 32):
                imgs, _ = m._pose_inputs(images[s:s + 32])
                maps = m.anomaly_maps_internal(imgs)
                for f in FR:
                    out[f].append(map_ops.top_fraction_score(maps, f).numpy())
            return {f: np.concatenate(v) for f, v in out.items()}
        held = scores([load_rgb(root / cat / "train/good" / f) for f in files])
        tp = sorted((root / cat / "test").glob("*/*.png")); y = np.array([p.parent.name != "good" for p in tp])
        test = scores([load_rgb(p) for p in tp])
        fresh = scores([load_rgb(p) for p in sorted(Path("/tmp/w/fresh", cat, "train/good").glob("*.png"))[:300]])
        row = {}
        for f in FR:
            cal = Calibrator(0.01, 1.0).fit(held[f])
            row[str(f)] = {"auroc": auroc(y.astype(int), test[f]), "recall": float(np.mean(cal.decide(test[f][y]))),
                           "frr_test": float(np.mean(cal.decide(test[f][~y]))), "frr_fresh": float(np.mean(cal.decide(fresh[f]))),
                           "fallback": bool(cal.stats_.get("beyond_score_range"))}
        res[f"{reg}/{cat}"] = row
        print(f"{reg}/{cat:10s}", " | ".join(f"{f}: {v['auroc']:.3f} r{v['recall']:.2f} {100*v['frr_test']:.1f}/{100*v['frr_fresh']:.1f}{'*' if v['fallback'] else ''}" for f, v in row.items()), flush=True)
json.dump(res, open("/tmp/w/s16/frac.json", "w"))
for f in FR:
    v = [r[str(f)] for r in res.values()]
    demo = [r[str(f)]["auroc"] for k, r in res.items() if not k.startswith("hob")]
    print(f, "mean AUROC demo %.3f hold %.3f min demo %.3f | worst frr %.1f/%.1f | mean recall %.3f" % (np.mean(demo), np.mean([r[str(f)]["auroc"] for k, r in res.items() if k.startswith("hob")]), min(demo), 100*max(x["frr_test"] for x in v), 100*max(x["frr_fresh"] for x in v), np.mean([x["recall"] for x in v])))
