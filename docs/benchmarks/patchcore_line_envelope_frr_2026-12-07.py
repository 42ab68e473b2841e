"""PatchCore (product code) variants on aligned categories: image AUROC, per type, test-good and 300-fresh-good FRR
at the calibrated threshold (Calibrator on the held-out images, as training does)."""
import json, sys, time
import numpy as np, torch, torch.nn.functional as F
sys.path.insert(0, "/work/main")
from pathlib import Path
from qc_models.detectors import patchcore as pcmod
from qc_models.detectors import fine_structure as fsm
from qc_models.detectors.patchcore import PatchCore
from qc_models.registry import load_model_set
from qc_models.data.images import load_rgb
from qc_models.calibration import Calibrator
from qc_models.metrics import auroc
from qc_models.runtime import configure_torch, seed_everything
configure_torch()
MARGIN = [0.0]
BAND = [None]
DEAD = [0.0]
class MarginEnvelope(fsm.LineEnvelope):
    def fit(self, batches):
        batches = list(batches); super().fit(batches)
        if MARGIN[0] > 0:
            other = [fsm._dilate(self._halves[1], self.radius), fsm._dilate(self._halves[0], self.radius)]
            m, idx = None, 0
            for x in batches:
                L = fsm.line_maps(x, self.sigma)
                for i in range(len(x)):
                    e = torch.relu(L[i:i+1] - other[(idx + i) % 2]); m = e if m is None else torch.maximum(m, e)
                idx += len(x)
            self.envelope_ = self.envelope_ + MARGIN[0] * fsm._dilate(m, self.radius)
        if DEAD[0]:
            self.envelope_ = self.envelope_ + DEAD[0]
        if BAND[0] is not None:
            q, rb = BAND[0]
            med = torch.cat(batches).median(dim=0, keepdim=True).values
            d = fsm.line_maps(med, self.sigma).abs().amax(1, keepdim=True)
            band = fsm._dilate((d > torch.quantile(d.flatten(), q)).float(), rb) > 0
            self.envelope_ = torch.where(band, torch.full_like(self.envelope_, 1e3), self.envelope_)
            print("   band share", round(float(band.float().mean()), 3))
        return self
pcmod.LineEnvelope = MarginEnvelope
RATIO = [None]
orig_excess = fsm.line_excess
def ratio_excess(x, envelope, grid, sigma, k):
    if RATIO[0] is None:
        return orig_excess(x, envelope, grid, sigma, k)
    c = RATIO[0] * float(envelope.median())
    ex = torch.relu(fsm.line_maps(x, sigma) - envelope) / (envelope + c)
    return fsm._neighbourhood_max(F.adaptive_avg_pool2d(ex, grid), k)
fsm.line_excess = ratio_excess; pcmod.line_excess = ratio_excess
def run(tag, cat, variants):
    root, models = Path(f"/tmp/w/{tag}/data"), f"/tmp/w/{tag}/models"
    mset = load_model_set(models, cat); saved = mset.members["patchcore"]; tr = saved.metadata["training"]
    cfg = {k: v for k, v in saved.detector.get_config().items() if k != "fine_weight"}
    fit = [load_rgb(root / cat / "train/good" / f) for f in tr["fit_files"]]
    held = [load_rgb(root / cat / "train/good" / f) for f in sorted(tr["calibration_files"])]
    tp = sorted((root / cat / "test").glob("*/*.png")); t = np.array([p.parent.name for p in tp]); y = (t != "good").astype(int)
    test = [load_rgb(p) for p in tp]
    fresh = [load_rgb(p) for p in sorted(Path("/tmp/w/fresh", cat, "train/good").glob("*.png"))[:300]]
    out = {}
    for name, w, r, sig, *mg in variants:
        MARGIN[0] = mg[0] if mg else 0.0
        RATIO[0] = mg[1] if len(mg) > 1 else None
        BAND[0] = mg[2] if len(mg) > 2 else None
        DEAD[0] = mg[3] if len(mg) > 3 else 0.0
        pcmod.envelope_radius = lambda size, r=r: max(1, round(r * size / 256)) if r else fsm.envelope_radius(size)
        pcmod.fine_sigma = lambda size, sig=sig: sig * size / 256
        seed_everything(tr["seed"]); t0 = time.time(); pc = PatchCore(**cfg, fine_weight=w).fit(fit); fs = time.time() - t0
        cal = Calibrator(0.01, pc.score_upper_bound).fit(*pc.predict(held)[:2]) if False else None
        hp = pc.predict(held); cal = Calibrator(0.01, pc.score_upper_bound).fit(hp.image_scores, hp.anomaly_maps)
        s = pc.predict(test).image_scores; f = pc.predict(fresh).image_scores
        per = {k: round(auroc(np.r_[np.zeros((t == "good").sum()), np.ones((t == k).sum())], np.r_[s[t == "good"], s[t == k]]), 3) for k in sorted(set(t) - {"good"})}
        o = {"image": auroc(y, s), "per": per, "frr_test": float(np.mean(cal.decide(s[y == 0]))), "frr_fresh": float(np.mean(cal.decide(f))),
             "recall": float(np.mean(cal.decide(s[y == 1]))), "fit_s": round(fs, 1)}
        out[name] = o
        np.savez(f"/tmp/w/s18/scores_{tag}_{cat}_{name}.npz", held=hp.image_scores, test=s, y=y, fresh=f, ub=np.array(pc.score_upper_bound or np.nan))
        print(f"{tag}/{cat:9s} {name:12s} image {o['image']:.3f} recall {o['recall']:.2f} frr test {100*o['frr_test']:.1f} fresh {100*o['frr_fresh']:.1f} {per}", flush=True)
    return out
if __name__ == "__main__":
    variants = [tuple(v) for v in json.loads(sys.argv[2])]
    res = {}
    for spec in sys.argv[1].split(","):
        tag, c = spec.split("/"); res[spec] = run(tag, c, variants)
        json.dump(res, open(f"/tmp/w/s18/pcfrr_{sys.argv[3]}.json", "w"), indent=1)
