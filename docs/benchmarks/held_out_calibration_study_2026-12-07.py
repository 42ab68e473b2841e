"""Record of the offline study behind docs/results.md "Calibrating on the early-stopping images too" (2026-12-07).

Not product code: run once on registries trained before that change (whose PatchCore still fitted on
the early-stopping images), with ``sys.path`` pointing at a tree from before it (it calls
``split_train_val`` to find the early-stopping images). Usage:
``python held_out_calibration_study_2026-12-07.py TAG DATA_ROOT MODELS_DIR cat1,cat2``.
"""
import json, sys, time, numpy as np
from dataclasses import dataclass
from pathlib import Path
sys.path.insert(0, "/work/main")  # a tree from before the change
from qc_models.registry import load_model_set, detector_class
from qc_models.data.images import load_rgb
from qc_models.detectors.torch_training import split_train_val
from qc_models.detectors.ensemble import fit_ensemble
from qc_models.calibration import Calibrator
from qc_models.training import predict_in_batches
from qc_models.metrics import auroc
from qc_models.runtime import configure_torch, seed_everything
configure_torch()

@dataclass
class M:
    detector: object
    calibrator: Calibrator

draw, root, models, cats = sys.argv[1], Path(sys.argv[2]), sys.argv[3], sys.argv[4].split(",")
out = {}
for cat in cats:
    t0 = time.time()
    mset = load_model_set(models, cat)
    tr = mset.members["cae"].metadata["training"]
    good = root / cat / "train/good"
    fit_files, cal_files = tr["fit_files"], tr["calibration_files"]
    _, stop_idx = split_train_val(len(fit_files), mset.members["cae"].detector.val_fraction, mset.members["cae"].detector.seed)
    stop_set = {fit_files[i] for i in stop_idx}
    cal = [load_rgb(good / f) for f in cal_files]; stop = [load_rgb(good / fit_files[i]) for i in stop_idx]
    test_paths = sorted((root / cat / "test").glob("*/*.png")); y = np.array([p.parent.name != "good" for p in test_paths], int)
    test = [load_rgb(p) for p in test_paths]
    fresh_dir = Path(f"/tmp/w/fresh/{cat}/train/good")
    fresh = [load_rgb(p) for p in sorted(fresh_dir.glob("*.png"))] if fresh_dir.is_dir() else []
    pc_old = mset.members["patchcore"].detector
    seed_everything(tr["seed"])
    pc_new = detector_class("patchcore")(**pc_old.get_config()).fit([load_rgb(good / f) for f in fit_files if f not in stop_set])
    res = {}
    raw = {}
    for name, det in (("cae", mset.members["cae"].detector), ("unet", mset.members["unet"].detector), ("pc_old", pc_old), ("pc_new", pc_new)):
        r = {}
        for tag, imgs in (("cal", cal), ("stop", stop), ("test", test), ("fresh", fresh)):
            if imgs:
                s, maps = predict_in_batches(det, imgs)
                r[tag] = (s, maps if tag in ("cal", "stop") else None)
        raw[name] = r
    def calib(name, ub, with_stop):
        r = raw[name]
        s = np.r_[r["cal"][0], r["stop"][0]] if with_stop else r["cal"][0]
        maps = r["cal"][1] + r["stop"][1] if with_stop else r["cal"][1]
        return Calibrator(0.01, ub).fit(s, maps)
    variants = {
        "cur": ({"cae": ("cae", False), "unet": ("unet", False), "patchcore": ("pc_old", False)}, cal),
        "A": ({"cae": ("cae", True), "unet": ("unet", True), "patchcore": ("pc_old", False)}, cal),
        "B": ({"cae": ("cae", True), "unet": ("unet", True), "patchcore": ("pc_new", True)}, cal + stop),
    }
    for vname, (spec, ens_imgs) in variants.items():
        members = {}
        for k, (src, ws) in spec.items():
            det = mset.members[k].detector if src != "pc_new" else pc_new
            members[k] = M(det, calib(src, det.score_upper_bound, ws))
        ens, ecal = fit_ensemble(members, ens_imgs, seed=tr["seed"])
        row = {"weights": ens.weights, "top_share": ens.details["weight_spread"].get("top_share")}
        zs = {t: {} for t in ("test", "fresh")}
        for k, (src, _) in spec.items():
            c = members[k].calibrator
            for t in zs:
                if t in raw[src]:
                    s = raw[src][t][0]; zs[t][k] = c.standardise(s)
                    if t == "test":
                        row[k] = {"auroc": auroc(y, s), "frr_test": float(np.mean(c.decide(s[y == 0]))), "recall": float(np.mean(c.decide(s[y == 1])))}
                    else:
                        row[k]["frr_fresh"] = float(np.mean(c.decide(s)))
        et = ens.combine_scores(zs["test"])
        row["ensemble"] = {"auroc": auroc(y, et), "frr_test": float(np.mean(ecal.decide(et[y == 0]))), "recall": float(np.mean(ecal.decide(et[y == 1])))}
        if fresh:
            row["ensemble"]["frr_fresh"] = float(np.mean(ecal.decide(ens.combine_scores(zs["fresh"]))))
        res[vname] = row
        print(draw, cat, vname, json.dumps({k: ({kk: round(vv, 3) for kk, vv in v.items() if vv is not None} if isinstance(v, dict) and k != "weights" else v) for k, v in row.items()}), flush=True)
    out[cat] = res
    print(f"{cat} {time.time()-t0:.0f}s", flush=True)
    json.dump(out, open(f"/tmp/w/frr/study_b_{draw}.json", "w"), indent=1, default=float)
