"""Fast image decoding for the EDA pass, with the same conversion rules as ``load_rgb``.

The EDA reads every image of a dataset once, so decoding dominates its run time.
Plain 8-bit gray/RGB PNG, JPEG and BMP files (nearly all real datasets) are
decoded with OpenCV from bytes read once; every other mode (RGBA, palette,
16-bit, CMYK, ...) goes through :func:`qc_models.data.images.load_rgb` so the
pixels the EDA describes are exactly the pixels the detectors see. The original
file's mode, channel count and bit depth are kept because the dashboard shows them.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from qc_models.data.images import MAX_IMAGE_PIXELS, ImageLoadError, exif_orientation, is_sixteen_bit_colour, load_rgb

_FAST_FORMATS = ("PNG", "JPEG", "BMP")
_CHANNELS = {"LA": 2, "La": 2, "PA": 4, "RGB": 3, "YCbCr": 3, "LAB": 3, "HSV": 3, "RGBA": 4, "RGBa": 4, "CMYK": 4}
_BIT_DEPTH = {"1": 1, "I;16": 16, "I;16B": 16, "I;16L": 16, "I": 32, "F": 32}


@dataclass(frozen=True)
class DecodedImage:
    """An image as ``(H, W, 3)`` uint8 RGB plus what the original file was."""

    rgb: np.ndarray
    mode: str  # PIL mode of the file: "L", "RGB", "RGBA", "P", "I;16", ...
    channels: int  # channels of the file: 1 gray, 3 RGB, 4 RGBA (palette: 3, or 4 with transparency)
    bit_depth: int  # bits per channel of the file


def _header(path: Path, data: bytes) -> tuple[str, str, int, int, bool, int, int]:
    """Mode, format, width, height, transparency, bits per channel and EXIF orientation from the header."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                w, h = img.size
                bits = 16 if is_sixteen_bit_colour(img) else _BIT_DEPTH.get(img.mode, 8)
                return img.mode, str(img.format), w, h, "transparency" in img.info, bits, exif_orientation(img)
    except UnidentifiedImageError as exc:
        raise ImageLoadError(path, "not_an_image", "not a recognised image file") from exc
    except Image.DecompressionBombError as exc:
        raise ImageLoadError(path, "decompression_bomb", f"refused as a possible decompression bomb ({exc})") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageLoadError(path, "corrupt", f"corrupt or truncated image ({exc})") from exc


def _channels(mode: str, transparent: bool) -> int:
    if mode == "P":
        return 4 if transparent else 3
    return _CHANNELS.get(mode, 1)


def _fast_decode(data: bytes, fmt: str, mode: str) -> np.ndarray | None:
    """OpenCV decode for 8-bit gray/RGB files; None when the slow path must decide."""
    if mode not in ("L", "RGB") or fmt not in _FAST_FORMATS:
        return None
    if fmt == "JPEG" and not data.rstrip(b"\0").endswith(b"\xff\xd9"):
        return None  # truncated JPEG: OpenCV pads it silently, load_rgb reports it
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None or arr.dtype != np.uint8:
        return None
    if arr.ndim == 2:
        return cv2.cvtColor(arr, cv2.COLOR_GRAY2RGB)
    if arr.ndim == 3 and arr.shape[2] == 3:
        return cv2.cvtColor(arr, cv2.COLOR_BGR2RGB)
    return None


def decode_image(path: str | Path, max_pixels: int = MAX_IMAGE_PIXELS) -> DecodedImage:
    """Decode ``path`` for the EDA; raises :class:`ImageLoadError` naming the file."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise ImageLoadError(path, "missing", "file does not exist") from exc
    except OSError as exc:
        raise ImageLoadError(path, "unreadable", f"cannot read file ({exc})") from exc
    if not data:
        raise ImageLoadError(path, "empty_file", "file is empty (0 bytes)")
    mode, fmt, w, h, transparent, bits, orientation = _header(path, data)
    if w * h > max_pixels:
        raise ImageLoadError(
            path, "decompression_bomb", f"image is {w}x{h} = {w * h:,} pixels, above the limit of {max_pixels:,}; refused"
        )
    # Turned photos take the slow path, which applies the orientation exactly as load_rgb does.
    rgb = _fast_decode(data, fmt, mode) if orientation == 1 else None
    if rgb is None:
        rgb = load_rgb(path, max_pixels=max_pixels)
    return DecodedImage(rgb=rgb, mode=mode, channels=_channels(mode, transparent), bit_depth=bits)
