"""Pictures of patch correspondences: both views side by side, matched patches in the same
colour (the MIMIC paper's Figure 8)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def draw_correspondences(
    view1: np.ndarray,
    view2: np.ndarray,
    correspondences: np.ndarray,
    patch_size: int = 16,
    alpha: float = 0.45,
    title: str | None = None,
) -> np.ndarray:
    """RGB uint8 image [h, w1 + gap + w2, 3] with each matched patch pair tinted alike.

    view1, view2: HxW or HxWx3 uint8 images. correspondences: [P1] view-2 patch per view-1
    patch (-1: none), or [K, 2] pairs of (view-1 patch, view-2 patch).
    """
    import matplotlib

    v1, v2 = _rgb(view1), _rgb(view2)
    pairs = _as_pairs(np.asarray(correspondences))
    ncols1 = v1.shape[1] // patch_size
    ncols2 = v2.shape[1] // patch_size
    cmap = matplotlib.colormaps["hsv"]
    rng = np.random.default_rng(0)  # a fixed shuffle so neighbouring patches differ in colour
    colours = cmap(rng.permutation(max(len(pairs), 1)) / max(len(pairs), 1))[:, :3] * 255
    out1, out2 = v1.astype(np.float32), v2.astype(np.float32)
    for (a, b), colour in zip(pairs, colours):
        for img, idx, ncols in ((out1, a, ncols1), (out2, b, ncols2)):
            r, c = divmod(int(idx), ncols)
            sl = np.s_[r * patch_size : (r + 1) * patch_size, c * patch_size : (c + 1) * patch_size]
            img[sl] = (1 - alpha) * img[sl] + alpha * colour
    gap = np.full((max(v1.shape[0], v2.shape[0]), 8, 3), 255, np.float32)
    h = gap.shape[0]
    canvas = np.concatenate([_pad(out1, h), gap, _pad(out2, h)], axis=1).astype(np.uint8)
    if title:
        canvas = _with_title(canvas, title)
    return canvas


def save_png(image: np.ndarray, path: str | Path) -> Path:
    """Write an RGB uint8 image as PNG, creating the folder."""
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)
    return path


def _as_pairs(corr: np.ndarray) -> np.ndarray:
    if corr.ndim == 2 and corr.shape[1] == 2:
        return corr.astype(np.int64)
    if corr.ndim == 1:
        src = np.nonzero(corr >= 0)[0]
        return np.stack([src, corr[src]], axis=1).astype(np.int64)
    raise ValueError(f"correspondences must have shape [P1] or [K, 2], got {list(corr.shape)}")


def _rgb(img: np.ndarray) -> np.ndarray:
    img = np.asarray(img)
    if img.ndim == 2:
        return np.repeat(img[..., None], 3, axis=2)
    if img.ndim == 3 and img.shape[2] in (3, 4):
        return img[..., :3]
    raise ValueError(f"views must be HxW or HxWx3 images, got shape {list(img.shape)}")


def _pad(img: np.ndarray, h: int) -> np.ndarray:
    if img.shape[0] == h:
        return img
    pad = np.full((h - img.shape[0], img.shape[1], 3), 255, img.dtype)
    return np.concatenate([img, pad], axis=0)


def _with_title(canvas: np.ndarray, title: str) -> np.ndarray:
    from PIL import Image, ImageDraw

    band = Image.new("RGB", (canvas.shape[1], 18), "white")
    ImageDraw.Draw(band).text((4, 3), title, fill="black")
    return np.concatenate([np.asarray(band), canvas], axis=0)
