"""Integrity check of a dataset in the MVTec AD layout: every problem named, nothing fatal.

Training and evaluation trust the files they are given; one truncated PNG or one
mask paired with the wrong image silently corrupts a model or a metric. This
module walks a dataset once and lists each problem with a stable ``kind`` code
and the file it concerns, so the CLI, the EDA and the dashboard can show it.
It never raises on bad data (only :class:`DatasetError` when ``root`` is not a
dataset at all).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from qc_models.data.images import MAX_IMAGE_PIXELS, ImageLoadError, is_image_file, load_mask, probe_image, read_size
from qc_models.data.layout import GOOD, CategoryLayout, list_categories, open_category

#: Problem kinds (stable codes) and what each means, for help texts and reports.
KINDS: dict[str, str] = {
    "corrupt": "the file cannot be decoded (truncated or damaged)",
    "not_an_image": "a file in an image folder that is not an image",
    "empty_file": "a zero-byte file",
    "decompression_bomb": "an image too large to decode safely",
    "unsupported_mode": "an image whose pixel format cannot be converted to RGB",
    "missing_mask": "a defect image without a ground-truth mask",
    "orphan_mask": "a mask without a matching defect image",
    "mask_size_mismatch": "a mask whose size differs from its image",
    "abnormal_dimensions": "an image too small, too large, too elongated or unlike its category's size",
    "empty_folder": "train/good or a test folder without images",
    "missing": "a file that does not exist (e.g. removed while being checked)",
}

MIN_SIDE = 32
MAX_SIDE = 8192
MAX_ASPECT = 10.0
#: Sizes differing from the category's most common size are flagged only when that size is this dominant.
DOMINANT_SHARE = 0.5


@dataclass(frozen=True)
class Problem:
    """One integrity problem: the file (or folder) concerned, a stable code and an explanation."""

    path: str
    kind: str
    message: str
    category: str = ""
    split: str = ""

    def to_dict(self) -> dict[str, str]:
        """JSON-able form (all values are strings)."""
        return asdict(self)


def _problem(path: Path, kind: str, message: str, category: str = "", split: str = "") -> Problem:
    return Problem(str(path), kind, message, category, split)


def _dimension_problem(w: int, h: int) -> str | None:
    if min(w, h) < MIN_SIDE:
        return f"image is {w}x{h}, smaller than {MIN_SIDE} px on a side"
    if max(w, h) > MAX_SIDE:
        return f"image is {w}x{h}, larger than {MAX_SIDE} px on a side"
    if max(w, h) / max(1, min(w, h)) > MAX_ASPECT:
        return f"image is {w}x{h}, an aspect ratio above {MAX_ASPECT:g}:1"
    return None


def _inspect(path: Path, max_pixels: int, decode: bool) -> tuple[tuple[int, int] | None, Problem | None]:
    """Size from the header, then (optionally) a full decode; never raises on bad data."""
    if not is_image_file(path):
        return None, _problem(path, "not_an_image", f"not an image file (extension '{path.suffix or 'none'}')")
    try:
        size = probe_image(path, max_pixels, decode)
    except ImageLoadError as exc:
        return None, _problem(path, exc.kind if exc.kind in KINDS else "corrupt", exc.reason)
    except (OSError, ValueError, SyntaxError, EOFError, MemoryError) as exc:  # any other decoder failure
        return None, _problem(path, "corrupt", f"cannot decode ({type(exc).__name__}: {exc})")
    message = _dimension_problem(*size)
    return size, (_problem(path, "abnormal_dimensions", message) if message else None)


def check_image(path: str | Path, max_pixels: int = MAX_IMAGE_PIXELS, decode: bool = True) -> Problem | None:
    """The problem that would stop ``path`` from being inspected, or None when it is usable.

    Checks extension, emptiness, header, pixel count, full decode (``decode``) and dimensions.
    """
    return _inspect(Path(path), max_pixels, decode)[1]


def _files(folder: Path) -> list[Path]:
    """Visible files of ``folder``; empty when it is missing or unreadable (reported as empty_folder)."""
    try:
        return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    except OSError:
        return []


def _subdirs(folder: Path) -> list[Path]:
    try:
        return sorted(p for p in folder.iterdir() if p.is_dir())
    except OSError:
        return []


def _mask_stem(mask: Path) -> str:
    return mask.stem[: -len("_mask")] if mask.stem.endswith("_mask") else mask.stem


class _CategoryCheck:
    """Collects the problems of one category; split out so each step stays small."""

    def __init__(self, layout: CategoryLayout, max_pixels: int, decode: bool) -> None:
        self.layout = layout
        self.max_pixels = max_pixels
        self.decode = decode
        self.problems: list[Problem] = []
        self.sizes: dict[Path, tuple[int, int]] = {}

    def add(self, problem: Problem, split: str) -> None:
        self.problems.append(Problem(problem.path, problem.kind, problem.message, self.layout.category, split))

    def folders(self) -> list[tuple[str, str, Path]]:
        """``(split, defect_type, folder)`` of every image folder, reporting missing or empty ones."""
        base = self.layout.path
        out = [("train", GOOD, base / "train" / GOOD)]
        test = base / "test"
        if test.is_dir():
            out += [("test", p.name, p) for p in _subdirs(test)]
        else:
            self.add(_problem(test, "empty_folder", "no test/ folder: the category cannot be evaluated"), "test")
        for split, _, folder in out:
            if not folder.is_dir():
                self.add(_problem(folder, "empty_folder", "folder is missing"), split)
            elif not os.access(folder, os.R_OK | os.X_OK):
                self.add(_problem(folder, "empty_folder", "folder cannot be read (permission denied)"), split)
            elif not any(is_image_file(f) for f in _files(folder)):
                self.add(_problem(folder, "empty_folder", "folder holds no image files"), split)
        return out

    def image(self, path: Path, split: str) -> None:
        size, problem = _inspect(path, self.max_pixels, self.decode)
        if size is not None:
            self.sizes[path] = size
        if problem is not None:
            self.add(problem, split)

    def masks(self, defect_type: str, images: list[Path]) -> list[Path]:
        """Report missing masks; returns the mask files that were paired."""
        paired = []
        for image in images:
            if not is_image_file(image):
                continue
            mask = self.layout.mask_path_for(defect_type, image)
            if mask is None:
                want = f"ground_truth/{defect_type}/{image.stem}_mask.png"
                self.add(_problem(image, "missing_mask", f"defect image has no mask (expected {want})"), "test")
                continue
            paired.append(mask)
            self.mask(mask, image)
        return paired

    def mask(self, mask: Path, image: Path) -> None:
        try:
            if self.decode:
                arr = load_mask(mask, self.max_pixels)
                size = (arr.shape[1], arr.shape[0])
            else:
                size = read_size(mask, self.max_pixels)
        except ImageLoadError as exc:
            self.add(_problem(mask, exc.kind if exc.kind in KINDS else "corrupt", exc.reason), "test")
            return
        except (OSError, ValueError, SyntaxError, EOFError, MemoryError) as exc:
            self.add(_problem(mask, "corrupt", f"cannot decode ({type(exc).__name__}: {exc})"), "test")
            return
        image_size = self.sizes.get(image)
        if image_size is not None and image_size != size:
            msg = f"mask is {size[0]}x{size[1]} but its image {image.name} is {image_size[0]}x{image_size[1]}"
            self.add(_problem(mask, "mask_size_mismatch", msg), "test")

    def orphans(self, paired: set[Path], defect_folders: set[str]) -> None:
        gt = self.layout.path / "ground_truth"
        if not gt.is_dir():
            return
        for folder in (p for p in _subdirs(gt) if p.name != GOOD):  # masks of good images: harmless
            for mask in _files(folder):
                if mask in paired:
                    continue
                if not is_image_file(mask):
                    self.add(_problem(mask, "not_an_image", "not an image file in a mask folder"), "test")
                    continue
                where = f"test/{folder.name}/" if folder.name in defect_folders else f"test/{folder.name}/ (missing)"
                msg = f"mask has no image '{_mask_stem(mask)}.*' in {where}"
                self.add(_problem(mask, "orphan_mask", msg), "test")

    def dominant_sizes(self, splits: dict[Path, str]) -> None:
        if not self.sizes:
            return
        (size, count), = Counter(self.sizes.values()).most_common(1)
        if count / len(self.sizes) < DOMINANT_SHARE or count == len(self.sizes):
            return
        flagged = {Path(p.path) for p in self.problems if p.kind == "abnormal_dimensions"}
        for path, s in sorted(self.sizes.items()):
            if s != size and path not in flagged:
                msg = f"image is {s[0]}x{s[1]}; the category's images are {size[0]}x{size[1]} ({count} of {len(self.sizes)})"
                self.add(_problem(path, "abnormal_dimensions", msg), splits.get(path, ""))


def _category_problems(
    layout: CategoryLayout, max_pixels: int, decode: bool, tick: Callable[[str], None]
) -> list[Problem]:
    check = _CategoryCheck(layout, max_pixels, decode)
    folders = check.folders()
    paired: set[Path] = set()
    splits: dict[Path, str] = {}
    for split, defect_type, folder in folders:
        files = _files(folder)
        for path in files:
            splits[path] = split
            check.image(path, split)
            tick(f"{layout.category}: {split}/{defect_type}/{path.name}")
        if split == "test" and defect_type != GOOD:
            paired.update(check.masks(defect_type, files))
    check.orphans(paired, {d for s, d, _ in folders if s == "test"})
    check.dominant_sizes(splits)
    return check.problems


def _count_files(layout: CategoryLayout) -> int:
    folders = [layout.path / "train" / GOOD, *_subdirs(layout.path / "test")]
    return sum(len(_files(f)) for f in folders)


def check_dataset(
    root: str | Path,
    category: str | None = None,
    progress: Callable[[str, float], None] | None = None,
    max_pixels: int = MAX_IMAGE_PIXELS,
    decode: bool = True,
) -> list[Problem]:
    """Every integrity problem of ``root`` (or of one ``category``), in a stable order.

    With ``decode=False`` only headers are read (fast, but truncated files go unnoticed).
    Raises :class:`~qc_models.data.layout.DatasetError` when ``root`` is not a dataset
    or lacks ``category``; bad files are reported, never raised.
    """
    names = [open_category(root, category).category] if category else list_categories(root)
    layouts = [CategoryLayout(Path(root), name) for name in names]
    total = max(1, sum(_count_files(lay) for lay in layouts))
    done = 0

    def tick(message: str) -> None:
        nonlocal done
        done += 1
        if progress is not None and (done % 16 == 0 or done == total):
            progress(message, min(1.0, done / total))

    problems: list[Problem] = []
    for layout in layouts:
        problems += _category_problems(layout, max_pixels, decode, tick)
    if progress is not None:
        progress("integrity check done", 1.0)
    return problems
