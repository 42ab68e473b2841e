"""Do hold-out screws and capsules differ from good ones in outline? (session 20, measured and not kept)

Two rules on the product's own segmentation (`alignment.part_mask`) in the saved PatchCore's aligned frame:
`run_envelope`: the union / intersection of all good silhouettes, grown / shrunk by r px;
`run`: the XOR with the k most similar good silhouettes (by IoU), opened by r px.
Score = the largest connected blob of the excess; AUROC per defect type against the test goods.
Run: python part_silhouette_check_2026-12-07.py REGISTRY:DATA:screw,capsule   (output in the .txt beside it)
"""
import sys, glob
from pathlib import Path
import numpy as np, cv2
sys.path.insert(0, "/work/main")
from sklearn.metrics import roc_auc_score
from qc_models.registry.artifacts import load_model
from qc_models.data.images import load_rgb
from qc_models.detectors.alignment import part_mask

def disk(r):
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))

def run(reg, data, cat, size=256):
    vd = sorted(glob.glob(f"{reg}/{cat}/patchcore/*/"))[-1]
    pc = load_model(vd).detector
    al = pc.aligner_
    rs = lambda im: cv2.resize(im, (size, size), interpolation=cv2.INTER_AREA) if im.shape[0] != size else im
    train = [rs(load_rgb(p)) for p in sorted((Path(data) / cat / "train" / "good").glob("*.png"))]
    paths = sorted((Path(data) / cat / "test").glob("*/*.png"))
    types = np.array([p.parent.name for p in paths])
    test = [rs(load_rgb(p)) for p in paths]
    if al is not None:
        train, _ = al.align(train); test, _ = al.align(test)
    mtr = np.stack([part_mask(x) for x in train]).astype(np.float32)
    mte = np.stack([part_mask(x) for x in test]).astype(np.float32)
    A = mtr.reshape(len(mtr), -1); B = mte.reshape(len(mte), -1)
    inter = B @ A.T
    iou = inter / (B.sum(1)[:, None] + A.sum(1)[None] - inter)
    print(cat, "aligned", al is not None, "nn IoU good/defect median", np.median(iou.max(1)[types == "good"]), np.median(iou.max(1)[types != "good"]))
    for k in (1, 3):
        nn = np.argsort(-iou, 1)[:, :k]
        for r in (0, 1, 2, 3):
            blob = []
            for i in range(len(mte)):
                # pixel counts as anomalous only if it disagrees with all k nearest silhouettes
                x = mte[i].astype(bool)
                ref = mtr[nn[i]].astype(bool)
                out = x & ~ref.any(0)
                miss = ~x & ref.all(0)
                e = (out | miss).astype(np.uint8)
                if r:
                    e = cv2.morphologyEx(e, cv2.MORPH_OPEN, disk(r))
                n, lab, st, _ = cv2.connectedComponentsWithStats(e)
                blob.append(float(st[1:, cv2.CC_STAT_AREA].max()) if n > 1 else 0.0)
            blob = np.array(blob)
            res = {ty: round(roc_auc_score(types[(types == ty) | (types == "good")] != "good",
                                          blob[(types == ty) | (types == "good")]), 3) for ty in sorted(set(types) - {"good"})}
            g = blob[types == "good"]
            print(f"  k{k} open{r} AUROC {roc_auc_score(types != 'good', blob):.3f} {res} good p50/p90/max {np.percentile(g,50):.0f}/{np.percentile(g,90):.0f}/{g.max():.0f}", flush=True)
    # IoU itself as a score
    print("  1-maxIoU AUROC", round(roc_auc_score(types != "good", -iou.max(1)), 3))

def run_envelope(reg, data, cat, size=256):
    vd = sorted(glob.glob(f"{reg}/{cat}/patchcore/*/"))[-1]
    pc = load_model(vd).detector
    al = pc.aligner_
    assert al is not None, "not aligned"
    rs = lambda im: cv2.resize(im, (size, size), interpolation=cv2.INTER_AREA) if im.shape[0] != size else im
    train = [rs(load_rgb(p)) for p in sorted((Path(data) / cat / "train" / "good").glob("*.png"))]
    paths = sorted((Path(data) / cat / "test").glob("*/*.png"))
    types = np.array([p.parent.name for p in paths])
    test = [rs(load_rgb(p)) for p in paths]
    tr, _ = al.align(train)
    te, _ = al.align(test)
    mtr = np.stack([part_mask(x) for x in tr]).astype(np.uint8)
    mte = np.stack([part_mask(x) for x in te]).astype(np.uint8)
    n = len(mtr)
    print(cat, "train", n, "test", len(mte), "part area", mtr.sum((1, 2)).mean())
    for r in (1, 2, 3, 5):
        # cross-fitted envelopes for training parts: two halves
        union = cv2.dilate((mtr.max(0)), disk(r))
        inter = cv2.erode((mtr.min(0)), disk(r))
        out = mte * (1 - union)[None]
        miss = (1 - mte) * inter[None]
        for name, ex in (("out", out), ("miss", miss), ("both", out + miss)):
            # score: largest connected blob area of the excess
            sc_area = ex.reshape(len(ex), -1).sum(1).astype(float)
            blob = []
            for e in ex:
                k, lab, st, _ = cv2.connectedComponentsWithStats(e.astype(np.uint8))
                blob.append(float(st[1:, cv2.CC_STAT_AREA].max()) if k > 1 else 0.0)
            blob = np.array(blob)
            res = {}
            for ty in sorted(set(types) - {"good"}):
                sel = (types == ty) | (types == "good")
                res[ty] = round(roc_auc_score(types[sel] != "good", blob[sel]), 3)
            allauc = roc_auc_score(types != "good", blob)
            g = blob[types == "good"]
            print(f"  r{r} {name:4s} blob AUROC {allauc:.3f} per {res}  good blob p50/p90/max {np.percentile(g,50):.0f}/{np.percentile(g,90):.0f}/{g.max():.0f}", flush=True)

if __name__ == "__main__":
    for spec in sys.argv[1:]:
        reg, data, cats = spec.split(":")
        for c in cats.split(","):
            if c != "capsule":  # capsule is not aligned: no envelope frame
                run_envelope(reg, data, c)
            run(reg, data, c)
