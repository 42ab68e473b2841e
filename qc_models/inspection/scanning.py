"""Which files a run inspects, what their folders say about them, and their hashes.

A run keeps only the sorted list of relative paths (strings), never decoded
images, so memory stays flat however many images a folder holds. Sorting makes
the order deterministic, which keeps resumed runs and their progress readable.

Policy for files: names with an accepted image extension (``IMAGE_EXTENSIONS``)
are inspected, and a bad one (corrupt, truncated, empty, not really an image,
too large) becomes an error row. Other names (``.txt``, ``.csv``, ``Thumbs.db``,
hidden files and folders) are skipped and only counted, so side files on a
factory share do not inflate the error rate.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from qc_models import hashing
from qc_models.data.images import is_image_file
from qc_models.data.layout import GOOD


class InspectionError(ValueError):
    """A user-fixable problem with an inspection request (folder, run id, database, models)."""


@dataclass(frozen=True)
class SourceFolder:
    """The files of one inspection source folder and the labels its layout implies."""

    root: Path  # absolute folder whose files are inspected
    rel_paths: list[str]  # sorted POSIX paths relative to ``root``
    n_skipped: int  # files without an image extension (not inspected)
    labelled: bool  # True when ``root`` has ``good/`` and defect-type subfolders
    fixed_label: str | None = None  # label of every file when ``root`` is ``<category>/test/<type>``
    category_hint: str | None = None  # category implied by ``<category>/test[/<type>]``

    def __len__(self) -> int:
        return len(self.rel_paths)

    def known_defect_type(self, rel_path: str) -> str | None:
        """``'good'`` or the defect folder name when the layout says so, else None."""
        if self.fixed_label is not None:
            return self.fixed_label
        if self.labelled and "/" in rel_path:
            return rel_path.split("/", 1)[0]
        return None


def _is_category_dir(path: Path) -> bool:
    return (path / "test").is_dir() and (path / "train").is_dir()


def resolve_root(folder: str | Path) -> Path:
    """The absolute folder to inspect; a category folder means its ``test/``.

    Raises :class:`InspectionError` naming the path when it is missing or not a folder.
    """
    path = Path(folder).expanduser()
    if not path.exists():
        raise InspectionError(f"{path}: folder does not exist")
    if not path.is_dir():
        raise InspectionError(f"{path}: not a folder")
    path = path.resolve()
    return path / "test" if _is_category_dir(path) else path


def _walk(root: Path) -> tuple[list[str], int]:
    rel: list[str] = []
    skipped = 0
    for dirpath, dirnames, filenames in os.walk(root, onerror=None, followlinks=False):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        base = Path(dirpath).relative_to(root)
        for name in filenames:
            if name.startswith("."):
                continue
            if is_image_file(name):
                rel.append((base / name).as_posix())
            else:
                skipped += 1
    rel.sort()
    return rel, skipped


def scan_folder(folder: str | Path) -> SourceFolder:
    """List the images of ``folder`` (recursively) and infer labels and category from its layout."""
    root = resolve_root(folder)
    rel, skipped = _walk(root)
    labelled = (root / GOOD).is_dir()
    fixed_label = None
    category_hint = None
    if root.name == "test":
        category_hint = root.parent.name
    elif root.parent.name == "test" and not labelled and _is_category_dir(root.parent.parent):
        fixed_label = root.name
        category_hint = root.parent.parent.name
    return SourceFolder(root, rel, skipped, labelled, fixed_label, category_hint)


def file_sha256(path: str | Path) -> str | None:
    """Hex sha256 of the file's bytes, read in chunks; None when it cannot be read."""
    try:
        return hashing.file_sha256(path)
    except OSError:
        return None
