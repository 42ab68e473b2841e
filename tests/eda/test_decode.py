"""The EDA decoder gives exactly load_rgb's pixels and reports the file's original mode."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from qc_models.data.images import ImageLoadError, load_rgb
from qc_models.eda.decode import decode_image


def _pattern(h: int = 6, w: int = 5) -> np.ndarray:
    rng = np.random.default_rng(3)
    return rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize(
    ("name", "make", "mode", "channels", "bits"),
    [
        ("rgb.png", lambda a: Image.fromarray(a), "RGB", 3, 8),
        ("gray.png", lambda a: Image.fromarray(a[..., 0]), "L", 1, 8),
        ("rgba.png", lambda a: Image.fromarray(np.dstack([a, a[..., :1]])), "RGBA", 4, 8),
        ("pal.png", lambda a: Image.fromarray(a).convert("P"), "P", 3, 8),
        ("g16.png", lambda a: Image.fromarray(a[..., 0].astype(np.uint16) * 257), "I;16", 1, 16),
        ("rgb.jpg", lambda a: Image.fromarray(a), "RGB", 3, 8),
        ("gray.jpg", lambda a: Image.fromarray(a[..., 0]), "L", 1, 8),
        ("rgb.bmp", lambda a: Image.fromarray(a), "RGB", 3, 8),
    ],
)
def test_same_pixels_as_load_rgb(tmp_path: Path, name: str, make, mode: str, channels: int, bits: int) -> None:
    path = tmp_path / name
    make(_pattern()).save(path)
    d = decode_image(path)
    assert (d.mode, d.channels, d.bit_depth) == (mode, channels, bits)
    assert d.rgb.shape == (6, 5, 3) and d.rgb.dtype == np.uint8
    np.testing.assert_array_equal(d.rgb, load_rgb(path))


def test_sixteen_bit_colour_reports_its_depth_and_the_detectors_pixels(tmp_path: Path) -> None:
    import cv2

    path = tmp_path / "c12.png"
    cv2.imwrite(str(path), _pattern().astype(np.uint16) * 16)  # 12-bit camera data in a 16-bit file
    d = decode_image(path)
    assert (d.mode, d.channels, d.bit_depth) == ("RGB", 3, 16)
    np.testing.assert_array_equal(d.rgb, load_rgb(path))
    assert d.rgb.max() > 200  # all 12 bits were read, not only the high byte (max 15)


@pytest.mark.parametrize("ext", ["jpg", "png"])
def test_a_turned_photo_is_decoded_as_load_rgb_turns_it(tmp_path: Path, ext: str) -> None:
    path = tmp_path / f"phone.{ext}"
    exif = Image.Exif()
    exif[0x0112] = 6  # stored landscape, shown portrait
    Image.fromarray(_pattern(6, 10)).save(path, exif=exif)
    d = decode_image(path)
    assert d.rgb.shape == (10, 6, 3)
    np.testing.assert_array_equal(d.rgb, load_rgb(path))


def test_errors_name_the_file(tmp_path: Path) -> None:
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"hello")
    for path, kind in ((empty, "empty_file"), (junk, "not_an_image"), (tmp_path / "missing.png", "missing")):
        with pytest.raises(ImageLoadError) as info:
            decode_image(path)
        assert info.value.kind == kind and str(path) in str(info.value)


def test_truncated_files_are_refused_like_load_rgb(tmp_path: Path) -> None:
    for name in ("cut.jpg", "cut.png"):
        path = tmp_path / name
        Image.fromarray(_pattern(64, 64)).save(path)
        path.write_bytes(path.read_bytes()[:-200])
        with pytest.raises(ImageLoadError) as info:
            decode_image(path)
        assert info.value.kind == "corrupt" and name in str(info.value)


def test_decompression_bomb_refused_before_decoding(tmp_path: Path) -> None:
    path = tmp_path / "big.png"
    Image.fromarray(_pattern(20, 20)).save(path)
    with pytest.raises(ImageLoadError) as info:
        decode_image(path, max_pixels=100)
    assert info.value.kind == "decompression_bomb"
