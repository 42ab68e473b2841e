"""Safe image and mask decoding: everything becomes 8-bit RGB or a clear error.

Files on a factory share are often grayscale, RGBA, 16-bit, truncated, or not
images at all. Decoding goes through one function so every caller (EDA, training,
inspection, dashboard) sees the same conversion rules and the same error text,
which always names the file. The error's ``kind`` is one of the integrity
problem codes of :mod:`qc_models.data.integrity` (plus ``missing``).
"""

from __future__ import annotations

import struct
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")

#: Largest accepted image, in pixels (about 16k x 16k); larger ones are refused
#: before decoding so a decompression bomb cannot exhaust memory. Pillow's own hard
#: limit (twice ``PIL.Image.MAX_IMAGE_PIXELS``, about 179 M) also applies and is
#: reported the same way.
MAX_IMAGE_PIXELS = 256_000_000

_SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N")


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


def _check_file(path: Path) -> None:
    if not path.is_file():
        raise ImageLoadError(path, "missing", "file does not exist" if not path.exists() else "not a regular file")
    if path.stat().st_size == 0:
        raise ImageLoadError(path, "empty_file", "file is empty (0 bytes)")


def _check_pixels(path: Path, img: Image.Image, max_pixels: int) -> None:
    w, h = img.size
    if w * h > max_pixels:
        raise ImageLoadError(
            path, "decompression_bomb", f"image is {w}x{h} = {w * h:,} pixels, above the limit of {max_pixels:,}; refused"
        )


def _open(path: Path) -> Image.Image:
    """Open (header only) with Pillow's errors mapped to problem kinds."""
    _check_file(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit decides
            return Image.open(path)
    except Image.DecompressionBombError as exc:
        raise ImageLoadError(path, "decompression_bomb", f"refused as a possible decompression bomb ({exc})") from exc
    except UnidentifiedImageError as exc:
        raise ImageLoadError(path, "not_an_image", "not a recognised image file") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageLoadError(path, "corrupt", f"corrupt or unreadable image header ({exc})") from exc


def _load(path: Path, img: Image.Image) -> None:
    try:
        img.load()
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageLoadError(path, "corrupt", f"corrupt or truncated image ({exc})") from exc


#: EXIF orientation tag. Phones (and the annotation tools that draw masks on their photos) show
#: images turned by it, so the pixels are turned the same way on loading.
_ORIENTATION_TAG = 0x0112
_TURNED_SIDEWAYS = (5, 6, 7, 8)


def exif_orientation(img: Image.Image) -> int:
    """The EXIF orientation (1-8) of an opened image; 1 (as stored) when absent or unreadable.

    Never decodes pixels: Pillow's PNG ``getexif`` loads the whole image when no eXIf chunk came
    before the pixel data, so such a PNG counts as unturned until it has been loaded.
    """
    if img.format == "PNG" and "exif" not in img.info:
        return 1
    try:
        value = img.getexif().get(_ORIENTATION_TAG, 1)
    except Exception:  # noqa: BLE001 - a broken EXIF block must not make a readable image unreadable
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def oriented_size(img: Image.Image) -> tuple[int, int]:
    """``(width, height)`` as the image is shown, i.e. after its EXIF orientation."""
    w, h = img.size
    return (h, w) if exif_orientation(img) in _TURNED_SIDEWAYS else (w, h)


def apply_orientation(arr: np.ndarray, orientation: int) -> np.ndarray:
    """Turn/flip pixel rows and columns as EXIF ``orientation`` says (as Pillow's ``exif_transpose``)."""
    if orientation == 2:
        return arr[:, ::-1]
    if orientation == 3:
        return arr[::-1, ::-1]
    if orientation == 4:
        return arr[::-1]
    if orientation == 5:
        return arr.swapaxes(0, 1)
    if orientation == 6:
        return np.rot90(arr, -1)
    if orientation == 7:
        return arr[::-1, ::-1].swapaxes(0, 1)
    if orientation == 8:
        return np.rot90(arr, 1)
    return arr


def read_size(path: str | Path, max_pixels: int = MAX_IMAGE_PIXELS) -> tuple[int, int]:
    """``(width, height)`` as shown (EXIF orientation applied) from the header alone; does not detect truncation."""
    path = Path(path)
    with _open(path) as img:
        _check_pixels(path, img, max_pixels)
        return oriented_size(img)


def probe_image(path: str | Path, max_pixels: int = MAX_IMAGE_PIXELS, decode: bool = True) -> tuple[int, int]:
    """``(width, height)`` after checking the file would load; ``decode=False`` reads the header only.

    Cheaper than :func:`load_rgb` for validation: no RGB array is kept. Raises
    :class:`ImageLoadError` with the same kinds as :func:`load_rgb`.
    """
    path = Path(path)
    with _open(path) as img:
        _check_pixels(path, img, max_pixels)
        if decode:
            _load(path, img)
            try:
                _to_rgb(path, img)
            except OSError as exc:
                raise ImageLoadError(path, "corrupt", f"corrupt or truncated image ({exc})") from exc
        return oriented_size(img)


#: Sample depths that cameras store in 16-bit files (10-, 12- and 14-bit sensors, 8-bit data widened).
_CONTAINER_DEPTHS = (8, 10, 12, 14, 16)


def sample_bits(top: float) -> int:
    """The smallest common sample depth (8, 10, 12, 14 or 16 bits) that holds ``top``, the largest value.

    Machine-vision cameras write 10/12/14-bit samples into 16-bit PNG/TIFF files without saying so
    (Pillow does not read PNG's sBIT chunk). Scaled by 255/65535, a 12-bit image keeps 17 grey levels
    of 256 and looks black, so the depth is inferred from the data: an image whose brightest pixel
    is far below its sensor's range is brightened (by a power of 4).
    """
    for bits in _CONTAINER_DEPTHS:
        if top < 2**bits:
            return bits
    return 16


def _to_uint8(arr: np.ndarray) -> np.ndarray:
    """Scale 16/32-bit integer data (inferred sample depth, see :func:`sample_bits`) or float data to 8 bits."""
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == bool:
        return arr.astype(np.uint8) * 255
    if arr.dtype.kind in "iu":
        top = float(arr.max(initial=0))
        scale = float(2 ** sample_bits(top) - 1) if top <= 65535 else top
        return (arr.astype(np.float32) * (255.0 / scale)).round().clip(0, 255).astype(np.uint8)
    if arr.dtype.kind == "f":
        top = 1.0 if arr.max(initial=0) <= 1.0 else 255.0
        return (arr.astype(np.float32) * (255.0 / top)).round().clip(0, 255).astype(np.uint8)
    return arr.clip(0, 255).astype(np.uint8)


def _to_rgb(path: Path, img: Image.Image) -> np.ndarray:
    if img.mode in _SIXTEEN_BIT or img.mode in ("I", "F"):
        arr = _to_uint8(np.asarray(img))
        return np.repeat(arr[..., None], 3, axis=2) if arr.ndim == 2 else arr[..., :3]
    try:
        if img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (img.mode == "P" and "transparency" in img.info):
            rgba = img.convert("RGBA")
            background = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
            return np.asarray(Image.alpha_composite(background, rgba).convert("RGB"))
        return np.asarray(img if img.mode == "RGB" else img.convert("RGB"))
    except ValueError as exc:
        raise ImageLoadError(path, "unsupported_mode", f"cannot convert {img.mode} pixels to RGB ({exc})") from exc


def is_sixteen_bit_colour(img: Image.Image) -> bool:
    """A 16-bit-per-channel RGB file (read before ``load``, which clears the tile list)."""
    if img.mode != "RGB" or not img.tile:
        return False
    args = img.tile[0][3]
    rawmode = args if isinstance(args, str) else (args[0] if isinstance(args, tuple) and args else "")
    return isinstance(rawmode, str) and ";16" in rawmode


def _read_sixteen_bit_colour(path: Path) -> np.ndarray | None:
    """All 16 bits of an RGB file via OpenCV (Pillow keeps only the high bytes); None if OpenCV cannot."""
    import cv2

    arr = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if arr is None or arr.dtype != np.uint16 or arr.ndim != 3 or arr.shape[2] != 3:
        return None
    return _to_uint8(arr[..., ::-1])


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_chunk_types(path: Path) -> Iterator[bytes]:
    """The chunk types of a PNG file in order, read by seeking past each chunk's data."""
    with path.open("rb") as f:
        if f.read(8) != _PNG_SIGNATURE:
            return
        while len(head := f.read(8)) == 8:
            length, kind = struct.unpack(">I4s", head)
            yield kind
            if kind == b"IEND":
                return
            f.seek(length + 4, 1)  # data and CRC


def _png_exif_after_pixels(path: Path, img: Image.Image) -> bool:
    """True for a PNG whose eXIf chunk follows the pixel data: Pillow sees it only after decoding."""
    return img.format == "PNG" and "exif" not in img.info and b"eXIf" in _png_chunk_types(path)


def load_rgb(path: str | Path, max_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray:
    """Decode ``path`` to an ``(H, W, 3)`` uint8 RGB array.

    Grayscale and 1-bit are replicated, RGBA/LA/transparent palettes are composited on
    black, palettes expanded, CMYK converted, 16-bit data scaled to 8 bits from the sample depth
    its values fill (16, or 10/12/14 bits as cameras store them; :func:`sample_bits`), and the
    pixels turned by the EXIF orientation, as viewers show them. Raises
    :class:`ImageLoadError` (kinds: missing, empty_file, not_an_image, corrupt,
    decompression_bomb, unsupported_mode).
    """
    path = Path(path)
    with _open(path) as img:
        _check_pixels(path, img, max_pixels)
        # 16-bit colour is decoded once, by OpenCV; Pillow decodes it only when OpenCV cannot
        # (then Pillow's load reports the corrupt file) or to find an eXIf chunk after the pixels.
        arr = _read_sixteen_bit_colour(path) if is_sixteen_bit_colour(img) else None
        if arr is None or _png_exif_after_pixels(path, img):
            _load(path, img)
        orientation = exif_orientation(img)
        if arr is None:
            try:
                arr = _to_rgb(path, img)
            except OSError as exc:
                raise ImageLoadError(path, "corrupt", f"corrupt or truncated image ({exc})") from exc
    if arr.dtype != np.uint8:
        arr = _to_uint8(arr)
    return np.ascontiguousarray(apply_orientation(arr, orientation))


def load_mask(path: str | Path, max_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray:
    """Decode a ground-truth mask to an ``(H, W)`` bool array (any non-zero pixel = defect; EXIF orientation applied)."""
    path = Path(path)
    with _open(path) as img:
        _check_pixels(path, img, max_pixels)
        _load(path, img)
        orientation = exif_orientation(img)
        try:
            arr = np.asarray(img.convert("L") if img.mode in ("P", "PA", "CMYK", "YCbCr", "LAB", "HSV") else img)
        except (OSError, ValueError) as exc:
            raise ImageLoadError(path, "corrupt", f"cannot read mask pixels ({exc})") from exc
    if arr.ndim == 3:
        arr = arr[..., :3].max(axis=2) if arr.shape[2] >= 3 else arr[..., 0]
    return np.ascontiguousarray(apply_orientation(arr > 0, orientation))
