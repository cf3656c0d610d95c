"""Inputs that must not hang, eat the memory or reach a decoder: FIFOs and devices, images
whose header declares too many pixels (whatever the extension says), for mining and training."""

from __future__ import annotations

import os

import cv2
import numpy as np
import pytest
from safety_tools import (
    bmp_header_only, png_header_only, radiance_header_only, run_limited, time_limit,
)

from mimic_fast.data.index import CsvIndex, DataError
from mimic_fast.data.transforms import DecodeError, PairTransform, decode_rgb
from mimic_fast.io import images
from mimic_fast.io.frames import read_pair_list
from mimic_fast.io.images import FrameError, decode_image, read_image


@pytest.fixture
def no_decoder(monkeypatch):
    """Any OpenCV decode fails the test: the refusals below must come from the header."""
    def decode(*_):
        raise AssertionError("a decoder ran")

    monkeypatch.setattr(cv2, "imdecode", decode)


def test_a_fifo_is_not_read(tmp_path):
    fifo = tmp_path / "frame.png"
    os.mkfifo(fifo)
    with time_limit(20), pytest.raises(FrameError, match="not a regular file"):
        read_image(fifo)
    os.mkfifo(tmp_path / "list.csv")
    with time_limit(20), pytest.raises(FrameError, match="not a regular file"):
        read_pair_list(tmp_path / "list.csv")


def test_a_symlink_to_dev_zero_is_not_read(tmp_path):
    # In a child with 3 GB of address space: reading /dev/zero would end in MemoryError there.
    os.symlink("/dev/zero", tmp_path / "zero.jpg")
    (tmp_path / "pairs.csv").write_text("path1,path2\nzero.jpg,zero.jpg\n")
    got = run_limited(f"""
from mimic_fast.io.images import FrameError, read_image
from mimic_fast.data.index import CsvIndex, DataError
out = []
try:
    read_image({str(tmp_path / "zero.jpg")!r})
    out.append("read")
except FrameError as exc:
    out.append(str(exc))
try:
    CsvIndex.build({str(tmp_path / "pairs.csv")!r}).read(0)
    out.append("read")
except DataError as exc:
    out.append(str(exc))
print(json.dumps(out))
""")
    assert isinstance(got, list), got
    assert got[0] == "not a regular file" and got[1].endswith("not a regular file"), got


def test_training_reads_only_regular_files(tmp_path):
    os.mkfifo(tmp_path / "a.jpg")
    cv2.imwrite(str(tmp_path / "b.jpg"), np.zeros((64, 64, 3), np.uint8))
    (tmp_path / "pairs.csv").write_text("path1,path2\na.jpg,b.jpg\n")
    with time_limit(20), pytest.raises(DataError, match="a.jpg.*not a regular file"):
        CsvIndex.build(tmp_path / "pairs.csv").read(0)


@pytest.mark.parametrize("name, data", [
    ("hdr_named_png.png", radiance_header_only(15000, 15000)),
    ("hdr_rgbe.webp", b"#?RGBE\n# comment\n\n-Y 15000 +X 15000\n"),
    ("hdr_x_first.png", b"#?RADIANCE\n\n+X 15000 -Y 15000\n"),
    ("ppm.png", b"P6\n# a comment\n15000 15000\n255\n"),
    ("pgm.pgm", b"P5 15000 15000 255\n"),
    ("pam.png", b"P7\nWIDTH 15000\nHEIGHT 15000\nDEPTH 3\nMAXVAL 255\nTUPLTYPE RGB\nENDHDR\n"),
    ("pfm.png", b"PF\n15000 15000\n-1.0\n"),
    ("png_named_tif.tif", png_header_only(15000, 15000)),
    ("bmp_named_png.png", bmp_header_only(15000, 15000)),  # PIL reads this header
])
def test_too_many_pixels_by_the_header_is_refused_before_decoding(tmp_path, no_decoder,
                                                                   name, data):
    path = tmp_path / name
    path.write_bytes(data)
    # (over 179 M pixels PIL's own bomb check speaks first, in its words)
    with pytest.raises(FrameError, match="image too large: (15000x15000 = 225000000 pixels|"
                                         "Image size \\(225000000 pixels\\))"):
        decode_image(path)


def test_a_radiance_header_read_in_pieces_cannot_hide_its_size(tmp_path, no_decoder):
    # OpenCV reads the header in 128-byte pieces: after a 127-character line the newline is a
    # piece of its own and ends the header, so OpenCV takes the first resolution below, not
    # the one after the blank line (checked: with 8 and 4 in place of 15000 and 64, OpenCV
    # 5.0 decodes 8x8).
    data = (b"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n" + b"#" * 127
            + b"\n-Y 15000 +X 15000\n# more\n\n-Y 64 +X 64\n")
    (tmp_path / "x.hdr").write_bytes(data)
    with pytest.raises(FrameError, match="image too large"):
        decode_image(tmp_path / "x.hdr")


def test_a_size_that_cannot_be_read_from_the_header_is_refused(tmp_path, no_decoder):
    for name, data in [("unknown.png", b"\x00\x01 not an image format" * 10),
                       ("hdr_without_resolution.hdr", b"#?RADIANCE\nFORMAT=x\n\n"),
                       ("endless_header.hdr", b"#?RADIANCE\n" + b"# x\n" * 20000)]:
        (tmp_path / name).write_bytes(data)
        with pytest.raises(FrameError, match="cannot tell the image size from its header"):
            decode_image(tmp_path / name)


def test_the_limit_is_one_constant_and_an_argument(tmp_path):
    img = np.random.default_rng(0).integers(0, 255, (64, 80, 3), np.uint8)
    for ext in (".png", ".ppm", ".hdr"):
        path = tmp_path / f"small{ext}"
        assert cv2.imwrite(str(path), img.astype(np.float32) / 255 if ext == ".hdr" else img)
        assert decode_image(path).shape == (64, 80, 3)  # small files of every sniffed format
        with pytest.raises(FrameError, match="64 = 5120 pixels, over the limit of 5000"):
            decode_image(path, max_pixels=5000)
        assert decode_image(path, max_pixels=5120).shape == (64, 80, 3)
    assert images.MAX_IMAGE_PIXELS == 100_000_000


def test_real_images_all_pass_the_header_check(shared_data):
    paths = [p for p in sorted(shared_data.rglob("*")) if images.is_image_path(p)]
    assert len(paths) >= 20
    for p in paths:
        img, (h, w) = read_image(p)
        assert h * w <= images.MAX_IMAGE_PIXELS and img.ndim == 3, p


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_training_decode_applies_the_same_limit(no_decoder):
    bomb = png_header_only(30000, 30000)
    with pytest.raises(DecodeError, match="image too large"):  # PIL's own limit, here
        decode_rgb(bomb)
    with pytest.raises(DecodeError, match="image too large: 12000x10000 = 120000000 pixels"):
        decode_rgb(png_header_only(12000, 10000))
    with pytest.raises(DecodeError, match="image too large"):
        PairTransform(img_size=32)((bomb, bomb), np.random.default_rng(0))
    with pytest.raises(DecodeError, match="over the limit of 100"):
        decode_rgb(png_header_only(11, 10), max_pixels=100)
    with pytest.raises(DecodeError, match="cannot tell the image size"):
        decode_rgb(b"\x00\x01 not an image format")


def test_training_decode_still_decodes():
    ok, data = cv2.imencode(".jpg", np.full((40, 48, 3), 200, np.uint8))
    assert ok and decode_rgb(data.tobytes()).shape == (40, 48, 3)
