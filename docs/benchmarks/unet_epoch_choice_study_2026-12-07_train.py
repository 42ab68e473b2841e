# Record of the offline study behind docs/results.md "How the U-Net's epoch is chosen" (2026-12-07, session 15).
# Not product code; run with the tree of the commit that added it on sys.path. Step: train (train -> replay -> ensemble).
"""Offline study: which early-stopping signal picks the U-Net epoch best (validation data only)?

Trains the benchmark's U-Net for every planned epoch (no early stop, no clock), snapshots the weights
each epoch and records validation statistics; then replays early stopping (patience 30, 240 s of
training) for each candidate criterion and evaluates the chosen epochs on the test split and 300
fresh good images. The test split is only used to *report*, never to choose.
"""
import json, sys, time
import numpy as np
import torch
sys.path.insert(0, "/work/main")
from pathlib import Path
from sklearn.metrics import roc_auc_score
import qc_models.detectors.learned as learned
from qc_models.detectors import map_ops
from qc_models.detectors.unet import focal_dice_loss, UNetDetector
from qc_models.data.images import load_rgb
from qc_models.training import split_held_out, detector_kwargs, predict_in_batches
from qc_models.calibration import Calibrator
from qc_models.runtime import configure_torch, seed_everything
import torch.nn.functional as F

root, cat, seed, out = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
align = json.loads(sys.argv[5]) if len(sys.argv) > 5 else False
configure_torch()
train_paths = sorted((root / cat / "train/good").glob("*.png"))
images = [load_rgb(p) for p in train_paths]
fit_idx, cal_idx, stop_idx = split_held_out(len(images), seed)
held = [images[i] for i in np.concatenate([cal_idx, stop_idx])]
test_paths, labels = [], []
for d in sorted((root / cat / "test").iterdir()):
    for p in sorted(d.glob("*.png")):
        test_paths.append(p); labels.append(int(d.name != "good"))
labels = np.array(labels)
test = [load_rgb(p) for p in test_paths]
fresh = [load_rgb(p) for p in sorted(Path("/tmp/w/fresh", cat, "train/good").glob("*.png"))[:300]]

snaps, records, clock = [], [], {"train": 0.0, "t0": None}
orig = learned.train_with_early_stopping

def patched(net, opt, batches, loss, val_batches, epochs, patience, **kw):
    first, last = val_batches[0], val_batches[-1]
    acc = {"lg": [], "y": []}
    def wrapped(model, batch):
        if model.training or not val_batches:
            return loss(model, batch)
        if batch is first:
            clock["train"] += time.perf_counter() - clock["t0"]
            acc["lg"], acc["y"] = [], []
        x, y = batch
        lg = model(x)
        acc["lg"].append(lg); acc["y"].append(y)
        if batch is last:
            L, Y = torch.cat(acc["lg"]), torch.cat(acc["y"])
            bce = F.binary_cross_entropy_with_logits(L, Y, reduction="none")
            focal = float(((1 - torch.exp(-bce)) ** 2 * bce).mean())
            p = torch.sigmoid(L)
            gdice = 1 - float((2 * (p * Y).sum() + 1) / (p.sum() + Y.sum() + 1))
            mx = map_ops.top_fraction_score(map_ops.gaussian_blur(p, 1.0), 0.0).numpy()
            isbad = (Y.flatten(1).sum(1) > 0).numpy()
            records.append({"focal": focal, "gdice": gdice, "clean": mx[~isbad].tolist(), "bad": mx[isbad].tolist(),
                            "train_s": clock["train"]})
            snaps.append({k: v.detach().clone() for k, v in model.state_dict().items()})
            clock["t0"] = time.perf_counter()
        return focal_dice_loss(lg, y)
    clock["t0"] = time.perf_counter()
    kw["max_seconds"] = None
    res = orig(net, opt, batches, wrapped, val_batches, epochs, epochs + 1, **kw)
    return res

learned.train_with_early_stopping = patched
kw = detector_kwargs("unet", "default", 256, None, "none", "resnet18", seed)
kw["align"] = align
import os
kw["norm_batches"] = 0  # plain BatchNorm: the replay recomputes statistics itself
kw.update(json.loads(os.environ.get("QC_STUDY_KW", "{}")))
print("kwargs", kw, flush=True)
seed_everything(seed)
det = UNetDetector(**kw)
t0 = time.perf_counter()
det.fit([images[i] for i in fit_idx], validation_images=[images[i] for i in stop_idx])
print(f"{cat}: trained {len(snaps)} epochs in {time.perf_counter()-t0:.0f} s (training {clock['train']:.0f} s)", flush=True)
current = det.training_.val_losses

def evaluate(e):
    det.net_.load_state_dict(snaps[e - 1]); det.net_.eval()
    s_test, _ = predict_in_batches(det, test)
    s_cal, _ = predict_in_batches(det, held)
    s_fr, _ = predict_in_batches(det, fresh)
    cal = Calibrator(0.01, 1.0).fit(s_cal)
    good = labels == 0
    return {"epoch": e, "auroc": float(roc_auc_score(labels, s_test)), "frr_test": float(np.mean(s_test[good] > cal.threshold)),
            "frr_fresh": float(np.mean(s_fr > cal.threshold)), "recall": float(np.mean(s_test[~good] > cal.threshold)),
            "threshold": cal.threshold}

curve = {e: evaluate(e) for e in range(3, len(snaps) + 1, 3)} if os.environ.get("CURVE") else {}
json.dump({"cat": cat, "seed": seed, "current": current, "records": records, "curve": curve}, open(out, "w"))
torch.save(snaps, out.replace(".json", ".pt"))
print("saved", out, flush=True)
