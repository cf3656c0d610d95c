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
  IEND), too small (shorter side below ``min_side`` pixels) and too large (over PIL's
  decompression-bomb limit, 2 x ``PIL.Image.MAX_IMAGE_PIXELS`` ~ 179 M pixels by default, or
  OpenCV's) files raise :class:`FrameError`, as does any other decoder failure; bytes after a
  JPEG's end marker (phone-photo trailers) are ignored, as decoders do.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

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


def decode_image(path: str | Path, size: int = 224, min_side: int = 32) -> np.ndarray:
    """RGB uint8 [h, w, 3] of an image file, possibly decoded at 1/2, 1/4 or 1/8 scale.

    A JPEG whose shorter side is at least 2x ``size`` is decoded with OpenCV's reduced
    modes (IDCT scaling: faster and already low-passed), keeping the shorter side >= size.
    Raises FrameError for empty, unreadable, truncated, too small or too large files.
    """
    return read_image(path, size, min_side)[0]


def read_image(
    path: str | Path, size: int = 224, min_side: int = 32
) -> tuple[np.ndarray, tuple[int, int]]:
    """:func:`decode_image` and the picture's full-resolution (h, w) as OpenCV orients it
    (EXIF rotation applied), which a reduced decode does not show."""
    import cv2

    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise FrameError(f"cannot read file: {exc.strerror or exc}") from None
    if not data:
        raise FrameError("empty file")
    _check_complete(data, path.suffix.lower())
    hw = _header_size(data)
    if hw is not None and min(hw) < min_side:
        raise FrameError(f"image too small: {hw[1]}x{hw[0]} (shorter side < {min_side})")
    flag, factor = cv2.IMREAD_COLOR, 1
    if hw is not None and path.suffix.lower() in _JPEG_EXTENSIONS:
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
    img: np.ndarray, size: int = 224, resize: str = "squash", interpolation: str = "area"
) -> np.ndarray:
    """The square RGB uint8 [size, size, 3] view of a frame.

    resize: "squash" (the whole frame scaled to size x size, aspect not kept, as published)
    or "crop" (the centred square of side min(h, w), then scaled).
    interpolation: "area" (anti-aliased, default) or "linear" (cv2.resize's default).
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


def _header_size(data: bytes) -> tuple[int, int] | None:
    """(h, w) from the file header without decoding pixels, or None if PIL can't tell."""
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
