"""CPU decoding and per-pair randomness: which view is masked, the patch mask, augmentations.

Every random choice for a pair comes from one ``numpy.random.Generator`` keyed by
(seed, epoch, sample index) (streaming: (seed, epoch, slot, position)), never from a global
RNG, so a pair looks the same whatever worker, rank or resumed process decodes it.

Images travel as uint8 [3, H, W] (RGB); normalisation with the ImageNet mean/std happens on
the training device (:func:`normalize`), so host-to-device copies are 4x smaller.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mimic_fast.io.images import MAX_IMAGE_PIXELS, FrameError, checked_image_size, jpeg_has_end

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class DecodeError(ValueError):
    """An image that cannot be decoded (corrupt or truncated JPEG, not an image)."""


@dataclass(frozen=True)
class PairTransform:
    """Turns the two encoded views of a pair into the training sample.

    img_size: side of the square images the model takes.
    num_patches / num_masked: the patch mask drawn per pair (True = masked); num_patches=0
        draws none (the model draws its own).
    two_views: CroCo (target + reference) or MAE (only the chosen view is decoded).
    """

    img_size: int
    num_patches: int = 0
    num_masked: int = 0
    two_views: bool = True
    augment: bool = False
    crop_min_scale: float = 0.5
    color_jitter: tuple[float, float, float, float] = (0.4, 0.4, 0.4, 0.1)
    fixed_target: int | None = None  # eval: always mask this view (0 or 1); None = at random

    def __call__(self, data: tuple[bytes, bytes], rng: np.random.Generator) -> dict:
        import torch

        t = self.fixed_target if self.fixed_target is not None else int(rng.random() < 0.5)
        out = {"target": torch.from_numpy(self._view(data[t], rng)), "target_view": t}
        if self.two_views:
            out["reference"] = torch.from_numpy(self._view(data[1 - t], rng))
        if self.num_patches:
            mask = np.zeros(self.num_patches, bool)
            mask[rng.permutation(self.num_patches)[: self.num_masked]] = True
            out["mask"] = torch.from_numpy(mask)
        return out

    def _view(self, data: bytes, rng: np.random.Generator) -> np.ndarray:
        img = decode_rgb(data)
        if self.augment:
            img = random_resized_crop(img, self.img_size, rng, (self.crop_min_scale, 1.0))
            img = color_jitter(img, self.color_jitter, rng)
        else:
            img = resize_square(img, self.img_size)
        return np.ascontiguousarray(img.transpose(2, 0, 1))


def check_encoded(data: bytes, max_pixels: int = MAX_IMAGE_PIXELS) -> None:
    """What every training decoder (this one, DALI's) refuses before decoding: DecodeError
    for an empty view, a JPEG without its end marker, or a header over ``max_pixels`` (mining's
    limit by default) or unreadable."""
    if not data:
        raise DecodeError("empty image")
    if data[:2] == b"\xff\xd8" and not jpeg_has_end(data):  # trailers after EOI are fine
        raise DecodeError("truncated JPEG (no end-of-image marker)")
    try:
        checked_image_size(data, max_pixels)
    except FrameError as exc:
        raise DecodeError(str(exc)) from None


def decode_rgb(data: bytes, max_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray:
    """Encoded image bytes -> RGB uint8 [H, W, 3]; DecodeError when unreadable, or refused by
    :func:`check_encoded` before decoding."""
    import cv2

    check_encoded(data, max_pixels)
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise DecodeError("not a decodable image")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def resize_square(img: np.ndarray, size: int) -> np.ndarray:
    import cv2

    if img.shape[0] == size and img.shape[1] == size:
        return img
    shrink = img.shape[0] > size or img.shape[1] > size
    return cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def random_resized_crop(img: np.ndarray, size: int, rng: np.random.Generator,
                        scale: tuple[float, float] = (0.5, 1.0),
                        ratio: tuple[float, float] = (3 / 4, 4 / 3)) -> np.ndarray:
    """torchvision RandomResizedCrop: a crop of random area fraction and aspect, resized."""
    import cv2

    h, w = img.shape[:2]
    area = h * w
    for _ in range(10):
        target = area * rng.uniform(*scale)
        aspect = np.exp(rng.uniform(np.log(ratio[0]), np.log(ratio[1])))
        cw = int(round(np.sqrt(target * aspect)))
        ch = int(round(np.sqrt(target / aspect)))
        if 0 < cw <= w and 0 < ch <= h:
            y = int(rng.integers(0, h - ch + 1))
            x = int(rng.integers(0, w - cw + 1))
            break
    else:  # centre crop
        ch = cw = min(h, w)
        y, x = (h - ch) // 2, (w - cw) // 2
    crop = img[y:y + ch, x:x + cw]
    interp = cv2.INTER_AREA if ch > size or cw > size else cv2.INTER_LINEAR
    return cv2.resize(crop, (size, size), interpolation=interp)


def color_jitter(img: np.ndarray, strength: tuple[float, float, float, float],
                 rng: np.random.Generator) -> np.ndarray:
    """torchvision ColorJitter(brightness, contrast, saturation, hue) on RGB uint8, fixed order."""
    import cv2

    b, c, s, h = strength
    x = img.astype(np.float32)
    if b:
        x *= rng.uniform(max(0.0, 1 - b), 1 + b)
    if c:
        mean = (x @ np.float32([0.299, 0.587, 0.114])).mean()
        x = (x - mean) * rng.uniform(max(0.0, 1 - c), 1 + c) + mean
    if s:
        gray = (x @ np.float32([0.299, 0.587, 0.114]))[..., None]
        x = (x - gray) * rng.uniform(max(0.0, 1 - s), 1 + s) + gray
    x = np.clip(x, 0, 255).astype(np.uint8)
    if h:
        hsv = cv2.cvtColor(x, cv2.COLOR_RGB2HSV)  # OpenCV hue in [0, 180)
        shift = int(round(rng.uniform(-h, h) * 180))
        hsv[..., 0] = ((hsv[..., 0].astype(np.int16) + shift) % 180).astype(np.uint8)
        x = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    return x


_STATS: dict = {}


def _stats(device):
    """ImageNet mean and std [1, 3, 1, 1] on ``device``, made once (no copy per step)."""
    import torch

    key = str(device)
    if key not in _STATS:
        _STATS[key] = (torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1),
                       torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1))
    return _STATS[key]


def normalize(images, dtype=None):
    """uint8 [B, 3, H, W] (any device) -> float, ImageNet-normalised; stays on the device."""
    mean, std = _stats(images.device)
    out = (images.float() * (1 / 255) - mean) / std
    return out if dtype is None else out.to(dtype)


def denormalize(images):
    """Inverse of :func:`normalize`, to [0, 1] floats (for pictures)."""
    mean, std = _stats(images.device)
    return (images.float() * std + mean).clamp(0, 1)
