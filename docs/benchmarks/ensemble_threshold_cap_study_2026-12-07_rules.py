# Record of the offline study behind docs/results.md "The ensemble's threshold never lies above a part that every
# member rejects" (2026-12-07, session 16). Not product code; /tmp/w paths are that session's work folders.
# Step 2 of 2: ensemble threshold rules on the cached z-scores. The product's fit_ensemble was also rerun on all
# 24 member sets with unet_epoch_choice_study_2026-12-07_ensemble.py (output path changed only).
"""Offline: ensemble calibration rules on cached member z-scores (cache.py), before/after U-Net."""
import json, sys, glob
import numpy as np
sys.path.insert(0, "/work/main")
from qc_models.detectors import ensemble as E
from qc_models.calibration import Calibrator, conservative_threshold
from qc_models.metrics import auroc

def ensemble_scores(a, unet, scale_rule="cap"):
    names = ["cae", unet, "patchcore"]
    aur = {m: E.synthetic_separation(a[f"{m}_good"], a[f"{m}_synth"], a["areas"]) for m in names}
    w = E.weights_from_auroc(aur)
    sc = {m: (min(1.0, E.THRESHOLD_Z_CAP / float(a[f"{m}_zthr"])) if float(a[f"{m}_zthr"]) > 0 else 1.0) for m in names}
    comb = lambda part: sum(w[m] * E.transform_scores(sc[m] * a[f"{m}_{part}"], E.SCORE_TRANSFORM) for m in names)
    out = {p: comb(p) for p in ("good", "synth", "test", "fresh")}
    out["unanimous"] = float(sum(w[m] * E.transform_scores(sc[m] * a[f"{m}_zthr"], E.SCORE_TRANSFORM) for m in names))
    return out, w, sc, aur

def thresholds(c):
    g, s = c["good"], c["synth"]
    out = {}
    r0 = Calibrator(0.01).fit(g, anomaly_max=float(s.max())).threshold
    out["R0 anomaly_max"] = r0
    for q in (0.5, 0.25):  # tried and rejected: fall back to the order statistic above a synthetic quantile
        out[f"R fallback<q{int(q*100)}"] = Calibrator(0.01).fit(g, anomaly_max=float(np.quantile(s, q))).threshold
    n = g.size; k = int(np.ceil((n + 1) * 0.99)); order = float(np.sort(g)[min(k, n) - 1])
    out["R unanimous clamp"] = max(order, min(r0, c["unanimous"]))
    out["R unanimous fallback"] = order if r0 > c["unanimous"] else r0
    return out

rows = {}
for f in sorted(glob.glob("/tmp/w/s16/c_*.npz")):
    a = dict(np.load(f)); y = a["y"]; name = f.split("c_")[1][:-4]
    for unet in ("unet", "unet_new"):
        c, w, sc, aur = ensemble_scores(a, unet)
        r = {"auroc": auroc(y, c["test"]), "best_member": max(auroc(y, a[f"{m}_test"]) for m in ("cae", unet, "patchcore")),
             "w": {k: round(v, 3) for k, v in w.items()}, "scale_unet": round(sc[unet], 3), "rules": {}}
        r["unanimous"] = c["unanimous"]
        for rule, t in thresholds(c).items():
            r["rules"][rule] = {"t": t, "recall": float(np.mean(c["test"][y == 1] > t)), "frr_test": float(np.mean(c["test"][y == 0] > t)),
                                "frr_fresh": float(np.mean(c["fresh"] > t)), "synth_rate": float(np.mean(c["synth"] > t))}
        rows[f"{name}/{unet}"] = r
json.dump(rows, open("/tmp/w/s16/rules.json", "w"), indent=1)
rules = list(next(iter(rows.values()))["rules"])
for rule in rules:
    print(f"== {rule}")
    for k, r in rows.items():
        x = r["rules"][rule]
        print(f"{k:26s} ens {r['auroc']:.3f} ({r['auroc']-r['best_member']:+.3f}) t {x['t']:7.3f} recall {x['recall']:.2f} frr {100*x['frr_test']:4.1f}/{100*x['frr_fresh']:4.1f}% synth {x['synth_rate']:.2f} w_u {r['w'].get('unet', r['w'].get('unet_new'))} s_u {r['scale_unet']} tu {r['unanimous']:.3f}")
    for unet in ("unet", "unet_new"):
        sel = [r["rules"][rule] for k, r in rows.items() if k.endswith("/" + unet)]
        if sel:
            print(f"  {unet}: mean recall {np.mean([x['recall'] for x in sel]):.3f} worst frr {100*max(x['frr_test'] for x in sel):.1f}/{100*max(x['frr_fresh'] for x in sel):.1f}% mean frr fresh {100*np.mean([x['frr_fresh'] for x in sel]):.2f}%")
