"""Prototype: long-line channels (oriented line integrals of the detail map) appended to PatchCore's embedding."""
import json, sys, time, math
import numpy as np, torch, torch.nn.functional as F
sys.path.insert(0, "/work/main")
from pathlib import Path
from qc_models.detectors.patchcore import PatchCore, _batches
from qc_models.detectors import patchcore as pcm
from qc_models.detectors.map_ops import gaussian_blur
from qc_models.detectors.colour import scaled_whitening
from qc_models.registry import load_model_set
from qc_models.data.images import load_rgb
from qc_models.metrics import auroc
from qc_models.runtime import configure_torch, seed_everything

def line_kernels(k, n):
    c = k // 2
    yy, xx = torch.meshgrid(torch.arange(k) - c, torch.arange(k) - c, indexing="ij")
    ks = []
    for i in range(n):
        t = math.pi * i / n
        d = (-xx * math.sin(t) + yy * math.cos(t)).abs().float()   # distance from the line through the centre
        along = (xx * math.cos(t) + yy * math.sin(t)).abs().float()
        w = torch.clamp(1 - d, min=0) * (along <= c).float()
        ks.append(w / w.sum())
    return torch.stack(ks)[:, None]

def long_lines(x, grid, sigma, k, n, nb, down=2):
    grey = x.mean(dim=1, keepdim=True)
    d = grey - gaussian_blur(grey, sigma)
    if down > 1:
        d = F.avg_pool2d(d, down)
    r = F.conv2d(F.pad(d, (k // 2,) * 4, mode="reflect"), line_kernels(k, n).to(d))
    m = r.mean(dim=1, keepdim=True)
    ch = torch.cat([r.amax(1, keepdim=True) - m, m - r.amin(1, keepdim=True)], dim=1)
    ch = F.adaptive_max_pool2d(ch, grid)
    if nb > 1:
        ch = F.max_pool2d(ch, nb, stride=1, padding=nb // 2)
    return ch.permute(0, 2, 3, 1)

class LL(PatchCore):
    LW, K, N, SIG = 0.1, 15, 8, 2.0
    ll_T = None
    def _ll(self, images):
        x = pcm.images_to_tensor(images, self.image_size)
        grid = (self.image_size // 8, self.image_size // 8)
        return long_lines(x, grid, self.SIG * self.image_size / 256, self.K, self.N, self.neighbourhood)
    def _embed(self, images):
        emb = super()._embed(images)
        if self.LW <= 0 or self.ll_T is None:
            return emb
        ll = self._ll(images) @ self.ll_T
        return torch.cat([emb, ll], dim=-1).contiguous()
    def fit(self, images, progress=None):
        self.ll_T = None
        if self.LW > 0:
            ims = self._fit_pose(images) if self.align else images
            self._ensure_backbone()
            net, ll = [], []
            for b in _batches(ims, self.batch_size):
                e = PatchCore._embed(self, b); net.append(e[..., : self.network_dim].reshape(-1, self.network_dim))
                ll.append(self._ll(b).reshape(-1, 2))
            net_var = float(torch.cat(net).var(dim=0).sum())
            self.ll_T = scaled_whitening(torch.cat(ll), self.LW * net_var, self.colour_shrinkage)
        return super().fit(images, progress)

if __name__ == "__main__":
    configure_torch()
    tag, cats, variants = sys.argv[1], sys.argv[2].split(","), json.loads(sys.argv[3])
    root, models = Path(f"/tmp/w/{tag}/data"), f"/tmp/w/{tag}/models"
    res = {}
    for cat in cats:
        mset = load_model_set(models, cat); saved = mset.members["patchcore"]; tr = saved.metadata["training"]
        cfg = {k: v for k, v in saved.detector.get_config().items() if k not in ("fine_weight",)}
        fit = [load_rgb(root / cat / "train/good" / f) for f in tr["fit_files"]]
        tp = sorted((root / cat / "test").glob("*/*.png")); t = np.array([p.parent.name for p in tp]); y = (t != "good").astype(int)
        test = [load_rgb(p) for p in tp]
        for v in variants:
            LL.LW, LL.K, LL.N, LL.SIG = v
            seed_everything(tr["seed"]); t0 = time.time(); pc = LL(**cfg).fit(fit); fs = time.time() - t0
            s = pc.predict(test).image_scores
            per = {k: round(auroc(np.r_[np.zeros((t == "good").sum()), np.ones((t == k).sum())], np.r_[s[t == "good"], s[t == k]]), 3) for k in sorted(set(t) - {"good"})}
            res[f"{tag}:{cat}:{v}"] = {"image": auroc(y, s), "per": per}
            print(f"{tag}/{cat:9s} {str(v):22s} image {auroc(y, s):.3f} fit {fs:.1f}s {per}", flush=True)
    json.dump(res, open(f"/tmp/w/s19/ll_{tag}_{cats[0]}.json", "w"), indent=1)
# --- raw-channel diagnosis (lldiag.py) ---
# import sys, numpy as np, torch
# sys.path.insert(0, "/tmp/w/s19"); sys.path.insert(0, "/work/main")
# from longline import long_lines
# from pathlib import Path
# from qc_models.data.images import load_rgb
# from qc_models.detectors.patchcore import images_to_tensor
# from qc_models.metrics import auroc
# import json
# res = {}
# cat = sys.argv[1]; root = Path("/tmp/w/hob/data") if cat in ("tile","leather","screw","capsule") else Path("/tmp/w/s0/data")
# tp = sorted((root / cat / "test").glob("*/*.png")); t = np.array([p.parent.name for p in tp])
# x = images_to_tensor([load_rgb(p) for p in tp], 256)
# for sig in (1.0, 2.0, 4.0):
#     for k in (15, 31):
#         ll = torch.cat([long_lines(x[i:i+32], (32, 32), sig, k, 8, 1) for i in range(0, len(x), 32)])
#         s = ll.amax(dim=(1, 2)).numpy()  # (N, 2)
#         out = []
#         for ty in sorted(set(t) - {"good"}):
#             sel = (t == ty) | (t == "good")
#             out.append(f"{ty}: {auroc(t[sel] != 'good', s[sel, 0]):.2f}/{auroc(t[sel] != 'good', s[sel, 1]):.2f}")
#         print(cat, sig, k, "  ".join(out), flush=True); res[f"sigma{sig}_len{k}"] = out
# 
# json.dump(res, open(f"/tmp/w/s19/lldiag_{cat}.json", "w"), indent=1)
