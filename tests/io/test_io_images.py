"""Still-image decoding: reduced JPEG decode, awkward formats converted, bad files rejected."""

from __future__ import annotations

import struct

import cv2
import numpy as np
import pytest
from PIL import Image
from safety_tools import png_header_only

from mimic_fast.io.images import FrameError, decode_image, load_view, read_image, to_view


def _write(path, img, **params):
    flags = [cv2.IMWRITE_JPEG_QUALITY, 95] if str(path).endswith(".jpg") else []
    assert cv2.imwrite(str(path), img, flags)
    return path


@pytest.fixture()
def rgb():
    rng = np.random.default_rng(0)
    return cv2.GaussianBlur(rng.integers(0, 255, (600, 1000, 3), np.uint8), (5, 5), 2)


def test_large_jpeg_is_decoded_reduced_but_not_below_view_size(tmp_path, rgb):
    big = cv2.resize(rgb, (2000, 1200))
    p = _write(tmp_path / "big.jpg", big)
    img = decode_image(p, size=224)
    assert img.shape == (300, 500, 3)  # 1/4 scale: shorter side 300 >= 224, 1/8 would be 150
    full = cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB)
    ref = cv2.resize(full, (500, 300), interpolation=cv2.INTER_AREA)
    assert np.abs(img.astype(int) - ref).mean() < 4  # same picture, not a crop or garbage


def test_png_is_decoded_full_size_and_rgb_order(tmp_path, rgb):
    p = _write(tmp_path / "a.png", rgb)
    img = decode_image(p)
    assert img.shape == rgb.shape
    np.testing.assert_array_equal(img, rgb[..., ::-1])  # written as BGR, read as RGB


def test_grayscale_and_rgba_are_converted(tmp_path, rgb):
    gray = cv2.cvtColor(rgb, cv2.COLOR_BGR2GRAY)
    g = decode_image(_write(tmp_path / "g.png", gray))
    assert g.shape == (*gray.shape, 3) and (g[..., 0] == gray).all() and (g[..., 2] == gray).all()
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 7, np.uint8)])
    a = decode_image(_write(tmp_path / "a.png", rgba))
    np.testing.assert_array_equal(a, rgb[..., ::-1])  # alpha dropped, colours kept


@pytest.mark.parametrize("case", ["empty", "garbage", "truncated_jpeg", "truncated_png",
                                  "too_small", "missing"])
def test_bad_files_raise_frame_error(tmp_path, rgb, case):
    if case == "empty":
        p = tmp_path / "e.jpg"
        p.write_bytes(b"")
    elif case == "garbage":
        p = tmp_path / "g.jpg"
        p.write_bytes(b"this is not an image" * 50)
    elif case == "truncated_jpeg":
        data = _write(tmp_path / "t0.jpg", rgb).read_bytes()
        p = tmp_path / "t.jpg"
        p.write_bytes(data[: len(data) // 2])
    elif case == "truncated_png":
        data = _write(tmp_path / "t0.png", rgb).read_bytes()
        p = tmp_path / "t.png"
        p.write_bytes(data[: len(data) // 2])
    elif case == "too_small":
        p = _write(tmp_path / "s.png", rgb[:20, :20])
    else:
        p = tmp_path / "nope.jpg"
    with pytest.raises(FrameError):
        decode_image(p, min_side=32)


def test_views_squash_and_crop():
    img = np.zeros((100, 300, 3), np.uint8)
    img[:, 100:200] = 255  # the centre third is white
    sq = to_view(img, 224, "squash")
    cr = to_view(img, 224, "crop")
    assert sq.shape == cr.shape == (224, 224, 3)
    assert sq[:, :60].max() == 0 and sq[:, 90:130].min() == 255  # squashed: white in the middle
    assert cr.min() == 255  # cropped: only the white centre square remains
    with pytest.raises(ValueError, match="resize"):
        to_view(img, 224, "stretch")


def test_load_view_of_real_frame(shared_data):
    p = sorted((shared_data / "video" / "tum_freiburg_frames").glob("*.png"))[0]
    v = load_view(p)
    assert v.shape == (224, 224, 3) and v.dtype == np.uint8 and v.std() > 10


def test_decoder_exceptions_become_frame_errors(tmp_path):
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_header_only(20000, 20000))
    with pytest.raises(FrameError, match="image too large"):  # by its header, not decoded
        decode_image(bomb)
    huge = tmp_path / "huge.png"
    huge.write_bytes(png_header_only(40000, 40000))
    with pytest.raises(FrameError, match="cannot decode image.*CV_IO_MAX_IMAGE_PIXELS"):
        decode_image(huge, max_pixels=40000**2)  # let through to OpenCV: cv2.error


def test_jpeg_with_trailer_after_end_marker_is_accepted(tmp_path, rgb):
    p = _write(tmp_path / "a.jpg", rgb)
    data = p.read_bytes()
    reference = decode_image(p)
    for trailer in (b"\x00" * 7 + b"MotionPhoto_Data" + bytes(range(256)) * 4,
                    data):  # another whole JPEG appended (a burst / depth map)
        p.write_bytes(data + trailer)
        np.testing.assert_array_equal(decode_image(p), reference)


def test_cut_jpeg_is_caught_despite_its_exif_thumbnail(tmp_path, rgb):
    """The thumbnail in APP1 has its own scan and end marker; they must not count."""
    thumb = cv2.imencode(".jpg", cv2.resize(rgb, (160, 96)))[1].tobytes()
    payload = b"Exif\x00\x00" + thumb  # only the segment lengths matter here
    app1 = b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
    data = _write(tmp_path / "a.jpg", rgb).read_bytes()
    p = tmp_path / "phone.jpg"
    p.write_bytes(data[:2] + app1 + data[2:])
    assert decode_image(p, size=600).shape == rgb.shape  # whole: fine
    p.write_bytes(data[:2] + app1 + data[2 : len(data) // 2] + b"trailer")
    with pytest.raises(FrameError, match="truncated JPEG"):
        decode_image(p)


def test_reduced_decode_reports_the_full_size(tmp_path, rgb):
    big = cv2.resize(rgb, (2000, 1200))
    img, hw = read_image(_write(tmp_path / "big.jpg", big), size=224)
    assert img.shape == (300, 500, 3) and hw == (1200, 2000)
    rotated = tmp_path / "rotated.jpg"  # EXIF orientation 6: OpenCV turns it upright
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(big).save(rotated, quality=90, exif=exif.tobytes())
    img, hw = read_image(rotated, size=224)
    assert img.shape == (500, 300, 3) and hw == (2000, 1200)
    img, hw = read_image(_write(tmp_path / "small.png", rgb))
    assert img.shape[:2] == hw == (600, 1000)
