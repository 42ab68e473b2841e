# Record of an offline check in docs/results.md, session 16 section (2026-12-07). Not product code; reads the
# z-scores cached by ensemble_threshold_cap_study_2026-12-07_cache.py (/tmp/w paths: that session's work folders).
import numpy as np, glob, sys
sys.path.insert(0, "/work/main")
from qc_models.detectors import ensemble as E
from qc_models.metrics import auroc
P = [8, 4, 2, 1, 0]
agg = {u: {p: [] for p in P} for u in ("unet", "unet_new")}
for f in sorted(glob.glob("/tmp/w/s16/c_*.npz")):
    a = dict(np.load(f)); y = a["y"]; name = f.split("c_")[1][:-4]
    for u in ("unet", "unet_new"):
        names = ["cae", u, "patchcore"]
        aur = {m: E.synthetic_separation(a[f"{m}_good"], a[f"{m}_synth"], a["areas"]) for m in names}
        sc = {m: min(1.0, E.THRESHOLD_Z_CAP / float(a[f"{m}_zthr"])) if float(a[f"{m}_zthr"]) > 0 else 1.0 for m in names}
        best = max(auroc(y, a[f"{m}_test"]) for m in names)
        w8 = E.weights_from_auroc(aur, 8)
        share = E.weight_spread({m: a[f"{m}_good"] for m in names}, {m: a[f"{m}_synth"] for m in names}, a["areas"], w8, seed=0)["top_share"]
        row = []
        for p in P:
            w = E.weights_from_auroc(aur, p) if p > 0 else {m: 1 / 3 for m in names}
            comb = sum(w[m] * E.transform_scores(sc[m] * a[f"{m}_test"], "knee_log") for m in names)
            g = auroc(y, comb) - best
            agg[u][p].append(g)
            row.append(f"p{p} {g:+.3f}")
        print(f"{name:13s} {u:8s} share {share:.2f}", " ".join(row))
for u in agg:
    print(u, " ".join(f"p{p}: mean gap {np.mean(v):+.4f} worst {min(v):+.3f}" for p, v in agg[u].items()))
