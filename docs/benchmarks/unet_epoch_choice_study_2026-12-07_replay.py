# Record of the offline study behind docs/results.md "How the U-Net's epoch is chosen" (2026-12-07, session 15).
# Not product code; run with the tree of the commit that added it on sys.path. Step: replay (train -> replay -> ensemble).
"""Per category: the epoch each policy picks, evaluated exactly (report only; the test split never chooses).

plain_*: validation loss with BatchNorm running statistics as training left them (production today);
pbn_*:   BatchNorm statistics recomputed on 4 fixed training-like batches before each validation.
*_p30: patience 30 (production), *_full: best validation loss over the whole run, *_last: last epoch.
The 240 s training clock is replayed from the recorded training seconds.
"""
import json, os, sys
import numpy as np, torch
sys.path.insert(0, "/work/main")
from pathlib import Path
from sklearn.metrics import roc_auc_score
import qc_models.detectors.learned as learned
from qc_models.detectors.torch_training import evaluate_loss
from qc_models.detectors.unet import UNetDetector
from qc_models.data.images import load_rgb
from qc_models.training import split_held_out, detector_kwargs, predict_in_batches
from qc_models.calibration import Calibrator
from qc_models.runtime import configure_torch, seed_everything
root, cat, seed, stem, align = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4], json.loads(sys.argv[5])
configure_torch()
images = [load_rgb(p) for p in sorted((root / cat / "train/good").glob("*.png"))]
fit_idx, cal_idx, stop_idx = split_held_out(len(images), seed)
held = [images[i] for i in np.concatenate([cal_idx, stop_idx])]
test, labels = [], []
for d in sorted((root / cat / "test").iterdir()):
    for p in sorted(d.glob("*.png")):
        test.append(load_rgb(p)); labels.append(int(d.name != "good"))
labels = np.array(labels); good = labels == 0
fresh = [load_rgb(p) for p in sorted(Path("/tmp/w/fresh", cat, "train/good").glob("*.png"))[:300]]
cap = {}
orig = learned.train_with_early_stopping
def grab(net, opt, batches, loss, val_batches, ep, patience, **kw):
    cap["val"], cap["loss"], cap["batches"] = val_batches, loss, batches
    return orig(net, opt, batches, loss, val_batches, ep, patience, **kw)
learned.train_with_early_stopping = grab
real_rebn = learned.recompute_batchnorm
def grab_norm(model, batches):
    cap["norm"] = batches
    return real_rebn(model, batches)
learned.recompute_batchnorm = grab_norm
kw = detector_kwargs("unet", "default", 256, None, "none", "resnet18", seed); kw["align"] = align; kw["epochs"] = 1; kw["norm_batches"] = 4
seed_everything(seed); det = UNetDetector(**kw)
det.fit([images[i] for i in fit_idx], validation_images=[images[i] for i in stop_idx])
snaps = torch.load(stem + ".pt", weights_only=True)
rec = json.load(open(stem + ".json"))
secs = [r["train_s"] for r in rec["records"]]
net = det.net_
bn_batches = cap["norm"]  # exactly the production batches
bns = [m for m in net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]

def load(e, pbn):
    net.load_state_dict(snaps[e - 1])
    if pbn:
        for m in bns:
            m.reset_running_stats(); m.momentum = None
        net.train()
        with torch.no_grad():
            for x in bn_batches:
                net(x)
        for m in bns:
            m.momentum = 0.1
    net.eval()

def evaluate():
    s_test, _ = predict_in_batches(det, test); s_cal, _ = predict_in_batches(det, held); s_fr, _ = predict_in_batches(det, fresh)
    cal = Calibrator(0.01, 1.0).fit(s_cal)
    return {"auroc": float(roc_auc_score(labels, s_test)), "frr_test": float(np.mean(s_test[good] > cal.threshold) * 100),
            "frr_fresh": float(np.mean(s_fr > cal.threshold) * 100), "recall": float(np.mean(s_test[~good] > cal.threshold)),
            "threshold": float(cal.threshold)}

plain_vl = rec["current"]
pbn_vl = []
for e in range(1, len(snaps) + 1):
    load(e, True); pbn_vl.append(evaluate_loss(net, cap["val"], cap["loss"]))

def pick(vl, patience, clock=float(os.environ.get("CLOCK", "inf")), extra_per_epoch=0.0, late_tol=None):
    best, since, be = np.inf, 0, None
    stop = len(vl)
    for e, v in enumerate(vl, 1):
        if be is None or v < best * (1 - 1e-3):
            best, since, be = v, 0, e
        else:
            since += 1
        if since >= patience or secs[e - 1] + e * extra_per_epoch > clock:
            stop = e
            break
    if late_tol is not None:  # the latest epoch (up to the stop) within late_tol of the best loss
        be = max(e for e in range(1, stop + 1) if vl[e - 1] <= best * (1 + late_tol))
    return be, stop

out = {"cat": cat, "seed": seed, "plain_vl": plain_vl, "pbn_vl": pbn_vl, "policies": {}}
cache = {}
P = [("plain_p30", plain_vl, False, 30, None), ("plain_last", plain_vl, False, 10**6, 0.0 if False else None),
     ("pbn_p30", pbn_vl, True, 30, None), ("pbn_p60", pbn_vl, True, 60, None), ("pbn_full", pbn_vl, True, 10**6, None),
     ("pbn_p30_late5", pbn_vl, True, 30, 0.05), ("pbn_full_late5", pbn_vl, True, 10**6, 0.05),
     ("pbn_full_late10", pbn_vl, True, 10**6, 0.10), ("pbn_last", pbn_vl, True, 10**6, None)]
for name, vl, pbn, pat, tol in P:
    e, stop = pick(vl, pat, extra_per_epoch=0.1 if pbn else 0.0, late_tol=tol)
    if name.endswith("_last"):
        e = stop
    if (e, pbn) not in cache:
        load(e, pbn); cache[(e, pbn)] = evaluate()
    r = dict(cache[(e, pbn)], epoch=e, ran=stop)
    out["policies"][name] = r
    print(f"{stem.split('/')[-1]:16s} {name:15s} e{e:3d} (ran {stop:3d}) auroc {r['auroc']:.3f} frr {r['frr_test']:.1f}/{r['frr_fresh']:.1f}% recall {r['recall']:.2f}", flush=True)
json.dump(out, open(stem + "_policies2.json", "w"))
