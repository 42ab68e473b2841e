"""load_rgb / load_mask: every pixel format becomes uint8 RGB with known values, bad files a clear error."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from qc_models.data.images import ImageLoadError, load_mask, load_rgb, probe_image, read_size


def _rgb(h: int = 8, w: int = 6) -> np.ndarray:
    return np.random.default_rng(1).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _error(path: Path, **kw) -> ImageLoadError:
    with pytest.raises(ImageLoadError) as info:
        load_rgb(path, **kw)
    assert str(path) in str(info.value), "the error must name the file"
    return info.value


@pytest.mark.parametrize("ext", [".png", ".bmp", ".tif", ".tiff"])
def test_lossless_rgb_round_trip(tmp_path: Path, ext: str) -> None:
    a = _rgb()
    Image.fromarray(a).save(tmp_path / f"x{ext}")
    out = load_rgb(tmp_path / f"x{ext}")
    assert out.dtype == np.uint8 and out.flags.c_contiguous
    np.testing.assert_array_equal(out, a)


@pytest.mark.parametrize("ext", [".jpg", ".jpeg", ".JPG"])
def test_jpeg_decodes_close_to_source(tmp_path: Path, ext: str) -> None:
    a = np.full((16, 16, 3), (200, 40, 90), np.uint8)
    Image.fromarray(a).save(tmp_path / f"x{ext}", format="JPEG", quality=95)
    out = load_rgb(tmp_path / f"x{ext}")
    assert out.shape == (16, 16, 3) and np.abs(out.astype(int) - a).max() <= 4


def test_grayscale_is_replicated(tmp_path: Path) -> None:
    g = _rgb()[..., 0]
    Image.fromarray(g, "L").save(tmp_path / "g.png")
    out = load_rgb(tmp_path / "g.png")
    for c in range(3):
        np.testing.assert_array_equal(out[..., c], g)


def test_rgba_and_la_are_composited_on_black(tmp_path: Path) -> None:
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[0, 0] = (200, 100, 50, 255)  # opaque: unchanged
    rgba[0, 1] = (200, 100, 50, 0)  # transparent: black
    rgba[1, 0] = (200, 100, 50, 128)  # half: about half
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    out = load_rgb(tmp_path / "a.png")
    assert out[0, 0].tolist() == [200, 100, 50]
    assert out[0, 1].tolist() == [0, 0, 0]
    assert np.abs(out[1, 0].astype(int) - [100, 50, 25]).max() <= 1
    Image.fromarray(np.array([[[120, 255], [120, 0]]], np.uint8), "LA").save(tmp_path / "la.png")
    assert load_rgb(tmp_path / "la.png").tolist() == [[[120] * 3, [0] * 3]]


def test_palette_with_and_without_transparency(tmp_path: Path) -> None:
    p = Image.new("P", (2, 1))
    p.putpalette([0, 0, 0, 10, 200, 30] + [0] * 762)
    p.putpixel((0, 0), 1)
    p.putpixel((1, 0), 0)
    p.save(tmp_path / "p.png")
    assert load_rgb(tmp_path / "p.png").tolist() == [[[10, 200, 30], [0, 0, 0]]]
    p.info["transparency"] = 1
    p.save(tmp_path / "pt.png", transparency=1)
    assert load_rgb(tmp_path / "pt.png").tolist() == [[[0, 0, 0], [0, 0, 0]]]


def test_sixteen_bit_png_and_tiff_are_scaled(tmp_path: Path) -> None:
    g16 = np.array([[0, 257 * 100, 65535, 1000]], np.uint16)
    cv2.imwrite(str(tmp_path / "g16.png"), g16)
    Image.fromarray(g16).save(tmp_path / "g16.tif")
    expected = [0, 100, 255, round(1000 / 257)]
    for name in ("g16.png", "g16.tif"):
        assert Image.open(tmp_path / name).mode.startswith("I;16")
        out = load_rgb(tmp_path / name)
        assert out[0, :, 0].tolist() == expected and (out[..., 0] == out[..., 2]).all()
    rgb16 = np.zeros((1, 2, 3), np.uint16)
    rgb16[0, 0] = (65535, 257 * 50, 0)  # BGR order for OpenCV
    cv2.imwrite(str(tmp_path / "c16.tif"), rgb16)
    assert load_rgb(tmp_path / "c16.tif")[0, 0].tolist() == [0, 50, 255]


@pytest.mark.parametrize(("bits", "ext"), [(10, "png"), (12, "png"), (12, "tif"), (14, "tif")])
def test_camera_depths_in_sixteen_bit_files_fill_the_eight_bit_range(tmp_path: Path, bits: int, ext: str) -> None:
    top = 2**bits - 1
    grey = np.array([[0, top // 2, top, top // 4]], np.uint16)
    cv2.imwrite(str(tmp_path / f"g.{ext}"), grey)
    expected = [round(v * 255 / top) for v in grey[0].tolist()]
    assert load_rgb(tmp_path / f"g.{ext}")[0, :, 0].tolist() == expected  # not 255/65535: a 12-bit image stays visible
    colour = np.zeros((1, 2, 3), np.uint16)
    colour[0, 0] = (top, top // 2, 0)  # BGR order for OpenCV
    cv2.imwrite(str(tmp_path / f"c.{ext}"), colour)
    assert Image.open(tmp_path / f"c.{ext}").mode == "RGB"  # Pillow alone would keep only the high bytes
    assert load_rgb(tmp_path / f"c.{ext}")[0, 0].tolist() == [0, round((top // 2) * 255 / top), 255]


def _with_exif_chunk(png: bytes, orientation: int, after_pixels: bool) -> bytes:
    """``png`` with an eXIf chunk (EXIF orientation) right after IHDR or right before IEND."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = exif.tobytes()
    data = data[6:] if data.startswith(b"Exif\x00\x00") else data
    chunk = struct.pack(">I", len(data)) + b"eXIf" + data + struct.pack(">I", zlib.crc32(b"eXIf" + data))
    cut = len(png) - 12 if after_pixels else 8 + 25  # before IEND / after signature + IHDR
    return png[:cut] + chunk + png[cut:]


@pytest.mark.parametrize("ext", ["png", "tif"])
def test_sixteen_bit_colour_is_decoded_once(tmp_path: Path, ext: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import ImageFile

    colour = np.random.default_rng(3).integers(0, 65536, (5, 7, 3), dtype=np.uint16)
    cv2.imwrite(str(tmp_path / f"c.{ext}"), colour)
    expected = (colour[..., ::-1].astype(np.float64) * 255 / 65535).round().astype(np.uint8)
    decoded: list[str] = []
    real_load = ImageFile.ImageFile.load
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: decoded.append(self.filename) or real_load(self))
    np.testing.assert_array_equal(load_rgb(tmp_path / f"c.{ext}"), expected)
    assert decoded == [], "OpenCV's decode is enough; Pillow must not decode the pixels a second time"


@pytest.mark.parametrize("after_pixels", [False, True])
def test_sixteen_bit_colour_png_keeps_its_exif_orientation(tmp_path: Path, after_pixels: bool) -> None:
    colour = np.random.default_rng(4).integers(0, 65536, (5, 7, 3), dtype=np.uint16)
    cv2.imwrite(str(tmp_path / "plain.png"), colour)
    path = tmp_path / "turned.png"
    path.write_bytes(_with_exif_chunk((tmp_path / "plain.png").read_bytes(), 6, after_pixels))
    out = load_rgb(path)
    np.testing.assert_array_equal(out, np.rot90(load_rgb(tmp_path / "plain.png"), -1))
    assert out.shape == (7, 5, 3)


def test_truncated_sixteen_bit_colour_is_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "cut.png"
    cv2.imwrite(str(path), np.random.default_rng(5).integers(0, 65536, (64, 64, 3), dtype=np.uint16))
    path.write_bytes(path.read_bytes()[:-3000])
    assert _error(path).kind == "corrupt"


def test_eight_bit_values_in_a_sixteen_bit_file_are_kept(tmp_path: Path) -> None:
    grey = np.array([[0, 17, 200, 255]], np.uint16)
    cv2.imwrite(str(tmp_path / "g.png"), grey)
    assert load_rgb(tmp_path / "g.png")[0, :, 0].tolist() == [0, 17, 200, 255]


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_as_viewers_show_the_photo(tmp_path: Path, orientation: int) -> None:
    from PIL import ImageOps

    rng = np.random.default_rng(orientation)
    stored = Image.fromarray(rng.integers(0, 256, (6, 10, 3), dtype=np.uint8))
    exif = Image.Exif()
    exif[0x0112] = orientation
    stored.save(tmp_path / "photo.png", exif=exif)
    Image.fromarray((rng.random((6, 10)) > 0.5).astype(np.uint8) * 255).save(tmp_path / "mask.png", exif=exif)
    shown = np.asarray(ImageOps.exif_transpose(Image.open(tmp_path / "photo.png")))
    out = load_rgb(tmp_path / "photo.png")
    np.testing.assert_array_equal(out, shown)
    assert out.flags.c_contiguous
    assert read_size(tmp_path / "photo.png") == probe_image(tmp_path / "photo.png") == (shown.shape[1], shown.shape[0])
    shown_mask = np.asarray(ImageOps.exif_transpose(Image.open(tmp_path / "mask.png"))) > 0
    np.testing.assert_array_equal(load_mask(tmp_path / "mask.png"), shown_mask)
    if orientation in (5, 6, 7, 8):
        assert out.shape[:2] == (10, 6)  # turned sideways


def test_one_bit_and_cmyk(tmp_path: Path) -> None:
    Image.fromarray(np.array([[True, False]])).convert("1").save(tmp_path / "b.png")
    assert load_rgb(tmp_path / "b.png").tolist() == [[[255] * 3, [0] * 3]]
    Image.new("CMYK", (4, 4), (0, 255, 255, 0)).save(tmp_path / "c.jpg")
    assert Image.open(tmp_path / "c.jpg").mode == "CMYK"
    px = load_rgb(tmp_path / "c.jpg")[0, 0].astype(int)
    assert px[0] > 240 and px[1] < 15 and px[2] < 15  # pure red


def test_read_size_never_decodes_pixels(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import ImageFile

    for name in ("a.png", "b.jpg"):
        Image.fromarray(np.zeros((8, 12, 3), np.uint8)).save(tmp_path / name)

    decoded: list[str] = []
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: decoded.append(str(self.filename)))
    assert read_size(tmp_path / "a.png") == read_size(tmp_path / "b.jpg") == (12, 8)
    assert decoded == []


def test_truncated_png_is_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "cut.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(path)
    path.write_bytes(path.read_bytes()[:-300])
    assert _error(path).kind == "corrupt"
    assert read_size(path) == (64, 64)  # the header alone is still readable
    with pytest.raises(ImageLoadError):
        probe_image(path)


@pytest.mark.parametrize(
    ("name", "content", "kind"),
    [
        ("noise.png", bytes(np.random.default_rng(0).integers(0, 256, 500, dtype=np.uint8)), "not_an_image"),
        ("notes.png", b"operator notes, not a picture\n", "not_an_image"),
        ("zero.png", b"", "empty_file"),
    ],
)
def test_bad_files_have_stable_kinds(tmp_path: Path, name: str, content: bytes, kind: str) -> None:
    (tmp_path / name).write_bytes(content)
    assert _error(tmp_path / name).kind == kind


def test_missing_file(tmp_path: Path) -> None:
    assert _error(tmp_path / "nope.png").kind == "missing"


def _png_header_only(path: Path, width: int, height: int) -> None:
    """A PNG whose header claims width x height but carries almost no data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = lambda tag, data: struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))  # noqa: E731
    idat = zlib.compress(b"\0" * 64)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


def test_decompression_bomb_refused_before_decoding(tmp_path: Path) -> None:
    small = tmp_path / "small.png"
    Image.fromarray(_rgb(20, 20)).save(small)
    err = _error(small, max_pixels=100)
    assert err.kind == "decompression_bomb" and "400" in err.reason
    bomb = tmp_path / "bomb.png"
    _png_header_only(bomb, 100_000, 100_000)
    assert _error(bomb).kind == "decompression_bomb"
    with pytest.raises(ImageLoadError) as info:
        read_size(bomb)
    assert info.value.kind == "decompression_bomb"


def test_masks_any_nonzero_is_defect(tmp_path: Path) -> None:
    m = np.array([[0, 255, 1], [0, 0, 128]], np.uint8)
    Image.fromarray(m).save(tmp_path / "m.png")
    np.testing.assert_array_equal(load_mask(tmp_path / "m.png"), m > 0)
    rgb = np.zeros((2, 3, 3), np.uint8)
    rgb[1, 2, 1] = 255
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    assert load_mask(tmp_path / "rgb.png").tolist() == [[False] * 3, [False, False, True]]
    Image.fromarray(m > 0).save(tmp_path / "bits.png")
    np.testing.assert_array_equal(load_mask(tmp_path / "bits.png"), m > 0)
