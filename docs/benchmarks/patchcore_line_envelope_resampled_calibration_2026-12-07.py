import numpy as np, sys
sys.path.insert(0, "/work/main")
from qc_models.calibration import Calibrator
for tag in ["s0", "s1"]:
    for v in ["w0", "r1w.01"]:
        d = np.load(f"/tmp/w/s18/scores_{tag}_metal_nut_{v}.npz")
        pool = np.r_[d["held"], d["fresh"], d["test"][d["y"] == 0]]  # all good images scored by this model (none fitted on)
        rng = np.random.default_rng(0); frr = []
        for _ in range(400):
            idx = rng.permutation(len(pool)); cal, rest = pool[idx[:33]], pool[idx[33:]]
            c = Calibrator(0.01, None).fit(cal, None) if True else None
            frr.append(np.mean(c.decide(rest)))
        frr = np.array(frr)
        print(tag, v, "n good", len(pool), "mean FRR %.2f%%, P(FRR>5%%) %.2f, 90th pct %.1f%%" % (100 * frr.mean(), (frr > .05).mean(), 100 * np.quantile(frr, .9)))
