"""Offline: for aligned parts, thin-line channels = excess over the good parts' per-pixel line envelope (max over
aligned good images, dilated r px), pooled by mean ('avg') or max per patch; scaled by cross-fitted excess
(envelope of one half, excess of the other) whitened to fine_weight x network variance."""
import json, sys, glob, time
import numpy as np
import torch, torch.nn.functional as F
sys.path.insert(0, "/work/main")
from pathlib import Path
from sklearn.metrics import roc_auc_score
from qc_models.detectors.patchcore import PatchCore
from qc_models.detectors import patchcore as pcmod
from qc_models.detectors.base import images_to_tensor
from qc_models.detectors.map_ops import gaussian_blur
from qc_models.detectors.fine_structure import fine_sigma, line_strength as orig_line_strength
from qc_models.data.images import load_rgb, load_mask
from qc_models.runtime import configure_torch
from qc_models import metrics as M

def lines_of(x, sigma):
    grey = x.mean(dim=1, keepdim=True); d = grey - gaussian_blur(grey, sigma)
    return torch.cat([d, -d], 1)

def envelope(lines, r):
    k = 2 * r + 1
    return F.max_pool2d(lines.max(0, keepdim=True).values, k, 1, k // 2)

def pool(ex, grid, k, how):
    ex = F.adaptive_avg_pool2d(ex, grid) if how == "avg" else F.adaptive_max_pool2d(ex, grid)
    if k > 1:
        ex = F.max_pool2d(ex, k, stride=1, padding=k // 2)
    return ex.permute(0, 2, 3, 1)

class EnvPC(PatchCore):
    env_r = 1; how = "avg"; margin = False
    def _fit_pose(self, images):
        images = super()._fit_pose(images)
        self.env_ = None
        if self.align and self.fine_weight > 0:
            S = self.image_size; sig = fine_sigma(S)
            L = torch.cat([lines_of(images_to_tensor(images[i:i+16], S), sig) for i in range(0, len(images), 16)])
            grid = (S // 8, S // 8)
            a, b = L[0::2], L[1::2]
            xf = torch.cat([pool(torch.relu(b - envelope(a, self.env_r)), grid, self.neighbourhood, self.how),
                            pool(torch.relu(a - envelope(b, self.env_r)), grid, self.neighbourhood, self.how)])
            self.xfit_ = xf.reshape(-1, 2)
            self.env_ = envelope(L, self.env_r)
            if self.margin:
                ea, eb = torch.relu(b - envelope(a, self.env_r)), torch.relu(a - envelope(b, self.env_r))
                k = 2 * self.env_r + 1
                self.env_ = self.env_ + F.max_pool2d(torch.cat([ea, eb]).max(0, keepdim=True).values, k, 1, k // 2)
        return images

CUR = None
def patched_line_strength(x, grid, sigma, k):
    if getattr(CUR, "env_", None) is None:
        return orig_line_strength(x, grid, sigma, k)
    return pool(torch.relu(lines_of(x, sigma) - CUR.env_), grid, k, CUR.how)
pcmod.line_strength = patched_line_strength
orig_sw = pcmod.scaled_whitening
def patched_sw(x, target, shrink):
    if getattr(CUR, "env_", None) is not None and x.shape[1] == 2:
        return orig_sw(CUR.xfit_, target, shrink)
    return orig_sw(x, target, shrink)
pcmod.scaled_whitening = patched_sw

def run(reg, data, cat, variants):
    global CUR
    meta = json.load(open(sorted(glob.glob(f"{reg}/{cat}/patchcore/*/model.json"))[-1]))
    cfg = dict(meta["config"])
    train = [load_rgb(Path(data) / cat / "train/good" / f) for f in meta["training"]["fit_files"]]
    paths = sorted((Path(data) / cat / "test").glob("*/*.png"))
    test = [load_rgb(p) for p in paths]; t = np.array([p.parent.name for p in paths]); y = (t != "good").astype(int)
    masks = [np.zeros(test[0].shape[:2], bool) if p.parent.name == "good" else
             load_mask(Path(data) / cat / "ground_truth" / p.parent.name / (p.stem + "_mask.png")) for p in paths]
    out = {}
    for name, r, how, fw in variants:
        EnvPC.env_r, EnvPC.how, EnvPC.margin = r, how.split("+")[0], how.endswith("+m")
        cls = PatchCore if name == "base" else EnvPC
        t0 = time.time(); pc = cls(**{**cfg, "fine_weight": fw}); CUR = pc; pc.fit(train); fs = time.time() - t0
        t0 = time.time(); pred = pc.predict(test); ps = len(test) / (time.time() - t0)
        s = pred.image_scores
        pm, pk = M.resize_for_metrics(list(pred.anomaly_maps), masks)
        pix = roc_auc_score(pk.ravel(), pm.ravel())
        per = {str(k): round(roc_auc_score(np.r_[np.zeros((t == 'good').sum()), np.ones((t == k).sum())], np.r_[s[t == 'good'], s[t == k]]), 3) for k in sorted(set(t) - {'good'})}
        ppx = {str(k): round(roc_auc_score(pk[(t == k) | (t == "good")].ravel(), pm[(t == k) | (t == "good")].ravel()), 3) for k in sorted(set(t) - {"good"})}
        print("   pixel per type", ppx)
        out[name] = {"ppx": ppx, "image": roc_auc_score(y, s), "pixel": pix, "per": per, "fit_s": round(fs, 1), "img_s": round(ps, 1)}
        print(f"{cat:10s} {name:16s} image {out[name]['image']:.3f} pixel {pix:.3f} fit {fs:.1f}s {ps:.1f} img/s {per}", flush=True)
    return out

if __name__ == "__main__":
    configure_torch()
    variants = [("base", 0, "", 0.1)] + [(f"r{r}_{how}_w{w}", r, how, w) for r, how, w in json.loads(sys.argv[2])]
    res = {}
    for spec in sys.argv[1].split(","):
        tag, c = spec.split("/")
        res[spec] = run(f"/tmp/w/{tag}/models", f"/tmp/w/{tag}/data", c, variants)
        json.dump(res, open(f"/tmp/w/s18/env2_{sys.argv[3]}.json", "w"), indent=1)
