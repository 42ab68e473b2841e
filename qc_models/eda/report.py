"""The EDA pass: stream every image of a dataset once and collect all statistics.

One decode per image feeds the per-image table, the class histograms and (for
defective test images) the mask heatmaps; images are never kept, so memory is
bounded by the small per-image rows whatever the dataset size. Optional worker
threads overlap decoding (OpenCV releases the GIL) through a bounded window.

Decoding dominates the run time, so no file is decoded twice: the integrity check
reads headers only (empty files, non-images, mask pairing and sizes, dimensions)
and the EDA's own decode failures (truncated files, bombs, ...) become integrity
problems, merged into the report's problems without duplicates.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, is_dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from qc_models.data.images import ImageLoadError, load_mask
from qc_models.data.integrity import KINDS, Problem, check_dataset
from qc_models.data.layout import GOOD, CategoryLayout, Sample, list_categories, open_category
from qc_models.eda.compare import Comparison, compare_groups
from qc_models.eda.decode import decode_image
from qc_models.eda.histograms import HistogramAccumulator, image_histogram
from qc_models.eda.masks import MaskAccumulator, MaskSummary, describe_mask
from qc_models.eda.serialise import category_to_dict, dumps, report_to_dict
from qc_models.eda.stats import (
    FEATURES,
    OUTLIER_Z,
    ChannelAccumulator,
    abnormal_dimensions,
    image_features,
    modal_size,
    robust_zscores,
)
from qc_models.eda.summary import CountSummary, summarise_counts

ProgressCallback = Callable[[str, float], None]
T = TypeVar("T")
R = TypeVar("R")

#: Share of the progress bar given to the (header-only, hence quick) integrity check when it runs.
INTEGRITY_SHARE = 0.05

IMAGE_COLUMNS = ["path", "split", "defect_type", "height", "width", "channels", "mode", "bit_depth", *FEATURES]


@dataclass
class CategoryEda:
    """Everything the EDA knows about one category (see ``to_dict`` for the JSON form)."""

    category: str
    counts: CountSummary
    image_stats: pd.DataFrame  # IMAGE_COLUMNS + brightness_z, intensity_outlier, abnormal_dimensions
    class_summary: pd.DataFrame  # split, defect_type, images, mean of each feature
    aggregates: dict[str, Any]
    histograms: HistogramAccumulator  # keys "split/defect_type"
    masks: MaskAccumulator
    comparisons: list[Comparison]
    unreadable: list[dict[str, str]] = field(default_factory=list)

    def to_dict(self, per_image: bool = True, heatmap_json_size: int = 16) -> dict[str, Any]:
        return category_to_dict(self, per_image=per_image, heatmap_json_size=heatmap_json_size)


@dataclass
class EdaReport:
    """The EDA of a dataset root: one :class:`CategoryEda` per category plus integrity problems."""

    root: str
    categories: dict[str, CategoryEda]
    problems: list[dict[str, str]]
    integrity_checked: bool

    def to_dict(self, per_image: bool = True, heatmap_json_size: int = 16) -> dict[str, Any]:
        """JSON-able form; the schema is documented in :mod:`qc_models.eda.serialise`."""
        return report_to_dict(self, per_image=per_image, heatmap_json_size=heatmap_json_size)

    def to_json(self, per_image: bool = True, heatmap_json_size: int = 16, indent: int | None = None) -> str:
        return dumps(self.to_dict(per_image=per_image, heatmap_json_size=heatmap_json_size), indent=indent)


@dataclass
class ImageResult:
    """What one sample contributes: a table row and histogram (None when unreadable), a mask summary."""

    sample: Sample
    row: dict[str, Any] | None = None
    histogram: np.ndarray | None = None
    mask: MaskSummary | None = None
    errors: list[dict[str, str]] = field(default_factory=list)


def _problem_dict(problem: Any) -> dict[str, str]:
    if hasattr(problem, "to_dict"):
        d = problem.to_dict()
    elif is_dataclass(problem):
        d = asdict(problem)
    else:
        d = dict(problem)
    return {k: str(v) for k, v in d.items()}


def _error(exc: ImageLoadError) -> dict[str, str]:
    return {"path": exc.path, "kind": exc.kind, "message": exc.reason}


def analyse_sample(sample: Sample, heatmap_size: int = 64) -> ImageResult:
    """Decode one sample (and its mask) into a table row, a histogram and a mask summary."""
    out = ImageResult(sample)
    try:
        img = decode_image(sample.path)
    except ImageLoadError as exc:
        out.errors.append(_error(exc))
        return out
    h, w = img.rgb.shape[:2]
    out.row = {
        "path": str(sample.path),
        "split": sample.split,
        "defect_type": sample.defect_type,
        "height": h,
        "width": w,
        "channels": img.channels,
        "mode": img.mode,
        "bit_depth": img.bit_depth,
        **image_features(img.rgb),
    }
    out.histogram = image_histogram(img.rgb)
    if sample.mask_path is not None:
        try:
            out.mask = describe_mask(load_mask(sample.mask_path), heatmap_size)
        except ImageLoadError as exc:
            out.errors.append(_error(exc))
    return out


def _bounded_map(fn: Callable[[T], R], items: Iterable[T], workers: int) -> Iterator[R]:
    """``map`` in order over a thread pool, with at most ``2 * workers`` results in flight."""
    if workers <= 1:
        yield from map(fn, items)
        return
    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending: deque = deque()
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _value_counts(series: pd.Series) -> dict[str, int]:
    return {str(k): int(v) for k, v in series.value_counts().sort_index().items()}


def _finish_table(rows: list[dict[str, Any]]) -> pd.DataFrame:
    table = pd.DataFrame(rows, columns=IMAGE_COLUMNS)
    z = robust_zscores(table["brightness"].to_numpy(dtype=np.float64))
    table["brightness_z"] = z
    table["intensity_outlier"] = np.abs(z) > OUTLIER_Z
    table["abnormal_dimensions"] = abnormal_dimensions(table["height"].to_numpy(), table["width"].to_numpy())
    return table


def _aggregates(table: pd.DataFrame, channels: ChannelAccumulator) -> dict[str, Any]:
    sizes = (table["height"].astype(str) + "x" + table["width"].astype(str)) if len(table) else table["height"]
    mode = modal_size(table["height"].to_numpy(), table["width"].to_numpy())
    return {
        "images": int(len(table)),
        "pixels": int(channels.pixels),
        "channel_mean": channels.mean.tolist(),
        "channel_std": channels.std.tolist(),
        "sizes": _value_counts(sizes),
        "modal_size": list(mode) if mode else None,
        "modes": _value_counts(table["mode"]),
        "channels": _value_counts(table["channels"]),
        "bit_depths": _value_counts(table["bit_depth"]),
        "brightness_median": float(table["brightness"].median()) if len(table) else None,
        "abnormal_dimension_count": int(table["abnormal_dimensions"].sum()),
        "intensity_outlier_count": int(table["intensity_outlier"].sum()),
    }


def _class_summary(table: pd.DataFrame) -> pd.DataFrame:
    grouped = table.groupby(["split", "defect_type"], sort=True)
    means = grouped[list(FEATURES)].mean()
    means.insert(0, "images", grouped.size())
    return means.reset_index()


def _comparisons(table: pd.DataFrame, defect_types: list[str]) -> list[Comparison]:
    test = table[table["split"] == "test"]
    good = test[test["defect_type"] == GOOD]
    out = [
        compare_groups("good_vs_defective", "test/good", good, "test/defective", test[test["defect_type"] != GOOD], FEATURES),
        compare_groups(
            "train_good_vs_test_good", "train/good", table[table["split"] == "train"], "test/good", good, FEATURES
        ),
    ]
    for dt in defect_types:
        out.append(compare_groups(f"good_vs_{dt}", "test/good", good, f"test/{dt}", test[test["defect_type"] == dt], FEATURES))
    return out


def analyse_category(
    layout: CategoryLayout,
    samples: list[Sample] | None = None,
    heatmap_size: int = 64,
    workers: int = 1,
    progress: ProgressCallback | None = None,
) -> CategoryEda:
    """Stream all images of one category; ``progress`` gets the fraction of this category done."""
    samples = layout.samples() if samples is None else samples
    defect_types = layout.defect_types()
    counts = summarise_counts(samples, defect_types)
    hist, masks, channels = HistogramAccumulator(), MaskAccumulator(heatmap_size), ChannelAccumulator()
    rows: list[dict[str, Any]] = []
    unreadable: list[dict[str, str]] = []
    n = len(samples)
    step = max(1, n // 100)
    for i, res in enumerate(_bounded_map(lambda s: analyse_sample(s, heatmap_size), samples, workers), start=1):
        unreadable.extend(res.errors)
        if res.row is not None and res.histogram is not None:
            rows.append(res.row)
            hist.add(f"{res.sample.split}/{res.sample.defect_type}", res.histogram)
            r = res.row
            channels.add([r["mean_r"], r["mean_g"], r["mean_b"]], [r["std_r"], r["std_g"], r["std_b"]], r["height"] * r["width"])
        if res.mask is not None:
            masks.add(res.mask, res.sample.defect_type, str(res.sample.mask_path))
        if progress is not None and (i % step == 0 or i == n):
            progress(f"{layout.category}: {i}/{n} images", i / n)
    table = _finish_table(rows)
    return CategoryEda(
        category=layout.category,
        counts=counts,
        image_stats=table,
        class_summary=_class_summary(table),
        aggregates=_aggregates(table, channels),
        histograms=hist,
        masks=masks,
        comparisons=_comparisons(table, defect_types),
        unreadable=unreadable,
    )


def _integrity_problems(root: Path, category: str | None, progress: ProgressCallback | None) -> list[dict[str, str]]:
    """Header-only integrity problems: the EDA decodes every file itself (see :func:`decode_problems`)."""
    return [_problem_dict(p) for p in check_dataset(root, category=category, progress=progress, decode=False)]


def decode_problems(eda: CategoryEda, samples: list[Sample]) -> list[dict[str, str]]:
    """The EDA's decode failures of one category as integrity problems (``Problem.to_dict`` form).

    Kinds outside :data:`qc_models.data.integrity.KINDS` (e.g. an unreadable file) are
    reported as ``corrupt``, as the integrity check itself does; masks belong to ``test``.
    """
    split_of = {str(s.path): s.split for s in samples}
    return [
        Problem(
            e["path"], e["kind"] if e["kind"] in KINDS else "corrupt", e["message"], eda.category, split_of.get(e["path"], "test")
        ).to_dict()
        for e in eda.unreadable
    ]


def merge_problems(problems: list[dict[str, str]], extra: Iterable[dict[str, str]]) -> list[dict[str, str]]:
    """``problems`` followed by those of ``extra`` not already reported for the same ``(path, kind)``."""
    seen = {(p["path"], p["kind"]) for p in problems}
    out = list(problems)
    for p in extra:
        if (p["path"], p["kind"]) not in seen:
            seen.add((p["path"], p["kind"]))
            out.append(p)
    return out


def run_eda(
    root: str | Path,
    category: str | None = None,
    *,
    heatmap_size: int = 64,
    check_integrity: bool = True,
    workers: int = 1,
    progress: ProgressCallback | None = None,
) -> EdaReport:
    """EDA of every category under ``root`` (or just ``category``).

    Raises :class:`qc_models.data.layout.DatasetError` when ``root`` is not a dataset
    or has no such category. Unreadable images are listed (per category in ``unreadable``
    and, with ``check_integrity``, among the problems), not fatal. Each file is decoded once.
    """
    root = Path(root)
    names = [open_category(root, category).category] if category else list_categories(root)
    layouts = [CategoryLayout(root, c) for c in names]
    start = 0.0
    problems: list[dict[str, str]] | None = None
    if check_integrity:
        sub = (lambda m, f: progress(m, INTEGRITY_SHARE * f)) if progress else None
        problems = _integrity_problems(root, category, sub)
        start = INTEGRITY_SHARE
    listed = [(lay, lay.samples()) for lay in layouts]
    total = max(1, sum(len(s) for _, s in listed))
    done = 0
    results: dict[str, CategoryEda] = {}
    for lay, samples in listed:
        def sub_progress(msg: str, frac: float, base: int = done, n: int = len(samples)) -> None:
            if progress is not None:
                progress(msg, start + (1 - start) * (base + frac * n) / total)

        results[lay.category] = analyse_category(lay, samples, heatmap_size, workers, sub_progress)
        if problems is not None:
            problems = merge_problems(problems, decode_problems(results[lay.category], samples))
        done += len(samples)
    if progress is not None:
        progress("EDA done", 1.0)
    return EdaReport(str(root), results, problems or [], problems is not None)
