"""Discovery of datasets in the MVTec AD layout.

``<root>/<category>/train/good/*``, ``<root>/<category>/test/<good|defect_type>/*``
and ``<root>/<category>/ground_truth/<defect_type>/<stem>_mask.png``. Masks are
paired to images by file stem, never by position, so a missing file cannot
silently shift every later pairing.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from qc_models.data.images import is_image_file

GOOD = "good"
SPLITS = ("train", "test")


class DatasetError(ValueError):
    """The given folder is not a dataset in the MVTec AD layout."""


@dataclass(frozen=True)
class Sample:
    """One image of a dataset with its known label and (optional) mask path."""

    path: Path
    category: str
    split: str  # "train" or "test"
    defect_type: str  # "good" or the defect folder name
    mask_path: Path | None = None

    @property
    def is_defective(self) -> bool:
        return self.defect_type != GOOD

    @property
    def label(self) -> int:
        """1 for a defective image, 0 for a good one."""
        return int(self.is_defective)


def _image_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


def is_category_dir(path: Path) -> bool:
    """A category folder has ``train/good`` or ``test``."""
    return (path / "train" / GOOD).is_dir() or (path / "test").is_dir()


def list_categories(root: str | Path) -> list[str]:
    """Category names under ``root``; raises :class:`DatasetError` if there are none."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: not a directory")
    try:
        cats = sorted(p.name for p in root.iterdir() if p.is_dir() and is_category_dir(p))
    except OSError as exc:
        raise DatasetError(f"{root}: cannot be read ({exc.strerror or exc})") from exc
    if not cats:
        raise DatasetError(
            f"{root}: not a dataset in the MVTec AD layout (expected <root>/<category>/train/good "
            "and <root>/<category>/test/<defect_type>)"
        )
    return cats


def paired_mask_path(mask_folder: Path, image_path: Path) -> Path | None:
    """The mask of ``image_path`` in ``mask_folder``, paired by stem (``<stem>_mask.png``), or None."""
    for cand in (mask_folder / f"{image_path.stem}_mask.png", mask_folder / f"{image_path.stem}.png"):
        if cand.is_file():
            return cand
    return None


@dataclass(frozen=True)
class CategoryLayout:
    """The files of one category, discovered on disk."""

    root: Path
    category: str

    @property
    def path(self) -> Path:
        return self.root / self.category

    def defect_types(self) -> list[str]:
        """Defect types present in ``test/`` (excluding ``good``), sorted."""
        test = self.path / "test"
        if not test.is_dir():
            return []
        return sorted(p.name for p in test.iterdir() if p.is_dir() and p.name != GOOD)

    def mask_path_for(self, defect_type: str, image_path: Path) -> Path | None:
        """The mask paired by stem (``<stem>_mask.png``), or None when absent."""
        if defect_type == GOOD:
            return None
        return paired_mask_path(self.path / "ground_truth" / defect_type, image_path)

    def samples(self, split: str | None = None, images_only: bool = True) -> list[Sample]:
        """All samples of ``split`` (or both splits), sorted by split, type and name.

        With ``images_only`` files without an accepted image extension are left out
        (the integrity check reports them instead).
        """
        out: list[Sample] = []
        for sp in SPLITS if split is None else (split,):
            base = self.path / sp
            if not base.is_dir():
                continue
            types = [GOOD] if sp == "train" else sorted(p.name for p in base.iterdir() if p.is_dir())
            for dt in types:
                for f in _image_files(base / dt):
                    if images_only and not is_image_file(f):
                        continue
                    mask = self.mask_path_for(dt, f) if sp == "test" else None
                    out.append(Sample(f, self.category, sp, dt, mask))
        return out

    def iter_samples(self, split: str | None = None) -> Iterator[Sample]:
        yield from self.samples(split)


def open_category(root: str | Path, category: str) -> CategoryLayout:
    """The layout of ``category`` under ``root``; raises :class:`DatasetError` when absent."""
    cats = list_categories(root)
    if category not in cats:
        raise DatasetError(f"{root}: no category '{category}' (found: {', '.join(cats)})")
    return CategoryLayout(Path(root), category)
