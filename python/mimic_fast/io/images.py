"""Decoding still images into the views that mining works on.

One function per step: :func:`decode_image` reads a file into an RGB uint8 array (using the
JPEG decoder's built-in 1/2, 1/4, 1/8 downscaling when the picture is far larger than the
view), :func:`to_view` turns any RGB frame into the square view (``squash`` as published, or
``crop`` = centre square crop), and :func:`load_view` does both.

Decisions on awkward inputs (documented here because the mining summary relies on them):

- grayscale images are converted to RGB (the grey value in all three channels);
- RGBA / LA images keep their colour channels and drop alpha (no compositing);
- 16-bit images are scaled to 8 bit by OpenCV's decoder;
- empty, unreadable, truncated (JPEG without an end marker after its first scan, PNG without
  IEND), too small (shorter side below ``min_side`` pixels) and too large files raise
  :class:`FrameError`, as does any other decoder failure; bytes after a JPEG's end marker
  (phone-photo trailers) are ignored, as decoders do;
- only regular files are read (a FIFO would block, a device such as /dev/zero never ends);
- too large = over :data:`MAX_IMAGE_PIXELS` (``max_pixels``), judged from the file header
  before any decoder runs, whatever the extension claims (OpenCV picks its decoder from the
  content); a file whose size cannot be read from its header is refused, since nothing would
  bound its decode. PIL itself also refuses over 2 x ``PIL.Image.MAX_IMAGE_PIXELS`` (~179 M).
"""

from __future__ import annotations

import io
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# The one pixel limit for image files and stored views, mining and training alike (callers
# pass max_pixels to change it). A 100 M pixel RGB decode is 300 MB.
MAX_IMAGE_PIXELS = 100_000_000

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm", ".pnm", ".tif", ".tiff", ".webp"}
)
_JPEG_EXTENSIONS = frozenset({".jpg", ".jpeg"})
RESIZE_MODES = ("squash", "crop")
INTERPOLATIONS = ("area", "linear")


class FrameError(ValueError):
    """A frame or source that cannot be used; the message says why (it goes into `errors`)."""


def is_image_path(path: str | Path) -> bool:
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def decode_image(path: str | Path, size: int = 224, min_side: int = 32, *,
                 max_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray:
    """RGB uint8 [h, w, 3] of an image file, possibly decoded at 1/2, 1/4 or 1/8 scale.

    A JPEG whose shorter side is at least 2x ``size`` is decoded with OpenCV's reduced
    modes (IDCT scaling: faster and already low-passed), keeping the shorter side >= size.
    Raises FrameError for empty, unreadable, truncated, too small or too large files
    (over ``max_pixels`` by the header), and for anything but a regular file.
    """
    return read_image(path, size, min_side, max_pixels=max_pixels)[0]


def read_checked_bytes(path: str | Path, min_side: int = 32,
                       max_pixels: int = MAX_IMAGE_PIXELS) -> tuple[bytes, tuple[int, int]]:
    """An image file's bytes and its (h, w) by the header, after every check any decoder of
    ours (OpenCV's, DALI's) needs first: a regular non-empty file, complete, of a size
    between ``min_side`` and ``max_pixels``; FrameError otherwise."""
    path = Path(path)
    data = read_regular_file(path)
    if not data:
        raise FrameError("empty file")
    _check_complete(data, path.suffix.lower())
    hw = checked_image_size(data, max_pixels)
    if min(hw) < min_side:
        raise FrameError(f"image too small: {hw[1]}x{hw[0]} (shorter side < {min_side})")
    return data, hw


@dataclass(frozen=True)
class DecodedImage:
    """A decoded picture, by any decoder."""

    rgb: np.ndarray  # [h, w, 3] uint8, EXIF rotation applied (as cv2.imread)
    size: tuple[int, int]  # (h, w) at full resolution (a reduced JPEG decode is smaller)


def read_image(
    path: str | Path, size: int = 224, min_side: int = 32, *,
    max_pixels: int = MAX_IMAGE_PIXELS, exact: bool = False,
) -> tuple[np.ndarray, tuple[int, int]]:
    """:func:`decode_image` and the picture's full-resolution (h, w) as OpenCV orients it
    (EXIF rotation applied), which a reduced decode does not show. ``exact``: always decode
    in full, so the pixels are those of ``cv2.imread`` (the published decode)."""
    import cv2

    path = Path(path)
    data, hw = read_checked_bytes(path, min_side, max_pixels)
    flag, factor = cv2.IMREAD_COLOR, 1
    if path.suffix.lower() in _JPEG_EXTENSIONS and not exact:
        flag, factor = _reduced_decode(min(hw), size)
    try:
        img = cv2.imdecode(np.frombuffer(data, np.uint8), flag)
    except Exception as exc:  # cv2.error (e.g. over CV_IO_MAX_IMAGE_PIXELS), MemoryError
        raise FrameError(f"cannot decode image: {_one_line(exc)}") from None
    if img is None or img.size == 0:
        raise FrameError("cannot decode image")
    if min(img.shape[:2]) < min_side:
        raise FrameError(
            f"image too small: {img.shape[1]}x{img.shape[0]} (shorter side < {min_side})"
        )
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB), _full_size(img.shape[:2], hw, factor)


def to_view(
    img: np.ndarray, size: int = 224, resize: str = "squash", interpolation: str = "linear"
) -> np.ndarray:
    """The square RGB uint8 [size, size, 3] view of a frame.

    resize: "squash" (the whole frame scaled to size x size, aspect not kept, as published)
    or "crop" (the centred square of side min(h, w), then scaled).
    interpolation: "linear" (cv2.resize's default, as published) or "area" (anti-aliased).
    """
    import cv2

    if resize not in RESIZE_MODES:
        raise ValueError(f"resize must be one of {RESIZE_MODES}, got {resize!r}")
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {INTERPOLATIONS}, got {interpolation!r}")
    img = _as_rgb(img)
    if resize == "crop":
        h, w = img.shape[:2]
        s = min(h, w)
        y0, x0 = (h - s) // 2, (w - s) // 2
        img = img[y0 : y0 + s, x0 : x0 + s]
    h, w = img.shape[:2]
    if (h, w) == (size, size):
        return np.ascontiguousarray(img)
    interp = cv2.INTER_AREA if interpolation == "area" else cv2.INTER_LINEAR
    if interpolation == "area" and (h < size or w < size):
        interp = cv2.INTER_LINEAR  # INTER_AREA is meant for shrinking
    return cv2.resize(img, (size, size), interpolation=interp)


def load_view(
    path: str | Path,
    size: int = 224,
    resize: str = "squash",
    interpolation: str = "area",
    min_side: int = 32,
) -> np.ndarray:
    """decode_image then to_view: RGB uint8 [size, size, 3]."""
    return to_view(decode_image(path, size, min_side), size, resize, interpolation)


def _as_rgb(img: np.ndarray) -> np.ndarray:
    img = np.asarray(img)
    if img.dtype != np.uint8:
        raise FrameError(f"frames must be uint8, got {img.dtype}")
    if img.ndim == 2:
        return np.repeat(img[..., None], 3, axis=2)
    if img.ndim == 3 and img.shape[2] == 1:
        return np.repeat(img, 3, axis=2)
    if img.ndim == 3 and img.shape[2] in (3, 4):
        return img[..., :3]
    raise FrameError(f"frames must be HxW, HxWx1, HxWx3 or HxWx4, got {list(img.shape)}")


def _check_complete(data: bytes, ext: str) -> None:
    """Catch truncation that decoders paper over (OpenCV fills a cut JPEG with grey)."""
    if data[:2] == b"\xff\xd8" or ext in _JPEG_EXTENSIONS:
        if not jpeg_has_end(data):
            raise FrameError("truncated JPEG (no end-of-image marker)")
    elif data[:8] == b"\x89PNG\r\n\x1a\n" and b"IEND" not in data[-16:]:
        raise FrameError("truncated PNG (no IEND chunk)")


def jpeg_has_end(data: bytes) -> bool:
    """Whether an end-of-image marker follows the start of the image's first scan.

    Not "the file ends with FF D9": phone photos often carry trailers after it (motion-photo
    video, maker data), which decoders ignore. The header segments are walked to the first
    scan so that the EOI of an EXIF thumbnail (inside APP1, before the scan) does not count;
    inside scan data FF D9 cannot occur (0xFF bytes are stuffed). A header that cannot be
    walked falls back to the first FF DA anywhere.
    """
    sos, i = -1, 2
    while i + 4 <= len(data) and data[i] == 0xFF:
        marker = data[i + 1]
        if marker == 0xDA:
            sos = i
            break
        if marker == 0xFF:  # fill byte
            i += 1
        elif 0xD0 <= marker <= 0xD8 or marker == 0x01:  # markers without a length
            i += 2
        else:
            i += 2 + int.from_bytes(data[i + 2 : i + 4], "big")
    if sos < 0:
        sos = data.find(b"\xff\xda")
    return sos >= 0 and data.find(b"\xff\xd9", sos + 2) >= 0


def read_regular_file(path: str | Path) -> bytes:
    """The bytes of a regular file (symlinks followed); FrameError for anything else: a FIFO
    would block the reader, a device such as /dev/zero never ends."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):  # before opening: opening may block
            raise FrameError("not a regular file")
        # O_NONBLOCK: should the path become a FIFO after the check, open does not wait.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        with open(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(fd).st_mode):  # what was opened is what is read
                raise FrameError("not a regular file")
            return f.read()
    except OSError as exc:
        raise FrameError(f"cannot read file: {exc.strerror or exc}") from None


def checked_image_size(data: bytes, max_pixels: int = MAX_IMAGE_PIXELS) -> tuple[int, int]:
    """(h, w) of an encoded image from its header, before any decoder runs; FrameError when
    it is over ``max_pixels`` or cannot be read from the header (nothing would then bound the
    decode)."""
    hw = _header_size(data)
    if hw is None:
        raise FrameError("cannot tell the image size from its header (not an image, or a "
                         "format whose header is not read here)")
    if hw[0] * hw[1] > max_pixels:
        raise FrameError(f"image too large: {hw[1]}x{hw[0]} = {hw[0] * hw[1]} pixels, over "
                         f"the limit of {max_pixels}")
    return hw


def _header_size(data: bytes) -> tuple[int, int] | None:
    """(h, w) from the file header without decoding pixels, or None if it can't be told.

    The formats OpenCV decodes and PIL does not identify (Radiance HDR, PAM, PFM) are read
    first, by their signatures as OpenCV recognises them, and so are JPEG and PNG (every
    training view: PIL would cost a tenth of the decode); PIL reads the others."""
    if data[:1] in (b"#", b"P"):
        hw = _sniff_header_size(data)
        if hw is not None:
            return hw
    if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR" and len(data) >= 24:
        w, h = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
        return h, w  # IHDR must be the first chunk: libpng reads the size from it
    if data[:2] == b"\xff\xd8":
        hw = _jpeg_frame_size(data)
        if hw is not None:
            return hw
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as im:
            w, h = im.size
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        return None  # not a format PIL knows (or a broken one): OpenCV decides
    except Image.DecompressionBombError as exc:  # over PIL's MAX_IMAGE_PIXELS x 2
        raise FrameError(f"image too large: {_one_line(exc)}") from None
    except Exception as exc:  # a PIL plugin failing otherwise must not fail the whole source
        raise FrameError(f"cannot read image header: {type(exc).__name__}: "
                         f"{_one_line(exc)}") from None
    return h, w


_SNIFF_BYTES = 1 << 16  # headers longer than this are refused (size unknown)
# What sscanf("-Y %d +X %d") in OpenCV's Radiance reader matches, and the other orientations.
_HDR_RESOLUTION = re.compile(rb"([-+])([XY])\s*([-+]?\d+)\s*([-+])([XY])\s*([-+]?\d+)")
_PNM_SIZE = re.compile(rb"\s+(\d+)\s+(\d+)\s")
_PNM_COMMENT = re.compile(rb"#[^\n\r]*")


def _sniff_header_size(data: bytes) -> tuple[int, int] | None:
    """(h, w) of a Radiance HDR, PNM (P1-P6), PAM (P7) or PFM header; None otherwise."""
    head = data[:_SNIFF_BYTES]
    if head.startswith((b"#?RADIANCE", b"#?RGBE")):
        # OpenCV reads the header in 128-byte pieces and ends it at the first piece starting
        # with a newline: never after the first blank line, maybe before. So take the largest
        # resolution-like text up to the line after the first blank line.
        end = head.find(b"\n\n")
        if end < 0:
            return None
        stop = head.find(b"\n", end + 2)
        sizes = []
        for m in _HDR_RESOLUTION.finditer(head[: stop if stop >= 0 else len(head)]):
            a, b = _number(m[3].lstrip(b"+-")), _number(m[6].lstrip(b"+-"))
            sizes.append((a, b) if m[2] == b"Y" else (b, a))
        return max(sizes, key=lambda hw: hw[0] * hw[1]) if sizes else None
    if len(head) > 2 and head[0:1] == b"P" and head[1:2] in b"123456Ff" and head[2:3].isspace():
        m = _PNM_SIZE.match(_PNM_COMMENT.sub(b" ", head[2:]))  # magic, width, height
        return (_number(m[2]), _number(m[1])) if m else None
    if head.startswith(b"P7") and head[2:3].isspace():
        fields = {}
        for line in head.splitlines()[1:]:
            words = line.split()
            if words[:1] == [b"ENDHDR"]:
                break
            if len(words) >= 2 and words[0] in (b"WIDTH", b"HEIGHT") and words[1].isdigit():
                fields[words[0]] = _number(words[1])
        else:
            return None
        return (fields[b"HEIGHT"], fields[b"WIDTH"]) if len(fields) == 2 else None
    return None


_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # not DHT, JPG, DAC


def _jpeg_frame_size(data: bytes) -> tuple[int, int] | None:
    """(h, w) of the first frame header of a JPEG whose segments walk cleanly to it, as
    libjpeg reads them; None otherwise (PIL then judges)."""
    i = 2
    while i + 4 <= len(data) and data[i] == 0xFF:
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
        elif 0xD0 <= marker <= 0xD7 or marker == 0x01:  # markers without a length
            i += 2
        elif marker in (0xD8, 0xD9, 0xDA):  # SOI again, EOI, a scan: no frame header first
            return None
        elif marker in _JPEG_SOF:
            if i + 9 > len(data):
                return None
            h = int.from_bytes(data[i + 5 : i + 7], "big")
            w = int.from_bytes(data[i + 7 : i + 9], "big")
            return (h, w) if h and w else None  # height 0: set later by a DNL marker
        else:
            i += 2 + int.from_bytes(data[i + 2 : i + 4], "big")
    return None


def _number(digits: bytes) -> int:
    # int() refuses over 4300 digits; anything over 18 is over every limit anyway.
    return int(digits) if len(digits) <= 18 else 10**18


def _reduced_decode(short_side: int, size: int) -> tuple[int, int]:
    """(imdecode flag, scale-down factor) keeping the shorter side >= size."""
    import cv2

    for factor, flag in (
        (8, cv2.IMREAD_REDUCED_COLOR_8),
        (4, cv2.IMREAD_REDUCED_COLOR_4),
        (2, cv2.IMREAD_REDUCED_COLOR_2),
    ):
        if short_side // factor >= size:
            return flag, factor
    return cv2.IMREAD_COLOR, 1


def _full_size(decoded: tuple[int, int], header: tuple[int, int] | None,
               factor: int) -> tuple[int, int]:
    """The picture's (h, w) at full resolution, oriented like the decoded array.

    A reduced decode is 1/factor of it (libjpeg rounds each side up); the header size is
    the stored one, which OpenCV transposes when it applies an EXIF rotation.
    """
    h, w = (int(s) for s in decoded)
    if factor == 1 or header is None:
        return h, w
    full_h, full_w = header
    scaled = (-(-full_h // factor), -(-full_w // factor))
    if (h, w) != scaled and (w, h) == scaled:
        return full_w, full_h  # rotated by 90 degrees on decoding
    return full_h, full_w


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())
