"""Display glue shared by the pages: image overlays, badges, banners, filters and small charts.

Only presentation lives here. Scores, thresholds and statistics come from
``qc_models`` and ``db``; these helpers turn them into pixels and widgets, and
shrink images before they are sent to the browser (a 1024 px heatmap per model
per image would otherwise dominate page load time).
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd
import streamlit as st

from qc_models.data import ImageLoadError, load_rgb

#: Longest side of any image or heatmap sent to the browser.
MAX_DISPLAY_SIDE = 384


# ---------------------------------------------------------------- pure image helpers


def downsample(image: np.ndarray, max_side: int = MAX_DISPLAY_SIDE) -> np.ndarray:
    """Shrink ``image`` (any dtype, 2-D or 3-D) so its longest side is at most ``max_side``."""
    h, w = image.shape[:2]
    scale = max_side / max(h, w)
    if scale >= 1.0:
        return image
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    src = image.astype(np.uint8) * 255 if image.dtype == bool else image
    out = cv2.resize(src, size, interpolation=cv2.INTER_AREA)
    return out > 127 if image.dtype == bool else out


def load_upload(name: str, data: bytes) -> np.ndarray:
    """Decode uploaded bytes with the library's rules (``load_rgb``); errors name the uploaded file."""
    with tempfile.TemporaryDirectory(prefix="qc-upload-") as tmp:
        path = Path(tmp) / f"upload{Path(name).suffix.lower()}"
        path.write_bytes(data)
        try:
            return load_rgb(path)
        except ImageLoadError as exc:
            raise ImageLoadError(name, exc.kind, exc.reason) from None


def digest(image: np.ndarray) -> str:
    """Content key of a decoded image (cache key for its scores)."""
    return hashlib.sha1(image.tobytes(), usedforsecurity=False).hexdigest() + f"{image.shape}"


def colorize(anomaly_map: np.ndarray, vmin: float = 0.0, vmax: float = 1.0) -> np.ndarray:
    """Map a float ``(H, W)`` anomaly map to an RGB jet image (``vmin`` blue, ``vmax`` red)."""
    if anomaly_map.ndim != 2:
        raise ValueError(f"anomaly map must be 2-D, got shape {anomaly_map.shape}")
    span = max(float(vmax) - float(vmin), 1e-12)
    scaled = np.nan_to_num((anomaly_map.astype(np.float32) - vmin) / span, nan=0.0)
    gray = (np.clip(scaled, 0.0, 1.0) * 255.0).astype(np.uint8)
    return cv2.cvtColor(cv2.applyColorMap(gray, cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)


def overlay_heatmap(
    image: np.ndarray,
    anomaly_map: np.ndarray,
    alpha: float = 0.5,
    vmin: float = 0.0,
    vmax: float = 1.0,
    max_side: int = MAX_DISPLAY_SIDE,
) -> np.ndarray:
    """Blend the jet-coloured ``anomaly_map`` over ``image``, downsampled for display.

    Maps are normalised scores (0.5 at the threshold), hence the default 0..1 range:
    the same colour means the same distance to the threshold for every model.
    """
    small = downsample(image, max_side)
    h, w = small.shape[:2]
    amap = cv2.resize(anomaly_map.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    return cv2.addWeighted(small, 1.0 - alpha, colorize(amap, vmin, vmax), alpha, 0.0)


def overlay_mask(
    image: np.ndarray,
    mask: np.ndarray,
    color: tuple[int, int, int] = (255, 40, 40),
    alpha: float = 0.45,
    max_side: int = MAX_DISPLAY_SIDE,
) -> np.ndarray:
    """Tint the defect pixels of a bool ``mask`` and outline them, downsampled for display."""
    if mask.shape[:2] != image.shape[:2]:
        mask = cv2.resize(mask.astype(np.uint8), (image.shape[1], image.shape[0]), interpolation=cv2.INTER_NEAREST) > 0
    small = downsample(image, max_side).copy()
    small_mask = downsample(mask.astype(bool), max_side)
    tint = np.array(color, dtype=np.float32)
    small[small_mask] = ((1.0 - alpha) * small[small_mask] + alpha * tint).astype(np.uint8)
    contours, _ = cv2.findContours(small_mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    cv2.drawContours(small, contours, -1, color, 1)
    return small


def heatmap_image(values: np.ndarray, size: int = 192) -> np.ndarray:
    """A 2-D grid of frequencies/means as a jet RGB picture scaled to ``size`` px (nearest, no blur)."""
    arr = np.asarray(values, dtype=np.float32)
    top = float(np.nanmax(arr)) if arr.size and np.isfinite(arr).any() else 0.0
    rgb = colorize(arr, 0.0, top if top > 0 else 1.0)
    scale = max(1, size // max(arr.shape))
    return cv2.resize(rgb, (arr.shape[1] * scale, arr.shape[0] * scale), interpolation=cv2.INTER_NEAREST)


# ---------------------------------------------------------------- small widgets


def decision_badge(is_defective: bool | None) -> str:
    """Markdown badge for an OK/NG decision (``None`` = not scored)."""
    if is_defective is None:
        return ":gray-badge[n/a]"
    return ":red-badge[NG]" if is_defective else ":green-badge[OK]"


def fix_banner(message: str, command: str | None = None, *, kind: str = "warning") -> None:
    """A visible banner with the one action that fixes the situation (a command to run)."""
    show = {"warning": st.warning, "info": st.info, "error": st.error}[kind]
    show(message, icon=":material/info:" if kind == "info" else ":material/warning:")
    if command:
        st.code(command, language="bash")


def show_dataframe(df: pd.DataFrame, empty_text: str, **kwargs: Any) -> None:
    """``st.dataframe`` with a caption instead of an empty table."""
    if df is None or len(df) == 0:
        st.caption(empty_text)
    else:
        st.dataframe(df, hide_index=True, width="stretch", **kwargs)


def percent(value: float | None, digits: int = 1) -> str:
    """``0.0312 -> '3.1 %'``; ``None``/NaN -> an em dash."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "—"
    return f"{100.0 * float(value):.{digits}f} %"


def interval(ci: Sequence[float] | None, digits: int = 3) -> str:
    """A confidence interval as ``low–high`` text; an em dash when undefined."""
    if ci is None or len(ci) != 2:
        return "—"
    return f"{ci[0]:.{digits}f}–{ci[1]:.{digits}f}"


def image_grid(images: Sequence[np.ndarray], captions: Sequence[str], columns: int = 4) -> None:
    """Images in rows of ``columns``, each downsampled, with a caption."""
    if not images:
        st.caption("no images")
        return
    for start in range(0, len(images), columns):
        cols = st.columns(columns)
        for col, img, cap in zip(cols, images[start : start + columns], captions[start : start + columns]):
            col.image(downsample(img), caption=cap, width="stretch")


def default_date_range(last: date, first: date, days: int = 30) -> tuple[date, date]:
    """The analytics pages' initial window: the ``days`` days up to the newest result (demo data may be old)."""
    return max(first, last - timedelta(days=days - 1)), last


#: Session keys where the shared filter selection survives page changes (widget keys are dropped
#: when a page that does not draw them runs).
_SAVED_FILTERS = "qc_saved_filters"
MODELS = ("ensemble", "cae", "unet", "patchcore")


def filters_panel(db_url: str) -> Any:
    """Sidebar filters shared by Defect analytics and Reports; returns a ``db.filters.Filters`` or None if no data."""
    from dashboard import state
    from db.filters import Filters

    first, last = state.query("result_time_span", db_url, Filters())
    if last is None:
        return None
    options = state.query("filter_options", db_url)
    saved: dict[str, Any] = st.session_state.setdefault(_SAVED_FILTERS, {})
    lo, hi = first.date(), last.date()
    initial = saved.get("dates")
    if not (isinstance(initial, (tuple, list)) and initial and all(lo <= d <= hi for d in initial)):
        initial = default_date_range(hi, lo)
    with st.sidebar:
        st.subheader("Filters")
        dates = st.date_input("Inspected between", value=tuple(initial),
                              min_value=lo, max_value=hi, key="flt_dates")
        chosen: dict[str, Any] = {"dates": dates}
        for name, label in (("categories", "Category"), ("lines", "Line"), ("shifts", "Shift"), ("lots", "Lot")):
            values = [v for v in options.get(name, []) if v is not None]
            default = [v for v in saved.get(name, []) if v in values]
            chosen[name] = st.multiselect(label, values, default=default, key=f"flt_{name}", placeholder="all")
        chosen["model"] = st.selectbox("Decision of model", MODELS, index=MODELS.index(saved.get("model", "ensemble")),
                                       key="flt_model", help="Whose OK/NG decision counts as defective.")
    st.session_state[_SAVED_FILTERS] = chosen
    start, end = (dates[0], dates[-1]) if isinstance(dates, (tuple, list)) and dates else (lo, hi)
    return Filters(start=start, end=end, categories=tuple(chosen["categories"]), lines=tuple(chosen["lines"]),
                   shifts=tuple(chosen["shifts"]), lots=tuple(chosen["lots"]), model=chosen["model"])


def score_table(names: Sequence[str], scores: Sequence[Any], models: Sequence[str]) -> pd.DataFrame:
    """One row per image: decision and normalised score of each model (from ``registry.ImageScore``)."""
    rows = []
    for name, sc in zip(names, scores):
        row: dict[str, Any] = {"image": name}
        for m in models:
            row[f"{m} score"] = round(float(sc.normalised[m]), 3)
            row[f"{m} decision"] = "NG" if sc.is_defective[m] else "OK"
        rows.append(row)
    return pd.DataFrame(rows)


def draw_box(image: np.ndarray, bbox: tuple[int, int, int, int] | None, color: tuple[int, int, int] = (255, 0, 0),
             max_side: int = MAX_DISPLAY_SIDE) -> np.ndarray:
    """The image downsampled for display with the ``(x, y, w, h)`` box (full-resolution pixels) outlined."""
    small = downsample(image, max_side).copy()
    if bbox is None or any(v is None or (isinstance(v, float) and np.isnan(v)) for v in bbox):
        return small
    scale = small.shape[1] / image.shape[1]
    x, y, w, h = (int(round(float(v) * scale)) for v in bbox)
    thickness = max(1, round(small.shape[1] / 160))
    cv2.rectangle(small, (x, y), (x + max(w, 1), y + max(h, 1)), color, thickness)
    return small


def threshold_effect(scores: pd.DataFrame, thresholds: dict[str, float]) -> pd.DataFrame:
    """False-reject rate and detection rate per defect type of one model's test scores at each threshold.

    ``scores``: rows of ``Evaluation.scores_frame()`` for one model (label, defect_type, raw).
    """
    from qc_models import metrics

    rows = []
    for name, thr in thresholds.items():
        m = metrics.threshold_metrics(scores["label"].to_numpy(), scores["raw"].to_numpy() > thr)
        row: dict[str, Any] = {"threshold": name, "raw value": thr, "false-reject rate": m["false_reject_rate"],
                               "recall (all defects)": m["recall"]}
        for dt, d in metrics.per_defect_type(scores["defect_type"].tolist(), scores["raw"].to_numpy(), thr).items():
            row[f"detected: {dt}"] = d["detection_rate"]
        rows.append(row)
    return pd.DataFrame(rows)
