"""Synthetic matches for the RANSAC tests and benchmark: a known homography, noisy inliers,
uniform outliers."""

from __future__ import annotations

import numpy as np


def random_homography(rng: np.random.Generator, size: float = 640.0) -> np.ndarray:
    """A camera-motion-like homography about the view centre (rotation, zoom, shift,
    perspective), H[2, 2] = 1."""
    c = size / 2
    t = rng.uniform(-0.3, 0.3)
    s = np.exp(rng.uniform(-0.3, 0.3))
    A = np.array([[s * np.cos(t), -s * np.sin(t), 0], [s * np.sin(t), s * np.cos(t), 0],
                  [*rng.uniform(-3e-4, 3e-4, 2), 1.0]])
    T = np.array([[1, 0, c + rng.uniform(-60, 60)], [0, 1, c + rng.uniform(-60, 60)], [0, 0, 1]])
    Ti = np.array([[1, 0, -c], [0, 1, -c], [0, 0, 1.0]])
    H = T @ A @ Ti
    return H / H[2, 2]


def synthetic_matches(rng: np.random.Generator, n: int, outliers: float, size: float = 640.0,
                      noise: float = 1.0):
    """(src [n, 2], dst [n, 2], H [3, 3], is_inlier [n]) with a fraction `outliers` of dst
    points replaced by uniform random ones."""
    H = random_homography(rng, size)
    src = rng.uniform(0, size, (n, 2))
    p = np.c_[src, np.ones(n)] @ H.T
    dst = p[:, :2] / p[:, 2:] + rng.normal(0, noise, (n, 2))
    bad = rng.random(n) < outliers
    dst[bad] = rng.uniform(0, size, (int(bad.sum()), 2))
    return src, dst, H, ~bad


def batch_of_matches(rng: np.random.Generator, B: int, N: int, outliers=(0.2, 0.8),
                     min_count: int | None = None):
    """Padded batch: src, dst [B, N, 2] (padding filled with junk), counts [B], H [B, 3, 3]."""
    src = rng.uniform(-1e3, 1e3, (B, N, 2))
    dst = rng.uniform(-1e3, 1e3, (B, N, 2))
    counts = np.full(B, N) if min_count is None else rng.integers(min_count, N + 1, B)
    Hs = np.zeros((B, 3, 3))
    for b in range(B):
        s, d, Hs[b], _ = synthetic_matches(rng, int(counts[b]), rng.uniform(*outliers))
        src[b, :counts[b]], dst[b, :counts[b]] = s, d
    return src, dst, counts, Hs


def corner_error(H: np.ndarray, H_true: np.ndarray, w: float, h: float) -> float:
    """Mean distance between the image corners mapped by H and by H_true (pixels)."""
    c = np.array([[0, 0, 1], [w, 0, 1], [w, h, 1], [0, h, 1.0]])
    a = c @ np.asarray(H, np.float64).T
    b = c @ np.asarray(H_true, np.float64).T
    return float(np.linalg.norm(a[:, :2] / a[:, 2:] - b[:, :2] / b[:, 2:], axis=1).mean())
