"""JSON form of an EDA report (what ``qc eda --json`` prints and the dashboard may cache).

Schema (``schema_version`` 1). NaN/inf become ``null``; ``RGB`` lists are [R, G, B]::

    {
      "schema_version": 1, "root": str, "integrity_checked": bool,
      "problems": [{"path": str, "kind": str, "message": str, "category": str, "split": str}],
                  # header-only integrity.check_dataset + the EDA's decode failures, one per (path, kind);
                  # [] when integrity_checked is false
      "categories": {"<category>": {
        "category": str,
        "counts": [{"split": str, "defect_type": str, "images": int, "masks": int}],
        "totals": {"train_good", "test_good", "test_defective", "test", "images", "masks", "defect_types": int},
        "imbalance": {"test_good_to_defective", "test_defective_fraction", "train_good_to_test_good",
                      "defect_type_max_to_min": float|null, "largest_defect_type", "smallest_defect_type": str|null},
        "aggregates": {"images": int, "pixels": int, "channel_mean": RGB, "channel_std": RGB (pooled, ddof=0),
                       "sizes": {"HxW": int}, "modal_size": [h, w]|null, "modes": {mode: int},
                       "channels": {"1"|"3"|"4": int}, "bit_depths": {str: int}, "brightness_median": float|null,
                       "abnormal_dimension_count": int, "intensity_outlier_count": int},
        "class_summary": [{"split", "defect_type", "images", <feature>: mean}],
        "image_stats": [{"path", "split", "defect_type", "height", "width", "channels", "mode", "bit_depth",
                         <feature>: float, "brightness_z": float, "intensity_outlier": bool,
                         "abnormal_dimensions": bool}],                # omitted with per_image=False
        "abnormal_dimensions": [{"path", "height", "width"}],
        "intensity_outliers": [{"path", "brightness", "brightness_z"}],
        "unreadable": [{"path", "kind", "message"}],                    # files the EDA could not decode
        "histograms": {"bins": 256, "classes": {"<split>/<defect_type>": {"images": int, "pixels": int,
                       "rgb": [[256 floats] x 3]}}},                   # each channel sums to 1
        "heatmaps": {"size": [S, S], "json_size": [s, s], "maps": {"all"|"<defect_type>": {
                     "masks": int, "max": float, "mean": float, "values": [[s floats] x s]}}},
        "area_fraction": {"all"|"<defect_type>": {"count", "mean", "std", "min", "median", "max"}},
        "masks": [{"path", "defect_type", "height", "width", "area_fraction", "components",
                   "centroid_x", "centroid_y"}],
        "centroids": [{"path", "defect_type", "x", "y", "area_fraction"}],   # one per connected component
        "comparisons": [{"name", "group_a", "group_b", "n_a", "n_b", "features": [{"feature", "mean_a",
                         "mean_b", "ks_statistic", "ks_pvalue", "wasserstein", "wasserstein_scaled"}]}]
      }}
    }

<feature> is one of :data:`qc_models.eda.stats.FEATURES`.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
import pandas as pd

from qc_models.eda.masks import ALL, area_summary

if TYPE_CHECKING:
    from qc_models.eda.report import CategoryEda, EdaReport

SCHEMA_VERSION = 1


def jsonable(obj: Any) -> Any:
    """Plain Python values for ``json``: numpy to lists/scalars, NaN/inf to None, frames to records."""
    if isinstance(obj, pd.DataFrame):
        return [jsonable(r) for r in obj.to_dict("records")]
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        f = float(obj)
        return f if math.isfinite(f) else None
    if obj is None or isinstance(obj, str):
        return obj
    return str(obj)


def dumps(data: dict[str, Any], indent: int | None = None) -> str:
    """Strict JSON (no NaN tokens) of an already JSON-able dict."""
    return json.dumps(data, indent=indent, allow_nan=False)


def downsample(heatmap: np.ndarray, size: int) -> np.ndarray:
    """Area-average a square heatmap to ``size`` x ``size`` (unchanged when already that small)."""
    if heatmap.shape[0] <= size and heatmap.shape[1] <= size:
        return heatmap
    return cv2.resize(heatmap.astype(np.float32), (size, size), interpolation=cv2.INTER_AREA).astype(np.float64)


def _heatmaps(eda: CategoryEda, json_size: int) -> dict[str, Any]:
    counts = eda.masks.counts()
    maps = {}
    for key, heat in eda.masks.heatmaps().items():
        small = downsample(heat, json_size)
        maps[key] = {
            "masks": counts.get(key, 0),
            "max": float(heat.max()),
            "mean": float(heat.mean()),
            "values": np.round(small, 5),
        }
    s = eda.masks.size
    js = min(s, json_size)
    return {"size": [s, s], "json_size": [js, js], "maps": maps}


def _histograms(eda: CategoryEda) -> dict[str, Any]:
    classes = {}
    for key in eda.histograms.keys():
        counts = eda.histograms.counts(key)
        classes[key] = {
            "images": eda.histograms.images(key),
            "pixels": int(counts[0].sum()),
            "rgb": np.round(eda.histograms.normalised(key), 7),
        }
    return {"bins": 256, "classes": classes}


def category_to_dict(eda: CategoryEda, per_image: bool = True, heatmap_json_size: int = 16) -> dict[str, Any]:
    """JSON-able dict of one category, following the module schema."""
    t = eda.image_stats
    mask_table = eda.masks.mask_table()
    areas = {ALL: area_summary(mask_table["area_fraction"])}
    for dt, group in mask_table.groupby("defect_type", sort=True):
        areas[str(dt)] = area_summary(group["area_fraction"])
    out: dict[str, Any] = {
        "category": eda.category,
        "counts": eda.counts.table,
        "totals": eda.counts.totals,
        "imbalance": eda.counts.imbalance,
        "aggregates": eda.aggregates,
        "class_summary": eda.class_summary,
    }
    if per_image:
        out["image_stats"] = t
    out.update(
        {
            "abnormal_dimensions": t.loc[t["abnormal_dimensions"], ["path", "height", "width"]],
            "intensity_outliers": t.loc[t["intensity_outlier"], ["path", "brightness", "brightness_z"]],
            "unreadable": eda.unreadable,
            "histograms": _histograms(eda),
            "heatmaps": _heatmaps(eda, heatmap_json_size),
            "area_fraction": areas,
            "masks": mask_table,
            "centroids": eda.masks.centroid_table(),
            "comparisons": [
                {"name": c.name, "group_a": c.group_a, "group_b": c.group_b, "n_a": c.n_a, "n_b": c.n_b, "features": c.table}
                for c in eda.comparisons
            ],
        }
    )
    return jsonable(out)


def report_to_dict(report: EdaReport, per_image: bool = True, heatmap_json_size: int = 16) -> dict[str, Any]:
    """JSON-able dict of a whole report, following the module schema."""
    return {
        "schema_version": SCHEMA_VERSION,
        "root": report.root,
        "integrity_checked": report.integrity_checked,
        "problems": jsonable(report.problems),
        "categories": {
            name: category_to_dict(eda, per_image=per_image, heatmap_json_size=heatmap_json_size)
            for name, eda in report.categories.items()
        },
    }
