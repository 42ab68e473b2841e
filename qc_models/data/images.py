"""Safe image and mask decoding: everything becomes 8-bit RGB or a clear error.

Files on a factory share are often grayscale, RGBA, 16-bit, truncated, or not
images at all. Decoding goes through one function so every caller (EDA, training,
inspection, dashboard) sees the same conversion rules and the same error text,
which always names the file.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")

#: Largest accepted image, in pixels (about 16k x 16k); larger ones are refused
#: before decoding so a decompression bomb cannot exhaust memory.
MAX_IMAGE_PIXELS = 256_000_000


class ImageLoadError(ValueError):
    """An image or mask could not be decoded; ``kind`` is a stable problem code."""

    def __init__(self, path: str | Path, kind: str, message: str) -> None:
        self.path = str(path)
        self.kind = kind
        self.reason = message
        super().__init__(f"{self.path}: {message}")


def is_image_file(path: str | Path) -> bool:
    """True when the name has an accepted image extension (case-insensitive)."""
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def _open(path: Path, max_pixels: int) -> Image.Image:
    if not path.exists():
        raise ImageLoadError(path, "missing", "file does not exist")
    if path.stat().st_size == 0:
        raise ImageLoadError(path, "empty_file", "file is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(path)
            w, h = img.size
            if w * h > max_pixels:
                raise ImageLoadError(
                    path,
                    "decompression_bomb",
                    f"image is {w}x{h} = {w * h:,} pixels, above the limit of {max_pixels:,}; refused",
                )
            img.load()
    except ImageLoadError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageLoadError(path, "decompression_bomb", f"refused as a possible decompression bomb ({exc})") from exc
    except UnidentifiedImageError as exc:
        raise ImageLoadError(path, "not_an_image", "not a recognised image file") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageLoadError(path, "corrupt", f"corrupt or truncated image ({exc})") from exc
    return img


def _to_uint8(arr: np.ndarray) -> np.ndarray:
    """Scale 16-bit / 32-bit / float data to 8 bits by the range of its dtype."""
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == bool:
        return arr.astype(np.uint8) * 255
    if arr.dtype == np.uint16 or (arr.dtype.kind in "iu" and arr.max(initial=0) > 255):
        return (arr.astype(np.float32) / 257.0).round().clip(0, 255).astype(np.uint8)
    if arr.dtype.kind == "f":
        top = 1.0 if arr.max(initial=0) <= 1.0 else 255.0
        return (arr.astype(np.float32) * (255.0 / top)).round().clip(0, 255).astype(np.uint8)
    return arr.clip(0, 255).astype(np.uint8)


def load_rgb(path: str | Path, max_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray:
    """Decode ``path`` to an ``(H, W, 3)`` uint8 RGB array.

    Grayscale is replicated, RGBA is composited on black, palette images are
    expanded and 16-bit data is scaled to 8 bits. Raises :class:`ImageLoadError`.
    """
    path = Path(path)
    img = _open(path, max_pixels)
    try:
        if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
            arr = _to_uint8(np.asarray(img))
            return np.repeat(arr[..., None], 3, axis=2) if arr.ndim == 2 else arr[..., :3]
        if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
            rgba = img.convert("RGBA")
            background = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
            return np.asarray(Image.alpha_composite(background, rgba).convert("RGB"))
        if img.mode != "RGB":
            img = img.convert("RGB")
        arr = np.asarray(img)
    except OSError as exc:
        raise ImageLoadError(path, "corrupt", f"corrupt or truncated image ({exc})") from exc
    if arr.dtype != np.uint8:
        arr = _to_uint8(arr)
    return np.ascontiguousarray(arr)


def load_mask(path: str | Path, max_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray:
    """Decode a ground-truth mask to an ``(H, W)`` bool array (any non-zero pixel = defect)."""
    path = Path(path)
    img = _open(path, max_pixels)
    arr = np.asarray(img)
    if arr.ndim == 3:
        arr = arr[..., :3].max(axis=2) if arr.shape[2] >= 3 else arr[..., 0]
    return arr > 0
